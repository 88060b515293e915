//! Isolation between students through `reconciler serve` and GitLab (issue
//! 10): the CI runner's limits and allow-lists, webhook project paths,
//! the pusher's LDAP identity, and what commit statuses tell students.
//! Each test failed on the code before the fix (see docs/security.md).

use berth_tests::fixture::{GitLabUsers, WEBHOOK_SECRET, World, push_event, wait_status};
use berth_tests::{Services, http_post, stdout, wait_for};
use std::time::Duration;
use wiremock::matchers::{body_partial_json, method, path, path_regex};
use wiremock::{Mock, ResponseTemplate};

const WAIT: Duration = Duration::from_secs(40);

fn web(image: &str, volume: &str) -> String {
    format!(
        "version: 1\ncontainers:\n  - name: web\n    image: {image}\n    volumes: [{{ name: {volume}, path: /data }}]\n"
    )
}

fn running(w: &World, name: &str) -> Option<String> {
    w.inspect(name, "{{.State.Running}}")
}

use berth_tests::gitlab::statuses_mock as gitlab;

/// Hole 1: CI jobs ran unlimited `services:` from any image, and
/// `if-not-present` let a job run an image another account pulled. The
/// runner's config now limits services, allows only the images the account
/// may use, always pulls, and a share added later is written into the
/// running runner's config without recreating it.
#[tokio::test(flavor = "multi_thread")]
async fn ci_jobs_stay_inside_quota_and_image_rules() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let gl = gitlab().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/user/runners"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(serde_json::json!({"id": 901, "token": "glrt-isolation"})),
        )
        .mount(&gl)
        .await;
    let mut w = World::new(&s, 24000);
    w.use_gitlab(&gl).await;
    w.site_overrides.runner_image = Some(s.test_image.clone());
    w.site_overrides.registry = Some(s.registry.clone());
    w.site_overrides.resync = "2s".into();
    let a = w.account("ci", &["students"]);
    let owner = w.account("cio", &["students"]);
    let server = w.serve();
    let r = w.commit(
        &a,
        Some("version: 1\nrunner: { enabled: true, tags: [docker] }\n"),
        &w.mail(&a),
    );
    assert_eq!(server.push(&a, &r, &a, "ci-1", WEBHOOK_SECRET), 202);
    let runner = format!("{a}.runner");
    wait_for(WAIT, "the runner to run", || {
        (running(&w, &runner).as_deref() == Some("true")).then_some(())
    });
    let config = |w: &World| -> toml::Value {
        let out = w.services.docker(&[
            "exec",
            &runner,
            "/bin/busybox",
            "cat",
            "/etc/gitlab-runner/config.toml",
        ]);
        toml::from_str(&stdout(&out)).expect("config.toml is TOML")
    };
    let strings = |v: &toml::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let c = config(&w);
    let d = &c["runners"][0]["docker"];
    assert_eq!(strings(&d["pull_policy"]), ["always"]);
    assert_eq!(strings(&d["allowed_pull_policies"]), ["always"]);
    assert_eq!(d["services_limit"].as_integer(), Some(2));
    // students: 4 CPUs, 4 GiB → 2 jobs × (1 CPU + 2 services × 0.5 CPU).
    assert_eq!(d["cpus"].as_str(), Some("1"));
    assert_eq!(d["memory"].as_str(), Some("1024m"));
    assert_eq!(d["service_cpus"].as_str(), Some("0.5"));
    assert_eq!(d["service_memory"].as_str(), Some("512m"));
    let allowed = strings(&d["allowed_images"]);
    assert!(
        allowed.contains(&format!("{}/{a}/**", s.registry)),
        "{allowed:?}"
    );
    assert_eq!(allowed, strings(&d["allowed_services"]));
    let shared = format!("{}/{owner}/tools", s.registry);
    assert!(
        !allowed.iter().any(|p| p.starts_with(&shared)),
        "{allowed:?}"
    );
    let id = w.inspect(&runner, "{{.Id}}");

    // The owner shares a repository: the runner's config learns it in place.
    let image = format!("{shared}:1");
    assert!(s.docker(&["tag", &s.test_image, &image]).status.success());
    assert!(s.docker(&["push", &image]).status.success());
    let share = format!("version: 1\nimages:\n  share:\n    - image: {image}\n");
    let r = w.commit(&owner, Some(&share), &w.mail(&owner));
    assert_eq!(server.push(&owner, &r, &owner, "ci-2", WEBHOOK_SECRET), 202);
    wait_status(&gl, &r, "success").await;
    wait_for(WAIT, "the share in the runner's allow-list", || {
        strings(&config(&w)["runners"][0]["docker"]["allowed_images"])
            .contains(&format!("{shared}:*"))
            .then_some(())
    });
    assert_eq!(
        w.inspect(&runner, "{{.Id}}"),
        id,
        "rewritten in place, not recreated"
    );
    assert_eq!(running(&w, &runner).as_deref(), Some("true"));
    s.docker(&["rmi", &image]);
}

/// Hole 4: the webhook took the first path segment as the account and
/// stored the project id before checking the pusher, so a push to
/// `alice/evil` (or a refused push) chose where alice's runner registers.
#[tokio::test(flavor = "multi_thread")]
async fn pushes_to_other_projects_are_ignored_and_never_record_a_project() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let gl = gitlab().await;
    let mut w = World::new(&s, 24400);
    w.use_gitlab(&gl).await;
    let a = w.account("wh", &["students"]);
    let b = w.account("whb", &["students"]);
    let server = w.serve();
    let head = w.commit(&a, Some("version: 1\n"), &w.mail(&a));
    let mut event: serde_json::Value =
        serde_json::from_str(&push_event(&a, &head, &b)).expect("event");
    event["project"]["path_with_namespace"] = format!("{a}/evil").into();
    event["project_id"] = 666.into();
    event["project"]["id"] = 666.into();
    let headers = [
        ("X-Gitlab-Token", WEBHOOK_SECRET),
        ("X-Gitlab-Event", "Push Hook"),
        ("X-Gitlab-Event-UUID", "evil-1"),
    ];
    let (code, body) =
        http_post(&server.addr, "/hooks/gitlab", &headers, &event.to_string()).expect("post");
    assert_eq!((code, body.trim()), (200, "{\"status\":\"ignored\"}"));
    assert_eq!(
        server.metric("berth_webhook_events_total{outcome=\"not_a_workspace\"}"),
        1.0
    );
    // A refused push to the right project records nothing either.
    assert_eq!(server.push(&a, &head, &b, "evil-2", WEBHOOK_SECRET), 202);
    let failed = wait_status(&gl, &head, "failed").await;
    assert!(
        failed.iter().any(|(_, d)| d.contains("is neither")),
        "{failed:?}"
    );
    let store = berth_reconciler::store::Store::open(&w.state_dir()).expect("store");
    assert_eq!(store.project(&a).expect("read"), None);
    // Only the owner's accepted push names the project.
    assert_eq!(server.push(&a, &head, &a, "ok-1", WEBHOOK_SECRET), 202);
    wait_status(&gl, &head, "success").await;
    assert_eq!(store.project(&a).expect("read"), Some(1000));
}

/// Hole 6: the pusher's username alone authenticated; a local GitLab
/// account named like a student deployed as that student.
#[tokio::test(flavor = "multi_thread")]
async fn a_gitlab_user_without_the_students_ldap_identity_never_deploys() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let gl = gitlab().await;
    let mut w = World::new(&s, 24600);
    w.site_overrides.gitlab = Some(gl.uri());
    let a = w.account("idn", &["students"]);
    Mock::given(method("GET"))
        .and(path_regex(r"^/api/v4/users/\d+$"))
        .respond_with(GitLabUsers {
            ldap_base: s.ldap_base.clone(),
            local_only: vec![a.clone()],
        })
        .mount(&gl)
        .await;
    let server = w.serve();
    let r = w.commit(&a, Some(&web(&s.test_image, "data")), &w.mail(&a));
    assert_eq!(server.push(&a, &r, &a, "idn-1", WEBHOOK_SECRET), 202);
    let seen = wait_status(&gl, &r, "failed").await;
    assert!(
        seen.iter()
            .any(|(_, d)| d.contains("has no GitLab login through LDAP provider `ldapmain`")),
        "{seen:?}"
    );
    assert_eq!(w.inspect(&format!("{a}--web"), "{{.Id}}"), None);
}

/// Hole 9: backend errors (internal addresses, other services' answers)
/// went into commit statuses that students read.
#[tokio::test(flavor = "multi_thread")]
async fn students_see_an_audit_id_not_the_backends_words() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let gl = gitlab().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/user/runners"))
        .and(body_partial_json(serde_json::json!({"project_id": 1000})))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(serde_json::json!({"message": "db 10.9.8.7:5432 refused"})),
        )
        .mount(&gl)
        .await;
    let mut w = World::new(&s, 24800);
    w.use_gitlab(&gl).await;
    w.site_overrides.runner_image = Some(s.test_image.clone());
    let a = w.account("au", &["students"]);
    let server = w.serve();
    let r = w.commit(
        &a,
        Some("version: 1\nrunner: { enabled: true, tags: [x] }\n"),
        &w.mail(&a),
    );
    assert_eq!(server.push(&a, &r, &a, "au-1", WEBHOOK_SECRET), 202);
    let seen = wait_status(&gl, &r, "failed").await;
    let (_, text) = seen.iter().find(|(s, _)| s == "failed").expect("failed");
    assert!(!text.contains("10.9.8.7"), "{text}");
    assert!(text.contains("audit #"), "{text}");
    let audit = stdout(&w.reconciler(&["audit", "--account", &a]));
    assert!(audit.contains("10.9.8.7"), "the admin sees it: {audit}");
    // The read model keeps both: the detail for admins, the id for students.
    let status = w.status(&a);
    let student = status["last_error_student"].as_str().unwrap_or_default();
    assert!(
        student.contains("audit #") && !student.contains("10.9.8.7"),
        "{status}"
    );
    assert!(
        status["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("10.9.8.7"),
        "{status}"
    );
}
