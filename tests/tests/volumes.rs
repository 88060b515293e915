//! Students' volumes on real dockerd and slapd: measured by Docker's own
//! walk (`reconciler volumes --measure`, and `serve` on its clock), the
//! storage quota that refuses new volumes while an account is over it,
//! and the console's Volumes page in a real Chromium: sizes, a tar
//! download byte-identical to what the container wrote, a delete refused
//! while in use and done when not, audited; admins read every account's,
//! and change none.

use berth_tests::fixture::World;
use berth_tests::{Services, stdout, wait_for};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// A container `name` mounting each of `volumes` at `/<volume>`, running
/// `script`.
fn container(image: &str, name: &str, volumes: &[&str], script: &str) -> String {
    let mounts: Vec<String> = volumes
        .iter()
        .map(|v| format!("{{ name: {v}, path: /{v} }}"))
        .collect();
    format!(
        "  - name: {name}\n    image: \"{image}\"\n    volumes: [{}]\n    command: [\"/bin/busybox\", \"sh\", \"-c\", \"{script}\"]\n",
        mounts.join(", ")
    )
}

fn workspace(containers: &[String]) -> String {
    format!("version: 1\ncontainers:\n{}", containers.concat())
}

#[test]
fn a_new_volume_is_refused_while_the_account_is_over_its_storage_quota() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 29500);
    w.site_overrides.student_quota_extra = ", storage: 1Mi".into();
    let alice = w.account("qa", &["students"]);
    let image = &s.test_image;
    // 2 MiB in `data`: over the 1 MiB quota once measured.
    let writer = container(
        image,
        "writer",
        &["data"],
        "dd if=/dev/zero of=/data/fill bs=1024 count=2048 && exec sleep 3600",
    );
    w.commit(
        &alice,
        Some(&workspace(std::slice::from_ref(&writer))),
        &w.mail(&alice),
    );
    w.apply(0);
    let name = format!("{alice}--writer");
    w.wait_running(&name);
    wait_for(WAIT, "the container to fill its volume", || {
        s.docker(&["exec", &name, "/bin/busybox", "test", "-s", "/data/fill"])
            .status
            .success()
            .then_some(())
    });

    // Measured: the listing gives the size and the total against the quota.
    let measured = w.reconciler(&["volumes", "--measure", "--account", &alice]);
    let listing = stdout(&measured);
    assert!(measured.status.success(), "{listing}");
    assert!(
        listing.contains(&format!("berth-{alice}--data")) && listing.contains("2.0 MiB"),
        "{listing}"
    );
    assert!(
        listing.contains(&format!(
            "{alice}: 2.0 MiB of 1.0 MiB (group students, OVER)"
        )),
        "{listing}"
    );

    // Over quota: a revision adding `scratch` is refused with the numbers;
    // what runs keeps running and nothing is created.
    let scratch = container(image, "scratch", &["scratch"], "exec sleep 3600");
    w.commit(
        &alice,
        Some(&workspace(&[writer.clone(), scratch])),
        &w.mail(&alice),
    );
    // A refused revision is a result, not a failure of apply.
    let text = w.apply(0);
    assert!(
        text.contains(
            "storage quota: your volumes hold 2.0 MiB of the 1.0 MiB that group `students` allows"
        ) && text.contains("may not add volume `scratch`"),
        "{text}"
    );
    let volumes = stdout(&s.docker(&["volume", "ls", "-q"]));
    assert!(
        !volumes.contains(&format!("berth-{alice}--scratch")),
        "{volumes}"
    );
    assert_eq!(
        w.inspect(&name, "{{.State.Running}}").as_deref(),
        Some("true")
    );
    let status = w.status(&alice);
    assert!(
        status["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("storage quota")),
        "{status}"
    );

    // Reusing what exists is not adding: another container on `data` is
    // accepted while over.
    let reader = container(image, "reader", &["data"], "exec sleep 3600");
    w.commit(
        &alice,
        Some(&workspace(&[writer.clone(), reader])),
        &w.mail(&alice),
    );
    w.apply(0);
    w.wait_running(&format!("{alice}--reader"));

    // Under the quota again (the file removed, measured), `scratch` is in.
    let emptied = s.docker(&["exec", &name, "/bin/busybox", "rm", "/data/fill"]);
    assert!(emptied.status.success());
    let measured = w.reconciler(&["volumes", "--measure", "--account", &alice]);
    assert!(measured.status.success());
    let scratch = container(image, "scratch", &["scratch"], "exec sleep 3600");
    w.commit(
        &alice,
        Some(&workspace(&[writer, scratch])),
        &w.mail(&alice),
    );
    w.apply(0);
    w.wait_running(&format!("{alice}--scratch"));
}

/// The Volumes page in a real Chromium against `serve` (measuring every
/// second): sizes and usage against the quota, a download byte-identical
/// to what the container wrote, deletion refused while a container
/// mounts the volume and done, audited, when none does; admins read every
/// account's volumes and change none; another account reaches none.
#[tokio::test(flavor = "multi_thread")]
async fn a_student_sees_downloads_and_deletes_volumes_in_the_console() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 29600);
    w.site_overrides.student_quota_extra = ", storage: 100Mi".into();
    w.site_overrides.policy_extra = "  storage: { measure_every: 1s }\n".into();
    let alice = w.account("va", &["students"]);
    let bob = w.account("vb", &["students"]);
    let root = w.account("vroot", &["admins"]);
    for (a, pw) in [(&alice, "a-pw"), (&bob, "b-pw"), (&root, "r-pw")] {
        w.set_password(a, pw);
    }
    let image = &s.test_image;
    let keeper = container(
        image,
        "keeper",
        &["data"],
        "mkdir -p /data/notes && echo kept > /data/notes/a.txt && dd if=/dev/urandom of=/data/payload bs=1024 count=300 && exec sleep 3600",
    );
    let older = container(
        image,
        "older",
        &["old"],
        "echo old > /old/x && exec sleep 3600",
    );
    w.commit(
        &alice,
        Some(&workspace(&[keeper.clone(), older])),
        &w.mail(&alice),
    );
    w.apply(0);
    let name = format!("{alice}--keeper");
    w.wait_running(&name);
    w.wait_running(&format!("{alice}--older"));
    wait_for(WAIT, "the payload", || {
        s.docker(&["exec", &name, "/bin/busybox", "test", "-s", "/data/payload"])
            .status
            .success()
            .then_some(())
    });
    // `old` is no longer declared: its container goes, the volume stays.
    w.commit(&alice, Some(&workspace(&[keeper])), &w.mail(&alice));
    w.apply(0);
    let old = format!("berth-{alice}--old");
    assert!(s.docker(&["volume", "inspect", &old]).status.success());

    let server = w.serve();
    let Some(b) = berth_tests::browser::Browser::start(&format!("http://{}", server.addr)).await
    else {
        return;
    };
    b.log_in(&alice, "a-pw", WAIT).await;
    b.wait_text(&format!("{alice}--keeper"), WAIT).await;
    b.goto("/my/volumes").await;
    // Sizes come with serve's first measurement.
    let page = wait_for_page(&b, "300.", "the size of `data`").await;
    assert!(
        page.contains("of the 100.0 MiB that group students allows"),
        "{page}"
    );
    assert!(
        page.contains(&name) && page.contains("in use now"),
        "{page}"
    );
    b.screenshot("volumes").await;
    let cookie = format!("berth_session={}", b.cookie("berth_session").await);

    // The download is the volume's files, byte for byte.
    let (code, tar) = berth_tests::http_raw(
        &server.addr,
        "GET",
        "/my/volumes/data/download",
        &[("Cookie", &cookie)],
        b"",
    )
    .expect("download");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&tar));
    let payload = s
        .docker(&["exec", &name, "/bin/busybox", "cat", "/data/payload"])
        .stdout;
    assert_eq!(payload.len(), 300 * 1024);
    let mut files = std::collections::BTreeMap::new();
    let mut archive = tar::Archive::new(tar.as_slice());
    for entry in archive.entries().expect("a tar") {
        let mut entry = entry.expect("an entry");
        let path = entry.path().expect("path").display().to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).expect("read");
        files.insert(path, bytes);
    }
    assert_eq!(
        files.get("data/payload"),
        Some(&payload),
        "{:?}",
        files.keys()
    );
    assert_eq!(
        files.get("data/notes/a.txt").map(Vec::as_slice),
        Some(&b"kept\n"[..])
    );

    // `data` is declared and mounted: refused. A container somebody made
    // by hand mounts `old`: refused, naming it.
    let post = |path: &str, body: &str, cookie: &str| {
        let csrf = csrf_of(&server.addr, cookie);
        let body = format!("csrf={csrf}&{body}");
        berth_tests::http_raw(
            &server.addr,
            "POST",
            path,
            &[
                ("Cookie", cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            body.as_bytes(),
        )
        .expect("post")
    };
    let (code, why) = post("/my/volumes/data/delete", "confirm=data", &cookie);
    assert_eq!(code, 409, "{}", String::from_utf8_lossy(&why));
    let by_hand = format!("{alice}-by-hand");
    let made = s.docker(&[
        "create",
        "--name",
        &by_hand,
        "-v",
        &format!("{old}:/x"),
        image,
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (code, _) = post("/my/volumes/old/delete", "confirm=wrong", &cookie);
    assert_eq!(code, 400, "the name must be typed");
    b.goto("/my/volumes").await;
    b.fill("tr[data-volume=old] input[name=confirm]", "old")
        .await;
    b.click("tr[data-volume=old] button.danger").await;
    b.wait_text(&format!("is mounted by {by_hand}"), WAIT).await;
    assert!(s.docker(&["volume", "inspect", &old]).status.success());

    // Another account reaches nothing of alice's.
    let bobs = berth_tests::session_cookie(&server.addr, &bob, "b-pw");
    for path in ["/my/volumes/data/download", "/my/volumes/old/download"] {
        let (code, _) = berth_tests::http_raw(&server.addr, "GET", path, &[("Cookie", &bobs)], b"")
            .expect("get");
        assert_eq!(code, 404, "{path} for bob");
    }
    let (code, _) = post("/my/volumes/old/delete", "confirm=old", &bobs);
    assert_eq!(code, 404);

    // Admins read every account's volumes; their own delete reaches none.
    let admin = berth_tests::session_cookie(&server.addr, &root, "r-pw");
    let (code, page) = berth_tests::http_raw(
        &server.addr,
        "GET",
        "/admin/volumes",
        &[("Cookie", &admin)],
        b"",
    )
    .expect("admin page");
    let page = String::from_utf8_lossy(&page);
    assert_eq!(code, 200);
    assert!(
        page.contains(&alice) && page.contains(">old<") && !page.contains("confirm"),
        "{page}"
    );
    let (code, _) = post("/my/volumes/old/delete", "confirm=old", &admin);
    assert_eq!(code, 404);
    let (code, _) = berth_tests::http_raw(
        &server.addr,
        "GET",
        "/admin/volumes",
        &[("Cookie", &cookie)],
        b"",
    )
    .expect("student");
    assert_eq!(code, 404);

    // Nothing mounts `old` any more: deleted, audited, gone from the page.
    assert!(s.docker(&["rm", &by_hand]).status.success());
    b.goto("/my/volumes").await;
    b.fill("tr[data-volume=old] input[name=confirm]", "old")
        .await;
    b.click("tr[data-volume=old] button.danger").await;
    wait_for(WAIT, "the volume to go", || {
        (!s.docker(&["volume", "inspect", &old]).status.success()).then_some(())
    });
    let page = b.text().await;
    assert!(!page.contains("Type old"), "{page}");
    let audit = stdout(&w.reconciler(&["audit", "--account", &alice]));
    assert!(
        audit.contains("volume-deleted") && audit.contains(&old),
        "{audit}"
    );
    assert!(audit.contains("volume-downloaded"), "{audit}");
    assert!(
        s.docker(&["volume", "inspect", &format!("berth-{alice}--data")])
            .status
            .success(),
        "only `old` went"
    );
}

/// The CSRF token of `cookie`'s session, from its Volumes page.
fn csrf_of(addr: &str, cookie: &str) -> String {
    let (_, page) = berth_tests::http_raw(addr, "GET", "/my/volumes", &[("Cookie", cookie)], b"")
        .expect("page");
    let page = String::from_utf8_lossy(&page);
    let key = "name=\"csrf\" content=\"";
    page.find(key)
        .map(|at| {
            let rest = &page[at + key.len()..];
            rest[..rest.find('"').unwrap_or(rest.len())].to_string()
        })
        .unwrap_or_default()
}

/// Waits until the page (reloaded each time) shows `what`.
async fn wait_for_page(b: &berth_tests::browser::Browser, what: &str, why: &str) -> String {
    let until = std::time::Instant::now() + WAIT;
    loop {
        let page = b.text().await;
        if page.contains(what) {
            return page;
        }
        assert!(std::time::Instant::now() < until, "{why}: {page}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.goto("/my/volumes").await;
    }
}
