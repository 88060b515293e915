//! Repositories discovered in GitLab groups and mirrored locally: discovery
//! through the (mocked) API, `gitlab install-hooks`, revisions that wait for
//! an authenticated push, and a push that fetches and converges.

use berth_tests::fixture::{WEBHOOK_SECRET, World};
use berth_tests::{Services, stdout, wait_for};
use std::time::Duration;
use wiremock::matchers::{body_partial_json, method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test(flavor = "multi_thread")]
async fn discovery_hooks_and_push_in_gitlab_mode() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 22400);
    let a = w.account("a", &["students"]);
    let gl = MockServer::start().await;
    let project = serde_json::json!([
        {"id": 77, "path_with_namespace": format!("{a}/workspace"), "default_branch": "main",
         "namespace": {"kind": "user", "path": a, "full_path": a}},
        {"id": 78, "path_with_namespace": format!("{a}/homework"), "default_branch": "main"},
        {"id": 79, "path_with_namespace": "someone/workspace", "default_branch": "main"}
    ]);
    Mock::given(method("GET"))
        .and(path("/api/v4/groups/students/projects"))
        .respond_with(ResponseTemplate::new(200).set_body_json(project))
        .mount(&gl)
        .await;
    Mock::given(method("HEAD"))
        .and(path("/api/v4/projects/77/repository/files/workspace.yaml"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&gl)
        .await;
    Mock::given(method("HEAD"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&gl)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/77/hooks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([])))
        .mount(&gl)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v4/projects/77/hooks"))
        .and(body_partial_json(serde_json::json!({"url": "http://berth.test/hooks/gitlab", "token": WEBHOOK_SECRET, "push_events": true})))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 5, "url": "http://berth.test/hooks/gitlab"})))
        .expect(1)
        .mount(&gl)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"/statuses/"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&gl)
        .await;
    w.use_gitlab(&gl).await;
    w.site_overrides.gitlab_repositories = true;

    let rev = w.commit(
        &a,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: web, image: {}, ports: [8080] }}\n",
            s.test_image
        )),
        &w.mail(&a),
    );
    let hooks = w.reconciler(&[
        "gitlab",
        "install-hooks",
        "--url",
        "http://berth.test/hooks/gitlab",
    ]);
    assert_eq!(
        hooks.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&hooks.stderr)
    );
    assert!(
        stdout(&hooks).contains(&format!("{a}: {a}/workspace hook 5")),
        "{}",
        stdout(&hooks)
    );

    // Discovered and mirrored, but no authenticated push yet: nothing runs.
    let diff = w.reconciler(&["diff"]);
    assert!(
        stdout(&diff).contains(&format!(
            "{a}: revision {} awaits an authenticated push",
            &rev[..12]
        )),
        "{}",
        stdout(&diff)
    );
    assert!(
        w.dir
            .join(format!("state/mirrors/{a}/workspace.git/HEAD"))
            .exists(),
        "mirror cloned"
    );
    w.apply(0);
    assert!(w.containers_of(&a).is_empty());

    let server = w.serve();
    assert_eq!(server.push(&a, &rev, &a, "g1", WEBHOOK_SECRET), 202);
    wait_for(
        Duration::from_secs(30),
        "the pushed revision to run",
        || {
            (w.inspect(&format!("{a}--web"), "{{.State.Running}}")
                .as_deref()
                == Some("true"))
            .then_some(())
        },
    );
    // A later commit is fetched on its push.
    let rev2 = w.commit(
        &a,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: web, image: {}, env: {{ V: '2' }} }}\n",
            s.test_image
        )),
        &w.mail(&a),
    );
    assert_eq!(server.push(&a, &rev2, &a, "g2", WEBHOOK_SECRET), 202);
    wait_for(
        Duration::from_secs(30),
        "the second revision to run",
        || {
            w.inspect(&format!("{a}--web"), "{{.Config.Env}}")
                .filter(|e| e.contains("V=2"))
        },
    );
}

/// A classmate who may create subgroups makes `students/<theirs>/<a>/workspace`:
/// the same account by path, not by ownership. Discovery takes only a
/// project the account owns, and prefers `students/<a>/workspace`.
#[tokio::test(flavor = "multi_thread")]
async fn a_classmates_subgroup_cannot_shadow_an_accounts_workspace() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 28800);
    let a = w.account("sa", &["students"]);
    let b = w.account("sb", &["students"]);
    let gl = MockServer::start().await;
    let projects = serde_json::json!([
        {"id": 81, "path_with_namespace": format!("students/{a}/workspace"), "default_branch": "main",
         "namespace": {"kind": "group", "path": a, "full_path": format!("students/{a}")}},
        {"id": 82, "path_with_namespace": format!("students/{b}-lab/{a}/workspace"), "default_branch": "main",
         "namespace": {"kind": "group", "path": a, "full_path": format!("students/{b}-lab/{a}")}}
    ]);
    Mock::given(method("GET"))
        .and(path("/api/v4/groups/students/projects"))
        .respond_with(ResponseTemplate::new(200).set_body_json(projects))
        .mount(&gl)
        .await;
    Mock::given(method("HEAD"))
        .and(path_regex(
            r"^/api/v4/projects/8[12]/repository/files/workspace.yaml$",
        ))
        .respond_with(ResponseTemplate::new(200))
        .mount(&gl)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/users"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!([{"id": 501, "username": a}])),
        )
        .mount(&gl)
        .await;
    // a maintains her own group's project; in b's subgroup she is nobody.
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/81/members/all/501"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"id": 501, "access_level": 40})),
        )
        .mount(&gl)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/82/members/all/501"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&gl)
        .await;
    for id in [81, 82] {
        Mock::given(method("GET"))
            .and(path(format!("/api/v4/projects/{id}/hooks")))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([])))
            .mount(&gl)
            .await;
        Mock::given(method("POST"))
            .and(path(format!("/api/v4/projects/{id}/hooks")))
            .respond_with(ResponseTemplate::new(201).set_body_json(
                serde_json::json!({"id": id, "url": "http://berth.test/hooks/gitlab"}),
            ))
            .mount(&gl)
            .await;
    }
    w.use_gitlab(&gl).await;
    w.site_overrides.gitlab_repositories = true;
    let hooks = w.reconciler(&[
        "gitlab",
        "install-hooks",
        "--url",
        "http://berth.test/hooks/gitlab",
    ]);
    let out = stdout(&hooks);
    assert!(
        out.contains(&format!("{a}: students/{a}/workspace hook 81")),
        "{out}\n{}",
        String::from_utf8_lossy(&hooks.stderr)
    );
    assert!(
        !out.contains(&format!("{b}-lab")),
        "the classmate's project was taken as {a}'s:\n{out}"
    );
}

/// Where GitLab's webhooks cannot reach Berth: no webhook secret (every
/// delivery refused), `repositories.gitlab.poll` instead. A moved default
/// branch is reconciled as a push by the user GitLab's event list names:
/// the owner's push runs, a classmate's is refused exactly as a webhook
/// push would be, and handed on once, not every round.
#[tokio::test(flavor = "multi_thread")]
async fn pushes_are_noticed_by_polling_with_the_webhook_off() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 29200);
    let a = w.account("qa", &["students"]);
    let b = w.account("qb", &["students"]);
    let gl = berth_tests::gitlab::statuses_mock().await;
    w.use_gitlab(&gl).await;
    w.serve_git_from(&gl).await;
    w.site_overrides.poll = Some("1s".into());
    w.site_overrides.no_webhook = true;
    Mock::given(method("GET"))
        .and(path("/api/v4/groups/students/projects"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([
            {"id": 1000, "path_with_namespace": format!("{a}/workspace"), "default_branch": "main",
             "namespace": {"kind": "user", "path": a, "full_path": a}}
        ])))
        .mount(&gl)
        .await;
    Mock::given(method("HEAD"))
        .and(path(
            "/api/v4/projects/1000/repository/files/workspace.yaml",
        ))
        .respond_with(ResponseTemplate::new(200))
        .mount(&gl)
        .await;
    let events = berth_tests::gitlab::PushEvents::default();
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/1000/events"))
        .respond_with(events.clone())
        .mount(&gl)
        .await;
    let web = |v: &str| {
        format!(
            "version: 1\ncontainers:\n  - {{ name: web, image: {}, env: {{ V: '{v}' }} }}\n",
            s.test_image
        )
    };
    let rev1 = w.commit(&a, Some(&web("1")), &w.mail(&a));
    events.record(&rev1, "main", &a);
    let server = w.serve();
    assert_eq!(
        server.push(&a, &rev1, &a, "no-hook", WEBHOOK_SECRET),
        401,
        "the webhook is off"
    );
    wait_for(
        Duration::from_secs(60),
        "the polled revision to run",
        || {
            w.inspect(&format!("{a}--web"), "{{.Config.Env}}")
                .filter(|e| e.contains("V=1"))
        },
    );

    // GitLab says the classmate pushed this one: refused, nothing changes.
    let rev2 = w.commit(&a, Some(&web("2")), &w.mail(&a));
    events.record(&rev2, "main", &b);
    let refused = berth_tests::gitlab::wait_status(&gl, &rev2, "failed").await;
    assert!(refused.iter().any(|(_, d)| d.contains(&b)), "{refused:?}");

    // The owner's next push runs; by then several rounds passed, and the
    // refused commit was handed on only once.
    let rev3 = w.commit(&a, Some(&web("3")), &w.mail(&a));
    events.record(&rev3, "main", &a);
    wait_for(
        Duration::from_secs(60),
        "the owner's next push to run",
        || {
            w.inspect(&format!("{a}--web"), "{{.Config.Env}}")
                .filter(|e| e.contains("V=3"))
        },
    );
    let failed = berth_tests::gitlab::statuses(&gl, &rev2)
        .await
        .into_iter()
        .filter(|(st, _)| st == "failed")
        .count();
    assert_eq!(failed, 1, "the refused commit was reconciled again");

    // One round by hand: nothing moved, the repository was asked over HTTP.
    let out = w.reconciler(&["gitlab", "poll"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("polled 1 repositories") && stdout(&out).contains("0 moved"),
        "{}",
        stdout(&out)
    );
}
