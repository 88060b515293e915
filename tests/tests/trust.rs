//! Trust that follows the directory, against real `serve`, slapd and
//! dockerd: a student taken out of every allowed group, or an admin out of
//! the admin group, loses what their open session could do, at the next
//! request (through the directory cache) and within one resync for what
//! Berth itself stops.

use berth_tests::fixture::World;
use berth_tests::{Services, console_get as get, csrf_of, http_raw, session_cookie, wait_for};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// One world at a time: every `serve` resyncs every account it sees a
/// label of on the shared dockerd, and an account with no repository in
/// its world is stopped there, so these tests would stop each other's
/// containers.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn a_student_out_of_the_directory_loses_the_console_and_cannot_start_what_berth_stopped() {
    let _serial = serial();
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 28100);
    w.site_overrides.resync = "2s".into();
    let alice = w.account("ra", &["students"]);
    let admin = w.account("rb", &["students", "admins"]);
    w.set_password(&alice, "alice-pw");
    w.set_password(&admin, "admin-pw");
    let image = &s.test_image;
    w.commit(
        &alice,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: web, image: \"{image}\" }}\n"
        )),
        &w.mail(&alice),
    );
    w.apply(0);
    let web = format!("{alice}--web");
    let server = w.serve();
    let alice_auth = session_cookie(&server.addr, &alice, "alice-pw");
    let admin_auth = session_cookie(&server.addr, &admin, "admin-pw");
    let (code, home) = get(&server.addr, &alice_auth, "/");
    assert_eq!(code, 200);
    assert!(home.contains(&web), "{home}");
    let csrf = csrf_of(&home);
    assert_eq!(get(&server.addr, &admin_auth, "/admin").0, 200);

    // Out of every allowed group; the admin out of the admin group.
    w.set_group(&alice, "students", false);
    w.set_group(&admin, "admins", false);
    // Berth's stop, finished (its audit line is rewritten to the outcome),
    // and the container not running.
    wait_for(
        WAIT,
        "Berth to stop the removed student's container",
        || {
            let audit = berth_tests::stdout(&w.reconciler(&["audit", "--account", &alice]));
            let stopped = audit
                .lines()
                .any(|l| l.contains(&format!("stop {web}")) && !l.contains("started"));
            (stopped && w.inspect(&web, "{{.State.Running}}").as_deref() == Some("false"))
                .then_some(())
        },
    );

    // Her open session can no longer start it (before, it could: the
    // audit showed console-start right after Berth's stop).
    let (code, _) = http_raw(
        &server.addr,
        "POST",
        &format!("/my/containers/{web}/start"),
        &[
            ("Cookie", &alice_auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        format!("csrf={csrf}").as_bytes(),
    )
    .expect("post");
    assert_eq!(code, 303, "sent to the login page");
    assert_eq!(
        w.inspect(&web, "{{.State.Running}}").as_deref(),
        Some("false"),
        "the removed student started what Berth stopped; audit:\n{}",
        berth_tests::stdout(&w.reconciler(&["audit", "--account", &alice]))
    );
    let (code, page) = get(&server.addr, &alice_auth, "/");
    assert_eq!(code, 303, "not sent to the login page:\n{page}");
    assert!(
        !page.contains(&web),
        "the workspace is still shown:\n{page}"
    );
    let (code, _) = get(
        &server.addr,
        &alice_auth,
        &format!("/my/containers/{web}/logs/stream"),
    );
    assert_ne!(code, 200, "her logs still stream");

    // The demoted admin keeps a student's console, not the admin pages.
    let (code, _) = get(&server.addr, &admin_auth, "/admin");
    assert_ne!(code, 200, "the admin pages after leaving the admin group");
    assert_eq!(get(&server.addr, &admin_auth, "/").0, 200);
    let audit = berth_tests::stdout(&w.reconciler(&["audit", "--account", &alice]));
    assert!(audit.contains("console-session-ended"), "{audit}");
    assert!(!audit.contains("console-start"), "{audit}");
}

#[test]
fn a_container_is_refused_to_the_console_by_what_it_is_not_by_its_name() {
    let _serial = serial();
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 28200);
    w.site_overrides.resync = "1s".into();
    let alice = w.student("rn", "alice-pw");
    let server = w.serve();
    let auth = session_cookie(&server.addr, &alice, "alice-pw");
    // What a recreate of the runner leaves behind if serve dies midway:
    // alice's label, the runner's socket mount, a temporary name. And a
    // container of hers with a bind mount under an ordinary name.
    let socket = w.dir.join("fake-docker.sock");
    std::fs::write(&socket, b"").expect("stand-in socket");
    let mount = format!("{}:/var/run/docker.sock", socket.display());
    for name in [
        format!("{alice}.runner.berth-next"),
        format!("{alice}--bound"),
    ] {
        let run = s.docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            &format!("berth.owner={alice}"),
            "-v",
            &mount,
            &s.test_image,
        ]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    // Once serve has observed them, her page shows them.
    let home = wait_for(WAIT, "serve to observe both containers", || {
        let (_, home) = get(&server.addr, &auth, "/");
        (home.contains(&format!("{alice}--bound")) && home.contains(".runner.berth-next"))
            .then_some(home)
    });
    let csrf = csrf_of(&home);
    for name in [
        format!("{alice}.runner.berth-next"),
        format!("{alice}--bound"),
    ] {
        for path in [
            format!("/my/containers/{name}/terminal"),
            format!("/my/containers/{name}/files"),
            format!("/my/containers/{name}/download?path=/etc/passwd"),
        ] {
            assert_eq!(get(&server.addr, &auth, &path).0, 404, "{path}");
        }
    }
    // Berth's half-made replacement is not hers to stop or start either.
    let next = format!("{alice}.runner.berth-next");
    let (code, _) = http_raw(
        &server.addr,
        "POST",
        &format!("/my/containers/{next}/stop"),
        &[
            ("Cookie", &auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        format!("csrf={csrf}").as_bytes(),
    )
    .expect("post");
    assert_eq!(code, 404);
    assert_eq!(
        w.inspect(&next, "{{.State.Running}}").as_deref(),
        Some("true")
    );
}

#[test]
fn backend_errors_reach_the_student_as_a_reference_not_raw() {
    let _serial = serial();
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 28300);
    let alice = w.student("re", "alice-pw");
    let image = &s.test_image;
    w.commit(
        &alice,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: web, image: \"{image}\" }}\n"
        )),
        &w.mail(&alice),
    );
    w.apply(0);
    let server = w.serve();
    let auth = session_cookie(&server.addr, &alice, "alice-pw");
    let web = format!("{alice}--web");
    let (_, page) = get(&server.addr, &auth, &format!("/my/containers/{web}/files"));
    let csrf = csrf_of(&page);
    // Docker refuses: the target is a file, not a directory. Its words name
    // the daemon's internals; the student gets a reference instead.
    let upload = |dir: &str| {
        let boundary = "b0undary";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"dir\"\r\n\r\n{dir}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello\r\n--{boundary}--\r\n"
        );
        let (_, answer) = http_raw(
            &server.addr,
            "POST",
            &format!("/my/containers/{web}/files"),
            &[
                ("Cookie", &auth),
                (
                    "Content-Type",
                    &format!("multipart/form-data; boundary={boundary}"),
                ),
            ],
            body.as_bytes(),
        )
        .expect("upload");
        String::from_utf8_lossy(&answer).into_owned()
    };
    let answer = upload("/bin/busybox");
    assert!(
        answer.contains("the upload failed; an admin can read audit #"),
        "{answer}"
    );
    assert!(!answer.contains("Docker responded"), "{answer}");
    let audit = berth_tests::stdout(&w.reconciler(&["audit", "--account", &alice]));
    assert!(audit.contains("console-error"), "{audit}");
    // What a student can mend is said plainly.
    let answer = upload("/no/such/dir");
    assert!(
        answer.contains("/no/such/dir does not exist in the container"),
        "{answer}"
    );
}

/// Three wrong passwords for `user`, then the right one, each from the
/// client address `forwarded` claims; the last answer's status.
fn guesses_then_login(
    addr: &str,
    user: &str,
    password: &str,
    attacker: &str,
    student: &str,
) -> u16 {
    let form = |p: &str| format!("username={user}&password={p}");
    for i in 0..3 {
        let (code, _) = http_raw(
            addr,
            "POST",
            "/login",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("X-Forwarded-For", attacker),
            ],
            form(&format!("guess{i}")).as_bytes(),
        )
        .expect("login");
        assert_eq!(code, 401, "a wrong password");
    }
    http_raw(
        addr,
        "POST",
        "/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Forwarded-For", student),
        ],
        form(password).as_bytes(),
    )
    .expect("login")
    .0
}

#[test]
fn a_strangers_guesses_do_not_lock_a_student_out_and_forwarded_addresses_need_a_trusted_proxy() {
    let _serial = serial();
    let Some(s) = Services::from_env() else {
        return;
    };
    // Behind a trusted proxy (here: loopback), each client is its own
    // address: the stranger's three guesses lock only the stranger out.
    let mut w = World::new(&s, 28500);
    w.site_overrides.extra = "trusted_proxies: [127.0.0.1]\n".into();
    let alice = w.student("rt", "alice-pw");
    let server = w.serve();
    let code = guesses_then_login(&server.addr, &alice, "alice-pw", "192.0.2.1", "192.0.2.2");
    assert_eq!(code, 303, "alice was locked out by a stranger's guesses");
    drop(server);

    // From a peer that is no trusted proxy, X-Forwarded-For is the
    // client's own word and is ignored: the guesses count for the peer.
    let mut w = World::new(&s, 28600);
    w.site_overrides.extra = "trusted_proxies: [10.9.9.0/24]\n".into();
    let bob = w.student("ru", "bob-pw");
    let server = w.serve();
    let code = guesses_then_login(&server.addr, &bob, "bob-pw", "192.0.2.1", "192.0.2.2");
    assert_eq!(code, 429, "a forged X-Forwarded-For escaped the throttle");
}
