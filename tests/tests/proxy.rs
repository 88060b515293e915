//! Berth behind a real TLS proxy: Debian's nginx with the configuration the
//! docs ship (`ops/nginx/berth.conf`) in front of `serve`, and the console
//! in headless Chromium over HTTPS — login with the `Secure` `__Host-`
//! cookie, the live page (server-sent events), the terminal's WebSocket, a
//! file upload — the GitLab webhook through the proxy, and the client
//! address Berth audits: the proxy's `X-Forwarded-For`, never what the
//! client wrote, and never the proxy's own address.

use berth_tests::browser::Browser;
use berth_tests::fixture::World;
use berth_tests::proxy::Nginx;
use berth_tests::{Services, stdout, wait_for};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn workspace(image: &str, greeting: &str) -> String {
    format!(
        "version: 1\ncontainers:\n  - {{ name: web, image: \"{image}\", ports: [8080], env: {{ GREETING: \"{greeting}\" }} }}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_and_the_webhook_work_behind_nginx_with_tls() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 28800);
    w.site_overrides.extra = "console: { tls: true, shell: [\"/bin/busybox\", \"sh\"] }\n\
         trusted_proxies: [127.0.0.1]\n"
        .into();
    let gitlab = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(201).set_body_json(serde_json::json!({})))
        .mount(&gitlab)
        .await;
    w.use_gitlab(&gitlab).await;
    let alice = w.student("px", "px-pw");
    let first = w.commit(
        &alice,
        Some(&workspace(&s.test_image, "one")),
        &w.mail(&alice),
    );
    let server = w.serve();
    let port = berth_tests::fixture::free_port();
    // The second host's veth is where a client other than this machine's
    // loopback comes from.
    let outside = s.docker2.is_some();
    let mut listen = vec![format!("127.0.0.1:{port}")];
    if outside {
        listen.push(format!("10.250.0.1:{port}"));
    }
    let nginx = Nginx::start(&w.dir.join("nginx"), &listen, &server.addr);

    // The webhook through the proxy (GitLab mode: a push counts once its
    // event arrives).
    let deliver = |revision: &str, uuid: &str| {
        let body = berth_tests::gitlab::push_event(&alice, revision, &alice);
        let out = nginx
            .curl()
            .args(["-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
            .args([
                "-H",
                &format!("X-Gitlab-Token: {}", berth_tests::fixture::WEBHOOK_SECRET),
            ])
            .args([
                "-H",
                "X-Gitlab-Event: Push Hook",
                "-H",
                &format!("X-Gitlab-Event-UUID: {uuid}"),
            ])
            .args([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &body,
            ])
            .arg(format!("{}/hooks/gitlab", nginx.url))
            .output()
            .expect("curl");
        assert_eq!(
            stdout(&out),
            "202",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    deliver(&first, "px-1");
    w.wait_running(&format!("{alice}--web"));
    // The account's new bridge and veth finish IPv6 duplicate-address
    // detection a second or two later; Chromium takes each address event
    // for a network change and aborts what it is loading
    // (ERR_NETWORK_CHANGED). Browse once the host's addresses settled.
    wait_for(WAIT, "no tentative IPv6 address on the host", || {
        let out = std::process::Command::new("ip")
            .args(["-6", "-o", "addr", "show", "tentative"])
            .output()
            .ok()?;
        (out.status.success() && out.stdout.is_empty()).then_some(())
    });

    let trust = format!("--ignore-certificate-errors-spki-list={}", nginx.spki);
    let Some(b) = Browser::start_with(&nginx.url, &[trust]).await else {
        return;
    };
    b.goto("/").await;
    b.wait_text("Log in to Berth", WAIT).await;
    b.fill("#username", &alice).await;
    b.fill("#password", "px-pw").await;
    b.click("#login").await;
    b.wait_text(&format!("{alice}--web"), WAIT).await;
    let cookie = b
        .cookie_full("__Host-berth_session")
        .await
        .expect("the __Host- session cookie over TLS");
    assert_eq!(cookie.secure(), Some(true), "{cookie:?}");
    assert_eq!(cookie.http_only(), Some(true), "{cookie:?}");
    assert_eq!(cookie.path(), Some("/"), "{cookie:?}");
    assert!(
        b.cookie_full("berth_session").await.is_none(),
        "no plain cookie behind TLS"
    );
    b.screenshot("proxy-workspace").await;

    // The live page: a broken push shows without a reload (SSE through nginx).
    b.eval("window.berthMarker = 7; return 1").await;
    let broken = w.commit(
        &alice,
        Some("version: 1\ncontainers:\n  - name: web\n    image: x\n    colour: blue\n"),
        &w.mail(&alice),
    );
    deliver(&broken, "px-2");
    wait_for(WAIT, "the rejection in status", || {
        w.status(&alice)["last_error"]
            .as_str()
            .filter(|e| e.contains("colour"))
            .map(str::to_string)
    });
    b.wait_text("workspace.yaml:5:5", WAIT).await;
    assert_eq!(
        b.eval("return window.berthMarker").await,
        serde_json::json!(7)
    );

    // A file upload, then the terminal's WebSocket reads it back.
    let content = format!("through nginx {}\n", std::process::id());
    let local = w.dir.join("px-upload.txt");
    std::fs::write(&local, &content).expect("local file");
    b.goto(&format!("/my/containers/{alice}--web/files")).await;
    b.fill("#dir", "/www").await;
    b.fill("#file", &local.display().to_string()).await;
    b.click("#upload").await;
    b.wait_text("Uploaded px-upload.txt", WAIT).await;
    b.goto(&format!("/my/containers/{alice}--web/terminal"))
        .await;
    b.wait_text("connected", WAIT).await;
    b.fill(".xterm-helper-textarea", "cat /www/px-upload.txt\n")
        .await;
    b.wait_terminal_line(
        content.trim(),
        "the upload was not read back through the WebSocket",
        WAIT,
    )
    .await;
    b.screenshot("proxy-terminal").await;
    b.close().await;

    // The address Berth audits for a login through the proxy is the
    // client's, as nginx saw it; what the client claimed is ignored.
    if outside {
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                "berth-h2",
                "curl",
                "-sS",
                "-o",
                "/dev/null",
            ])
            .args([
                "-w",
                "%{http_code}",
                "--cacert",
                &nginx.ca.display().to_string(),
            ])
            .args(["-H", "X-Forwarded-For: 203.0.113.9"])
            .args(["-H", &format!("Origin: https://10.250.0.1:{}", nginx.port)])
            .args(["--data", &format!("username={alice}&password=px-pw")])
            .arg(format!("https://10.250.0.1:{}/login", nginx.port))
            .output()
            .expect("curl in the second host's namespace");
        assert_eq!(
            stdout(&out),
            "303",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let audit = stdout(&w.reconciler(&["audit", "--account", &alice]));
        let logins: Vec<&str> = audit
            .lines()
            .filter(|l| l.contains("console-login"))
            .collect();
        assert!(
            logins.iter().any(|l| l.contains("from 10.250.0.2")),
            "the login from the other host is audited with its address: {logins:#?}"
        );
        assert!(
            !audit.contains("203.0.113.9"),
            "a client's own X-Forwarded-For is not believed: {audit}"
        );
    }
    drop(nginx);
}
