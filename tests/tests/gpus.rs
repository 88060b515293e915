//! GPU lending on real dockerd and slapd, with a stand-in for NVIDIA's
//! runtime hook on the test daemon's PATH (scripts/lib/services.sh), so
//! containers asking for GPUs really start and stop with the device ids
//! Berth lent in their HostConfig; no card is there, so what a card does
//! inside the container is not tried. A grant ends on time and the next
//! in line starts; a booking shortens another group's grant and serves
//! its own group; idle cards (a DCGM exporter's answer served by the
//! test) end a grant early; the console shows the line.

use berth_tests::fixture::{WEBHOOK_SECRET, World};
use berth_tests::{Services, console_get, console_post, csrf_of, session_cookie, stdout, wait_for};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(40);

/// A workspace with one GPU container (and a volume, to see it kept).
fn train(image: &str, extra: &str) -> String {
    format!(
        "version: 1\ncontainers:\n  - name: train\n    image: \"{image}\"\n    resources: {{ cpus: 0.1, memory: 32Mi, gpus: 1{extra} }}\n    volumes: [{{ name: data, path: /data }}]\n    command: [\"/bin/busybox\", \"sleep\", \"3600\"]\n"
    )
}

fn running(w: &World, name: &str) -> bool {
    w.inspect(name, "{{.State.Running}}").as_deref() == Some("true")
}

fn devices(w: &World, name: &str) -> Option<String> {
    w.inspect(
        name,
        "{{range .HostConfig.DeviceRequests}}{{json .DeviceIDs}}{{end}}",
    )
}

fn audit(w: &World, account: &str) -> String {
    stdout(&w.reconciler(&["audit", "--account", account]))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grant_ends_on_time_and_the_next_in_line_gets_the_card() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 30100);
    w.site_overrides.docker_endpoint = Some("gpus: 1".into());
    w.site_overrides.student_quota_extra = ", gpu_time: 20s, gpu_time_max: 30s".into();
    w.site_overrides.policy_extra = "  gpus: { warn_before: 5s, shortest: 1s }\n".into();
    let a = w.account("la", &["students"]);
    let b = w.account("lb", &["students"]);
    let root = w.account("lr", &["admins"]);
    w.set_password(&b, "b-pw");
    w.set_password(&root, "r-pw");
    let (ta, tb) = (format!("{a}--train"), format!("{b}--train"));
    w.commit(&a, Some(&train(&s.test_image, "")), &w.mail(&a));
    w.apply(0);
    assert!(running(&w, &ta), "{}", stdout(&w.reconciler(&["status"])));
    assert_eq!(devices(&w, &ta).as_deref(), Some("[\"0\"]"));
    // The only card is lent: b's container waits, first in line.
    w.commit(&b, Some(&train(&s.test_image, "")), &w.mail(&b));
    let out = w.apply(0);
    assert!(!running(&w, &tb), "b started without a card:\n{out}");
    let waiting = &w.status(&b)["gpus"][0];
    assert_eq!(waiting["state"], "waiting", "{waiting}");
    assert_eq!(waiting["position"], 1, "{waiting}");
    let listed = stdout(&w.reconciler(&["gpu", "list"]));
    assert!(
        listed.contains(&format!("{a}/train")) && listed.contains(&format!("waiting: {b}/train")),
        "{listed}"
    );

    let server = w.serve();
    // The console shows b its place in line.
    if let Some(browser) =
        berth_tests::browser::Browser::start(&format!("http://{}", server.addr)).await
    {
        browser.log_in(&b, "b-pw", WAIT).await;
        browser
            .wait_text("waiting for GPUs, #1 in line", WAIT)
            .await;
        browser.screenshot("gpu-waiting").await;
        // The admin page shows the card, its holder and the line.
        browser.click("form[action='/logout'] button").await;
        browser.log_in(&root, "r-pw", WAIT).await;
        browser.goto("/gpus").await;
        browser.wait_text(&format!("{a}/train"), WAIT).await;
        let waiting = browser
            .eval("return document.querySelector('#gpu-waiting').textContent")
            .await;
        assert!(
            waiting
                .as_str()
                .unwrap_or_default()
                .contains(&format!("{b}/train")),
            "{waiting}"
        );
        browser.screenshot("admin-gpus").await;
        browser.close().await;
    }
    // a is warned, then stopped when the grant ends; its volume stays.
    wait_for(WAIT, "a's grant to end", || {
        (!running(&w, &ta)).then_some(())
    });
    let told = audit(&w, &a);
    assert!(
        told.contains("its GPU grant ends at") && told.contains("GPU grant ended: its time is up"),
        "{told}"
    );
    assert!(
        s.docker(&["volume", "inspect", &format!("berth-{a}--data")])
            .status
            .success(),
        "the volume went with the grant"
    );
    // b gets the card, and its container starts with it.
    wait_for(WAIT, "b to start with the card", || {
        (running(&w, &tb) && devices(&w, &tb).as_deref() == Some("[\"0\"]")).then_some(())
    });
    assert_eq!(w.status(&b)["gpus"][0]["state"], "lent");
    // Nobody waits: b may have more time, from the CLI and the console.
    let before = w.status(&b)["gpus"][0]["until"].clone();
    let more = w.reconciler(&[
        "gpu",
        "extend",
        "--account",
        &b,
        "--container",
        "train",
        "--for",
        "30s",
    ]);
    assert_eq!(
        more.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&more.stderr)
    );
    assert!(
        w.status(&b)["gpus"][0]["until"].as_str() > before.as_str(),
        "{before} → {}",
        w.status(&b)["gpus"][0]["until"]
    );
    let auth = session_cookie(&server.addr, &b, "b-pw");
    let (_, home) = console_get(&server.addr, &auth, "/");
    let (code, why) = console_post(
        &server.addr,
        &auth,
        "/my/gpus/train/extend",
        &format!("csrf={}", csrf_of(&home)),
    );
    assert_eq!(code, 303, "{why}");
    assert_eq!(audit(&w, &b).matches("GPU grant extended").count(), 2);
    // a's container stays stopped through a resync: it asks again only
    // when its owner starts it (or pushes).
    w.apply(0);
    assert!(!running(&w, &ta), "a took the card back by itself");
    let status = w.status(&a);
    assert!(status.to_string().contains("GPU grant ended"), "{status}");
}

#[test]
fn a_booking_shortens_other_groups_grants_and_serves_its_own() {
    // (Booking #2 is for an hour from now: after the course's running
    // grant, so nothing else here changes.)
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 30200);
    w.site_overrides.docker_endpoint = Some("gpus: 1".into());
    w.site_overrides.student_quota_extra = ", gpu_time: 1h".into();
    let a = w.account("ba", &["students"]);
    let t = w.account("bt", &["staff"]);
    let c = w.account("bc", &["students"]);
    let course = w.group("course", &[&t]);
    // The course (a directory group of staff) with its own quota, fast
    // warnings, and staff may book cards for the course from the console.
    w.site_overrides.policy_extra = format!(
        "    {course}: {{ containers: 5, cpus: 2, memory: 1Gi, gpus: 1 }}\n  gpus: {{ warn_before: 2s, shortest: 1s, bookers: {{ staff: [{course}] }} }}\n"
    );
    w.set_password(&t, "t-pw");
    w.set_password(&c, "c-pw");
    w.commit(&a, Some(&train(&s.test_image, "")), &w.mail(&a));
    w.apply(0);
    let ta = format!("{a}--train");
    assert!(running(&w, &ta));
    let server = w.serve();
    let now = jiff::Timestamp::now();
    let at = |secs: i64| {
        now.checked_add(jiff::SignedDuration::from_secs(secs))
            .expect("time")
            .to_string()
    };
    let booked = w.reconciler(&[
        "gpu",
        "book",
        "--group",
        &course,
        "--count",
        "1",
        "--from",
        &at(6),
        "--to",
        &at(120),
    ]);
    assert_eq!(
        booked.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&booked.stderr)
    );
    assert!(
        stdout(&booked).starts_with("booking #"),
        "{}",
        stdout(&booked)
    );
    // a's hour is cut to the booking's start, a is told, and stopped then.
    wait_for(WAIT, "a's grant to be shortened", || {
        audit(&w, &a).contains("before booking #").then_some(())
    });
    wait_for(WAIT, "a's container to stop at the booking", || {
        (!running(&w, &ta)).then_some(())
    });
    assert!(
        audit(&w, &a).contains("GPU grant ended: its cards are booked"),
        "{}",
        audit(&w, &a)
    );
    // During the booking a student waits, the course's member is served.
    w.commit(&c, Some(&train(&s.test_image, "")), &w.mail(&c));
    w.commit(&t, Some(&train(&s.test_image, "")), &w.mail(&t));
    w.apply(0);
    assert!(
        running(&w, &format!("{t}--train")),
        "the course's member waits"
    );
    assert!(
        !running(&w, &format!("{c}--train")),
        "a student ran on a booked card"
    );
    assert_eq!(w.status(&c)["gpus"][0]["state"], "waiting");

    // The teacher books from the console; a student may not.
    let form = |auth: &str| {
        let (_, page) = console_get(&server.addr, auth, "/");
        format!(
            "csrf={}&group={course}&count=1&model=&from={}&to={}",
            csrf_of(&page),
            &at(3600)[..16],
            &at(7200)[..16]
        )
    };
    let student = session_cookie(&server.addr, &c, "c-pw");
    let (code, _) = console_post(&server.addr, &student, "/gpus/book", &form(&student));
    assert_eq!(code, 404, "a student booked cards");
    let teacher = session_cookie(&server.addr, &t, "t-pw");
    let (code, why) = console_post(&server.addr, &teacher, "/gpus/book", &form(&teacher));
    assert_eq!(code, 303, "{why}");
    let listed = stdout(&w.reconciler(&["gpu", "list"]));
    assert!(listed.contains("booking #2"), "{listed}");
}

/// A DCGM exporter's answer (the metric names of NVIDIA's dcgm-exporter):
/// card 0 at `util` percent.
fn exporter(util: u32) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let thread = std::thread::spawn(move || {
        for stream in listener.incoming().take(200) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 2048];
            let _ = std::io::Read::read(&mut stream, &mut buf);
            let body = format!(
                "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n# TYPE DCGM_FI_DEV_GPU_UTIL gauge\nDCGM_FI_DEV_GPU_UTIL{{gpu=\"0\",UUID=\"GPU-0000\",device=\"nvidia0\",modelName=\"Test\",Hostname=\"h\"}} {util}\n"
            );
            let _ = std::io::Write::write_all(
                &mut stream,
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    (addr, thread)
}

#[test]
fn idle_cards_end_a_grant_early() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (addr, _exporter) = exporter(0);
    let mut w = World::new(&s, 30300);
    w.site_overrides.docker_endpoint =
        Some(format!("gpus: 1, gpu_metrics: \"http://{addr}/metrics\""));
    w.site_overrides.student_quota_extra = ", gpu_time: 1h".into();
    w.site_overrides.policy_extra =
        "  gpus: { warn_before: 2s, shortest: 1s, idle_after: 4s, idle_below: 5 }\n".into();
    let a = w.account("ia", &["students"]);
    w.commit(&a, Some(&train(&s.test_image, "")), &w.mail(&a));
    w.apply(0);
    let ta = format!("{a}--train");
    assert!(running(&w, &ta));
    let server = w.serve();
    if berth_tests::try_wait_for(WAIT, || (!running(&w, &ta)).then_some(())).is_none() {
        let (_, log) = server.terminate();
        panic!("the idle grant did not end; serve said:\n{log}");
    }
    let told = audit(&w, &a);
    assert!(
        told.contains("(its cards stayed idle)")
            && told.contains("GPU grant ended: its cards stayed idle"),
        "{told}"
    );
}

/// A push whose GPU container must wait is accepted, and its commit
/// status says so, with the place in line.
#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_push_is_told_its_place_in_the_commit_status() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 30400);
    let gl = berth_tests::gitlab::statuses_mock().await;
    w.use_gitlab(&gl).await;
    w.site_overrides.docker_endpoint = Some("gpus: 1".into());
    w.site_overrides.student_quota_extra = ", gpu_time: 1h".into();
    let a = w.account("ca", &["students"]);
    let b = w.account("cb", &["students"]);
    let server = w.serve();
    let first = w.commit(&a, Some(&train(&s.test_image, "")), &w.mail(&a));
    assert_eq!(server.push(&a, &first, &a, "gpu-a", WEBHOOK_SECRET), 202);
    berth_tests::gitlab::wait_status(&gl, &first, "success").await;
    wait_for(WAIT, "a to run with the card", || {
        running(&w, &format!("{a}--train")).then_some(())
    });
    let second = w.commit(&b, Some(&train(&s.test_image, "")), &w.mail(&b));
    assert_eq!(server.push(&b, &second, &b, "gpu-b", WEBHOOK_SECRET), 202);
    let told = berth_tests::gitlab::wait_status(&gl, &second, "success").await;
    assert!(
        told.iter().any(
            |(state, d)| state == "success" && d.contains("`train` waits for GPUs (#1 in line")
        ),
        "{told:?}"
    );
    assert!(!running(&w, &format!("{b}--train")));
}
