//! `reconciler serve` end to end: real dockerd, slapd and git; GitLab's API
//! is a wiremock server answering as GitLab documents. Webhooks go over
//! real HTTP to the real binary.

use berth_tests::fixture::{GITLAB_TOKEN, WEBHOOK_SECRET, World, statuses, wait_status};
use berth_tests::{Services, wait_for};

use std::time::Duration;
use wiremock::matchers::{header, method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn web(greeting: &str, image: &str) -> String {
    format!(
        "version: 1\ncontainers:\n  - name: web\n    image: {image}\n    env: {{ GREETING: {greeting} }}\n    ports: [8080]\n"
    )
}

async fn gitlab() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/api/v4/projects/\d+/statuses/[0-9a-f]{40}$"))
        .and(header("PRIVATE-TOKEN", GITLAB_TOKEN))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(serde_json::json!({"id": 1, "status": "pending"})),
        )
        .mount(&server)
        .await;
    server
}

fn running(w: &World, name: &str) -> bool {
    w.inspect(name, "{{.State.Running}}").as_deref() == Some("true")
}

#[tokio::test(flavor = "multi_thread")]
async fn push_converges_with_statuses_and_refuses_what_it_must() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let _lock = SERIAL.lock().await;
    let gl = gitlab().await;
    let mut w = World::new(&s, 22000);
    w.use_gitlab(&gl).await;
    let a = w.account("a", &["students"]);
    let b = w.account("b", &["students"]);
    let admin = w.account("adm", &["admins"]);
    let server = w.serve();
    let web_name = format!("{a}--web");

    // good push: pending → running → success, container converges
    let r1 = w.commit(&a, Some(&web("one", &s.test_image)), &w.mail(&a));
    assert_eq!(server.push(&a, &r1, &a, "e1", WEBHOOK_SECRET), 202);
    let seen = wait_status(&gl, &r1, "success").await;
    let order: Vec<&str> = seen.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(order, ["pending", "running", "success"], "{seen:?}");
    assert!(running(&w, &web_name));

    // wrong token: 401, nothing queued
    let r2 = w.commit(&a, Some(&web("two", &s.test_image)), &w.mail(&a));
    assert_eq!(server.push(&a, &r2, &a, "e2", "wrong"), 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        statuses(&gl, &r2).await.is_empty(),
        "nothing happens for an unauthenticated push"
    );

    // push by another student to a's repository: failed, nothing changed
    let id = w.inspect(&web_name, "{{.Id}}");
    assert_eq!(server.push(&a, &r2, &b, "e3", WEBHOOK_SECRET), 202);
    let seen = wait_status(&gl, &r2, "failed").await;
    assert!(
        seen.iter()
            .any(|(_, d)| d.contains(&format!("pusher `{b}` is neither `{a}` nor an admin"))),
        "{seen:?}"
    );
    assert_eq!(w.inspect(&web_name, "{{.Id}}"), id);

    // the same revision pushed by an admin: accepted
    assert_eq!(server.push(&a, &r2, &admin, "e4", WEBHOOK_SECRET), 202);
    wait_status(&gl, &r2, "success").await;
    wait_for(
        Duration::from_secs(20),
        "recreated with GREETING=two",
        || {
            w.inspect(&web_name, "{{.Config.Env}}")
                .filter(|e| e.contains("GREETING=two"))
        },
    );

    // invalid file: failed status with line:col, old container still running
    let r3 = w.commit(
        &a,
        Some("version: 1\ncontainers:\n  - name: web\n    imgae: x\n"),
        &w.mail(&a),
    );
    assert_eq!(server.push(&a, &r3, &a, "e5", WEBHOOK_SECRET), 202);
    let seen = wait_status(&gl, &r3, "failed").await;
    assert!(
        seen.iter()
            .any(|(_, d)| d
                .contains("workspace.yaml:4:5: unknown field `imgae`, did you mean `image`?")),
        "{seen:?}"
    );
    assert!(running(&w, &web_name));

    // a replayed delivery is acknowledged once
    let before = server.metric("berth_reconcile_duration_seconds_count");
    assert_eq!(server.push(&a, &r3, &a, "e5", WEBHOOK_SECRET), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.metric("berth_reconcile_duration_seconds_count"),
        before
    );
    assert_eq!(
        server.metric("berth_webhook_events_total{outcome=\"duplicate\"}"),
        1.0
    );

    let (code, stderr) = server.terminate();
    assert_eq!(code, Some(0), "clean exit on SIGTERM: {stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_pushes_ends_in_few_reconciles_of_the_newest_revision() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let _lock = SERIAL.lock().await;
    let gl = gitlab().await;
    let mut w = World::new(&s, 22100);
    w.use_gitlab(&gl).await;
    let a = w.account("a", &["students"]);
    let server = w.serve();
    let mut revisions = Vec::new();
    for i in 0..5 {
        revisions.push(w.commit(&a, Some(&web(&format!("v{i}"), &s.test_image)), &w.mail(&a)));
    }
    let newest = revisions.last().cloned().expect("revisions");
    let before = server.metric("berth_reconcile_duration_seconds_count");
    for i in 0..100 {
        // Older revisions first, the pushed head last, as GitLab delivers them.
        let rev = &revisions[(i * revisions.len() / 100).min(revisions.len() - 1)];
        let rev = if i == 99 { &newest } else { rev };
        assert_eq!(
            server.push(&a, rev, &a, &format!("burst-{i}"), WEBHOOK_SECRET),
            202
        );
    }
    wait_status(&gl, &newest, "success").await;
    wait_for(Duration::from_secs(20), "newest revision running", || {
        w.inspect(&format!("{a}--web"), "{{.Config.Env}}")
            .filter(|e| e.contains("GREETING=v4"))
    });
    let reconciles = server.metric("berth_reconcile_duration_seconds_count") - before;
    assert!(
        (1.0..=2.0).contains(&reconciles),
        "{reconciles} reconciles for a burst of 100"
    );
    assert_eq!(w.status(&a)["revision"], newest.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn statuses_are_retried_when_gitlab_fails() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let _lock = SERIAL.lock().await;
    let gl = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&gl)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 1})))
        .with_priority(2)
        .mount(&gl)
        .await;
    let mut w = World::new(&s, 22200);
    w.use_gitlab(&gl).await;
    let a = w.account("a", &["students"]);
    let server = w.serve();
    let r = w.commit(&a, Some(&web("x", &s.test_image)), &w.mail(&a));
    assert_eq!(server.push(&a, &r, &a, "r1", WEBHOOK_SECRET), 202);
    let seen = wait_status(&gl, &r, "success").await;
    // The first "pending" hit two 500s and went through on the third try.
    assert_eq!(
        seen.iter().filter(|(s, _)| s == "pending").count(),
        3,
        "{seen:?}"
    );
    assert!(running(&w, &format!("{a}--web")));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_reconcile_exits_cleanly_and_the_next_start_converges() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let _lock = SERIAL.lock().await;
    let gl = gitlab().await;
    let mut w = World::new(&s, 22300);
    w.use_gitlab(&gl).await;
    let a = w.account("a", &["staff"]);
    let many: String = (0..10)
        .map(|i| {
            format!(
                "  - {{ name: c{i}, image: {}, ports: [8080] }}\n",
                s.test_image
            )
        })
        .collect();
    let r = w.commit(
        &a,
        Some(&format!("version: 1\ncontainers:\n{many}")),
        &w.mail(&a),
    );
    let server = w.serve();
    assert_eq!(server.push(&a, &r, &a, "t1", WEBHOOK_SECRET), 202);
    wait_for(
        Duration::from_secs(30),
        "the reconcile to be under way",
        || (!w.containers_of(&a).is_empty()).then_some(()),
    );
    let (code, stderr) = server.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    // The revision was accepted before any action ran, so a restart (whose
    // first resync needs no push) finishes the job.
    let _server = w.serve();
    wait_for(Duration::from_secs(60), "all 10 containers running", || {
        let names = w.containers_of(&a);
        (names.len() == 10 && names.iter().all(|n| running(&w, n))).then_some(())
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_mode_reconciles_local_pushes_without_gitlab() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let _lock = SERIAL.lock().await;
    let mut w = World::new(&s, 22600);
    let a = w.account("a", &["students"]);
    w.commit(&a, Some("version: 1\n"), &w.mail(&a));
    let repos = w.repos_dir().display().to_string();
    let _server = w.serve_with(&["--watch", &repos]);
    w.commit(&a, Some(&web("watched", &s.test_image)), &w.mail(&a));
    wait_for(
        Duration::from_secs(30),
        "the pushed revision to run",
        || running(&w, &format!("{a}--web")).then_some(()),
    );
    // A commit from someone else is refused the same way as through apply.
    w.commit(&a, Some(&web("evil", &s.test_image)), "mallory@evil.test");
    wait_for(
        Duration::from_secs(30),
        "the rejection to be recorded",
        || {
            w.status(&a)["last_error"]
                .as_str()
                .filter(|e| e.contains("committer email"))
                .map(str::to_string)
        },
    );
    assert!(
        w.inspect(&format!("{a}--web"), "{{.Config.Env}}")
            .is_some_and(|e| e.contains("GREETING=watched"))
    );
}

/// Reading a repository is an inotify event too (`IN_OPEN`): serve's own
/// reads of a watched repository queued another reconcile of it, for ever,
/// four times a second — and each undid whatever a student had just
/// stopped. Only writes to refs queue a reconcile now.
#[tokio::test(flavor = "multi_thread")]
async fn watch_mode_does_not_reconcile_on_its_own_reads() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let _lock = SERIAL.lock().await;
    let mut w = World::new(&s, 22700);
    let a = w.account("a", &["students"]);
    let b = w.account("b", &["students"]);
    w.commit(&a, Some(&web("a", &s.test_image)), &w.mail(&a));
    w.commit(&b, Some("version: 1\n"), &w.mail(&b));
    let repos = w.repos_dir().display().to_string();
    let server = w.serve_with(&["--watch", &repos]);
    wait_for(Duration::from_secs(30), "a's container to run", || {
        running(&w, &format!("{a}--web")).then_some(())
    });
    // Stopped behind Berth's back, as the console does: nothing pushed, so
    // nothing should start it again until the next resync (5 minutes).
    let stopped = s.docker(&["stop", "-t", "1", &format!("{a}--web")]);
    assert!(stopped.status.success());
    let before = server.metric("berth_reconcile_duration_seconds_count");
    // Another account's push, reconciled and running, is the clock.
    w.commit(&b, Some(&web("b", &s.test_image)), &w.mail(&b));
    wait_for(
        Duration::from_secs(30),
        "b's pushed revision to run",
        || running(&w, &format!("{b}--web")).then_some(()),
    );
    // The container runs before its reconcile ends and is counted.
    let reconciles = wait_for(Duration::from_secs(30), "b's reconcile to count", || {
        let n = server.metric("berth_reconcile_duration_seconds_count") - before;
        (n >= 1.0).then_some(n)
    });
    assert!(
        !running(&w, &format!("{a}--web")),
        "a was reconciled without a push ({reconciles} reconciles for one push)"
    );
    assert!(
        (1.0..=2.0).contains(&reconciles),
        "{reconciles} reconciles for one push"
    );
}

/// In GitLab mode a resync does not take a head without its push, and it
/// cleared the refusal of that very head: a student's "the last push was
/// not applied" vanished at the next resync though the broken file was
/// still their head (seen through the TLS proxy test). The refusal stands
/// until a push is evaluated again.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_push_stays_refused_across_resyncs() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let _lock = SERIAL.lock().await;
    let gl = gitlab().await;
    let mut w = World::new(&s, 22800);
    w.use_gitlab(&gl).await;
    w.site_overrides.resync = "1s".into();
    let a = w.account("a", &["students"]);
    let server = w.serve();
    let good = w.commit(&a, Some(&web("one", &s.test_image)), &w.mail(&a));
    assert_eq!(server.push(&a, &good, &a, "r1", WEBHOOK_SECRET), 202);
    wait_for(Duration::from_secs(30), "the good push to run", || {
        running(&w, &format!("{a}--web")).then_some(())
    });
    let broken = w.commit(&a, Some("version: 1\ncolour: blue\n"), &w.mail(&a));
    assert_eq!(server.push(&a, &broken, &a, "r2", WEBHOOK_SECRET), 202);
    let refused = |w: &World| {
        w.status(&a)["last_error_student"]
            .as_str()
            .filter(|e| e.contains("colour"))
            .map(str::to_string)
    };
    wait_for(Duration::from_secs(30), "the refusal", || refused(&w));
    // Three resyncs later, still refused.
    let before = server.metric("berth_reconcile_duration_seconds_count");
    wait_for(Duration::from_secs(30), "three resyncs", || {
        (server.metric("berth_reconcile_duration_seconds_count") >= before + 3.0).then_some(())
    });
    assert!(
        refused(&w).is_some(),
        "the refusal was cleared by a resync: {}",
        w.status(&a)
    );
    assert!(running(&w, &format!("{a}--web")), "what runs is unchanged");
}
