//! The student console in a real headless Chromium (WebDriver), against
//! `reconciler serve` with real dockerd, slapd and git: login, the live
//! workspace, logs, a terminal, files both ways, another account's
//! container, CSRF, the Singularity archive. Screenshots of each page go to
//! `target/screenshots/`.

use berth_tests::browser::Browser;
use berth_tests::fixture::World;
use berth_tests::{Services, csrf_of, http_raw, login_cookie, stdout};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// A GET of `path` with the session cookie header `auth`.
fn get(addr: &str, auth: &str, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    http_raw(addr, "GET", path, &[("Cookie", auth)], b"")
}

fn with_cookie(cookie: &str) -> String {
    format!("berth_session={cookie}")
}

/// A world with alice (web server + a container that logs) and bob, both
/// with passwords, accepted, and `serve` watching the repositories.
fn world(s: &Services, first_port: u16) -> (World, String, String) {
    let mut w = World::new(s, first_port);
    w.site_overrides.extra = "console: { shell: [\"/bin/busybox\", \"sh\"] }\n".into();
    let alice = w.account("wa", &["students"]);
    let bob = w.account("wb", &["students"]);
    w.set_password(&alice, "alice-pw");
    w.set_password(&bob, "bob-pw");
    let image = &s.test_image;
    w.commit(
        &alice,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: web, image: \"{image}\", ports: [8080] }}\n  - name: printer\n    image: \"{image}\"\n    command: [\"/bin/busybox\", \"sh\", \"-c\", \"while true; do echo berth-log-line; sleep 1; done\"]\n"
        )),
        &w.mail(&alice),
    );
    w.commit(
        &bob,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: secret, image: \"{image}\" }}\n"
        )),
        &w.mail(&bob),
    );
    w.apply(0);
    (w, alice, bob)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_student_uses_the_console_in_a_real_browser() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (w, alice, bob) = world(&s, 26000);
    let server = w.serve_with(&["--watch", &w.repos_dir().display().to_string()]);
    let Some(b) = Browser::start(&format!("http://{}", server.addr)).await else {
        return;
    };

    // Login: a wrong password is refused, the right one lands on the
    // workspace with alice's real containers and port links.
    b.goto("/").await;
    b.wait_text("Log in to Berth", WAIT).await;
    b.screenshot("login").await;
    b.fill("#username", &alice).await;
    b.fill("#password", "wrong").await;
    b.click("#login").await;
    b.wait_text("wrong username or password", WAIT).await;
    b.fill("#password", "alice-pw").await;
    b.click("#login").await;
    let page = b.wait_text(&format!("{alice}--web"), WAIT).await;
    assert!(page.contains(&format!("{alice}--printer")), "{page}");
    assert!(
        !page.contains(&bob),
        "bob's containers on alice's page:\n{page}"
    );
    let port = w
        .inspect(
            &format!("{alice}--web"),
            "{{(index (index .NetworkSettings.Ports \"8080/tcp\") 0).HostPort}}",
        )
        .unwrap_or_default();
    let link = b
        .eval("return [...document.querySelectorAll('#containers a')].map(a => a.href).join(' ')")
        .await;
    assert!(
        link.as_str()
            .unwrap_or_default()
            .contains(&format!(":{port}/")),
        "no link to port {port}: {link}"
    );
    b.screenshot("workspace").await;
    let cookie = b.cookie("berth_session").await;
    assert!(!cookie.is_empty());

    // A push that breaks workspace.yaml appears on the open page, with its
    // line and column, without a reload.
    b.eval("window.berthMarker = 42; return 1").await;
    w.commit(
        &alice,
        Some("version: 1\ncontainers:\n  - name: web\n    image: x\n    colour: blue\n"),
        &w.mail(&alice),
    );
    b.wait_text("workspace.yaml:5:5", WAIT).await;
    assert_eq!(
        b.eval("return window.berthMarker").await,
        serde_json::json!(42),
        "the page was reloaded"
    );
    b.screenshot("workspace-rejected").await;

    // Logs: a line the container prints.
    b.goto(&format!("/my/containers/{alice}--printer/logs"))
        .await;
    b.wait_text("berth-log-line", WAIT).await;
    b.screenshot("logs").await;

    // Files: upload, then read back through the terminal and download.
    let content = format!("berth upload {}\n", std::process::id());
    let local = w.dir.join("upload-me.txt");
    std::fs::write(&local, &content).expect("local file");
    b.goto(&format!("/my/containers/{alice}--web/files")).await;
    b.fill("#dir", "/www").await;
    b.fill("#file", &local.display().to_string()).await;
    b.screenshot("files").await;
    b.click("#upload").await;
    b.wait_text("Uploaded upload-me.txt", WAIT).await;

    // The terminal runs `echo hi` and `cat` of the upload.
    b.goto(&format!("/my/containers/{alice}--web/terminal"))
        .await;
    b.wait_text("connected", WAIT).await;
    b.fill(".xterm-helper-textarea", "echo h\"\"i\n").await;
    b.wait_terminal_line("hi", "no `hi` in the terminal", WAIT)
        .await;
    b.fill(".xterm-helper-textarea", "cat /www/upload-me.txt\n")
        .await;
    b.wait_terminal_line(content.trim(), "the upload was not read back", WAIT)
        .await;
    b.screenshot("terminal").await;

    let auth = with_cookie(&cookie);
    let (code, tar_bytes) = get(
        &server.addr,
        &auth,
        &format!("/my/containers/{alice}--web/download?path=/www/upload-me.txt"),
    )
    .expect("download");
    assert_eq!(code, 200);
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    let mut found = None;
    for entry in archive.entries().expect("a tar") {
        let mut entry = entry.expect("entry");
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).expect("read");
        found = Some(data);
    }
    assert_eq!(
        found.as_deref(),
        Some(content.as_bytes()),
        "not byte-identical"
    );

    // Bob's container through an edited URL: the same 404 as a missing one.
    for path in [
        format!("/my/containers/{bob}--secret/logs"),
        format!("/my/containers/{bob}--secret/terminal"),
        format!("/my/containers/{bob}--secret/download?path=/etc/passwd"),
        format!("/my/containers/{alice}--nothing/logs"),
    ] {
        let (code, _) = get(&server.addr, &auth, &path).expect("request");
        assert_eq!(code, 404, "{path}");
    }
    b.goto(&format!("/my/containers/{bob}--secret/logs")).await;
    b.wait_text("Not found", WAIT).await;
    b.screenshot("not-found").await;
    let audit = stdout(&w.reconciler(&["audit", "--account", &alice]));
    assert!(audit.contains("console-denied"), "{audit}");

    // A state change without the CSRF token is refused; with it, it works.
    let restart = format!("/my/containers/{alice}--web/restart");
    let form = [
        ("Cookie", auth.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let (code, _) = http_raw(&server.addr, "POST", &restart, &form, b"").expect("post");
    assert_eq!(code, 403, "a restart without the CSRF token");
    let started = w.inspect(&format!("{alice}--web"), "{{.State.StartedAt}}");

    // The Singularity archive loads back with `docker load`.
    let (code, archive) = get(
        &server.addr,
        &auth,
        &format!("/my/images/archive?image={}", s.test_image),
    )
    .expect("archive");
    assert_eq!(code, 200);
    let file = w.dir.join("image.tar");
    std::fs::write(&file, &archive).expect("save");
    let loaded = s.docker(&["load", "-i", &file.display().to_string()]);
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    assert_eq!(
        w.inspect(&format!("{alice}--web"), "{{.State.StartedAt}}"),
        started,
        "the refused restart restarted"
    );
    // With the page's token: stop, stop again (already stopped is done, as
    // for the reconciler, not a failure), then start.
    let (_, home) = get(&server.addr, &auth, "/").expect("workspace page");
    let token = csrf_of(&String::from_utf8_lossy(&home));
    for (op, running) in [("stop", "false"), ("stop", "false"), ("start", "true")] {
        let path = format!("/my/containers/{alice}--web/{op}");
        let body = format!("csrf={token}");
        let (code, answer) =
            http_raw(&server.addr, "POST", &path, &form, body.as_bytes()).expect("post");
        assert_eq!(code, 303, "{op}: {}", String::from_utf8_lossy(&answer));
        assert_eq!(
            w.inspect(&format!("{alice}--web"), "{{.State.Running}}"),
            Some(running.to_string()),
            "after {op}"
        );
    }
    b.goto("/my/images").await;
    b.wait_text("Shared with everyone", WAIT).await;
    b.screenshot("images").await;
    b.goto("/my/downloads").await;
    b.wait_text("starter", WAIT).await;
    b.screenshot("downloads").await;
    b.close().await;
}

/// The runner container carries the account's label but mounts the host's
/// Docker socket: its state is shown, but no terminal, files or download.
#[tokio::test(flavor = "multi_thread")]
async fn the_runner_container_is_shown_but_never_entered() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let gl = berth_tests::gitlab::runner_mock(91, "glrt-console").await;
    let mut w = World::new(&s, 26100);
    w.use_gitlab(&gl).await;
    w.site_overrides.runner_image = Some(s.test_image.clone());
    let a = w.account("wr", &["students"]);
    w.set_password(&a, "runner-pw");
    let server = w.serve();
    let runner = w.start_runner(&server, &a);
    let (code, body) = http_raw(
        &server.addr,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!("username={a}&password=runner-pw").as_bytes(),
    )
    .expect("login");
    assert_eq!(code, 303, "{}", String::from_utf8_lossy(&body));
    // The cookie comes back in Set-Cookie; ask again to read it.
    let cookie = login_cookie(&server.addr, &a, "runner-pw");
    let auth = with_cookie(&cookie);
    berth_tests::wait_for(WAIT, "the runner on the workspace page", || {
        let (_, page) = get(&server.addr, &auth, "/").ok()?;
        String::from_utf8_lossy(&page)
            .contains("CI runner")
            .then_some(())
    });
    let (_, page) = get(&server.addr, &auth, "/").expect("page");
    let page = String::from_utf8_lossy(&page).to_string();
    assert!(
        !page.contains(&format!("/my/containers/{runner}/terminal")),
        "the page offers a terminal in the runner"
    );
    for path in [
        format!("/my/containers/{runner}/terminal"),
        format!("/my/containers/{runner}/files"),
        format!("/my/containers/{runner}/download?path=/etc/gitlab-runner/config.toml"),
    ] {
        let (code, _) = get(&server.addr, &auth, &path).expect("request");
        assert_eq!(code, 404, "{path}");
    }
    let (code, _) = get(
        &server.addr,
        &auth,
        &format!("/my/containers/{runner}/logs"),
    )
    .expect("logs");
    assert_eq!(code, 200, "its logs are the student's to read");
}

/// Logs of an own Kubernetes workload (through the API server's pod log),
/// and none of another account's.
#[tokio::test(flavor = "multi_thread")]
async fn kubernetes_logs_are_the_students_own() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let kube = berth_tests::fakekube::FakeKube::start().await;
    let mut w = World::new(&s, 26200);
    let kubeconfig = w.dir.join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig);
    w.site_overrides.kubeconfig = Some(kubeconfig);
    let alice = w.account("ka", &["students"]);
    let bob = w.account("kb", &["students"]);
    w.set_password(&alice, "k-pw");
    let image = &s.test_image;
    for (who, name) in [(&alice, "api"), (&bob, "secret")] {
        w.commit(
            who,
            Some(&format!(
                "version: 1\ncontainers:\n  - {{ name: {name}, image: \"{image}\", backend: kubernetes, resources: {{ cpus: 0.2, memory: 32Mi }} }}\n"
            )),
            &w.mail(who),
        );
    }
    w.apply(0);
    let server = w.serve();
    let cookie = login_cookie(&server.addr, &alice, "k-pw");
    let auth = with_cookie(&cookie);
    // serve's first observation of the cluster fills the read model the
    // console checks ownership against; until then the workload is unknown.
    berth_tests::wait_for(WAIT, "alice's workload in the read model", || {
        let (_, page) = get(&server.addr, &auth, "/").ok()?;
        String::from_utf8_lossy(&page)
            .contains("/my/workloads/api/logs")
            .then_some(())
    });
    let (code, body) = get(
        &server.addr,
        &auth,
        "/my/workloads/api/logs/stream?follow=false",
    )
    .expect("logs");
    let body = String::from_utf8_lossy(&body).to_string();
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("data: 2026-11-26T12:00:00Z fake log line 1 from api-"),
        "{body}"
    );
    let (_, page) = get(&server.addr, &auth, "/").expect("page");
    assert!(
        String::from_utf8_lossy(&page).contains("/my/workloads/api/logs"),
        "the workspace offers the workload's logs"
    );
    for path in [
        "/my/workloads/secret/logs",
        "/my/workloads/secret/logs/stream?follow=false",
    ] {
        let (code, _) = get(&server.addr, &auth, path).expect("request");
        assert_eq!(code, 404, "{path}: bob's workload");
    }
}

/// Admins read every account's page (read-only) and the audit log;
/// students do not even see that those pages exist.
#[test]
fn admins_see_every_account_and_the_audit_log() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 26300);
    let alice = w.account("aa", &["students"]);
    let root = w.account("aroot", &["admins"]);
    w.set_password(&alice, "a-pw");
    w.set_password(&root, "r-pw");
    w.commit(
        &alice,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: web, image: \"{}\" }}\n",
            s.test_image
        )),
        &w.mail(&alice),
    );
    w.apply(0);
    let server = w.serve();
    let admin = with_cookie(&login_cookie(&server.addr, &root, "r-pw"));
    let student = with_cookie(&login_cookie(&server.addr, &alice, "a-pw"));
    let get = |path: &str, cookie: &str| {
        let (code, body) =
            http_raw(&server.addr, "GET", path, &[("Cookie", cookie)], b"").expect("request");
        (code, String::from_utf8_lossy(&body).to_string())
    };
    // serve builds its read model in the background once it listens: the
    // first requests may come before it knows alice.
    berth_tests::wait_for(
        std::time::Duration::from_secs(30),
        "the admin page to list alice",
        || {
            let (code, page) = get("/admin", &admin);
            assert_eq!(code, 200);
            page.contains(&format!("/admin/accounts/{alice}"))
                .then_some(())
        },
    );
    let (code, page) = get(&format!("/admin/accounts/{alice}"), &admin);
    assert_eq!(code, 200);
    assert!(
        page.contains(&format!("{alice}--web")) && page.contains("read-only"),
        "{page}"
    );
    let (code, page) = get(
        &format!("/admin/audit?account={alice}&event=accepted"),
        &admin,
    );
    assert_eq!(code, 200);
    assert!(page.contains("accepted"), "{page}");
    for path in [
        "/admin",
        "/admin/audit",
        &format!("/admin/accounts/{alice}"),
    ] {
        assert_eq!(get(path, &student).0, 404, "{path} for a student");
    }
}
