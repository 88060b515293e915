//! Per-account GitLab runners end to end: registration through the (mock)
//! API, a runner container (a local stand-in image) on the account's
//! network with a generated config.toml holding the token, the token kept
//! out of status and the audit log, and removal deleting both.

use berth_tests::fixture::{WEBHOOK_SECRET, World};
use berth_tests::{Services, stdout, wait_for};
use std::time::Duration;
use wiremock::matchers::{body_partial_json, method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "glrt-t3st-runner-token";

#[tokio::test(flavor = "multi_thread")]
async fn runner_is_registered_run_and_removed() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let gl = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(r"/statuses/"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&gl)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v4/user/runners"))
        .and(body_partial_json(serde_json::json!({"runner_type": "project_type", "project_id": 1000, "tag_list": "docker,berth"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 321, "token": TOKEN})))
        .expect(1)
        .mount(&gl)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/api/v4/runners/321"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&gl)
        .await;
    let mut w = World::new(&s, 22500);
    w.use_gitlab(&gl).await;
    w.site_overrides.runner_image = Some(s.test_image.clone());
    let a = w.account("a", &["students"]);
    let server = w.serve();
    let runner = format!("{a}.runner");

    let r1 = w.commit(
        &a,
        Some("version: 1\nrunner:\n  enabled: true\n  tags: [docker, berth]\n"),
        &w.mail(&a),
    );
    assert_eq!(server.push(&a, &r1, &a, "run1", WEBHOOK_SECRET), 202);
    wait_for(
        Duration::from_secs(30),
        "the runner container to run",
        || (w.inspect(&runner, "{{.State.Running}}").as_deref() == Some("true")).then_some(()),
    );
    let config = stdout(&s.docker(&[
        "exec",
        &runner,
        "/bin/busybox",
        "cat",
        "/etc/gitlab-runner/config.toml",
    ]));
    let parsed: toml::Value = toml::from_str(&config).expect("config.toml is TOML");
    let runner_cfg = &parsed["runners"][0];
    let docker = &runner_cfg["docker"];
    assert_eq!(runner_cfg["url"].as_str(), Some(gl.uri().as_str()));
    assert_eq!(runner_cfg["token"].as_str(), Some(TOKEN));
    assert_eq!(runner_cfg["executor"].as_str(), Some("docker"));
    assert_eq!(docker["privileged"].as_bool(), Some(false));
    assert_eq!(
        docker["network_mode"].as_str(),
        Some(format!("berth-{a}").as_str())
    );
    // The students' quota (4 CPUs, 4 GiB) over 2 jobs and their services.
    assert_eq!(docker["cpus"].as_str(), Some("1"));
    assert_eq!(docker["memory"].as_str(), Some("1024m"));
    let mode = stdout(&s.docker(&[
        "exec",
        &runner,
        "/bin/busybox",
        "stat",
        "-c",
        "%a",
        "/etc/gitlab-runner/config.toml",
    ]));
    assert_eq!(mode, "600");
    assert_eq!(
        w.inspect(
            &runner,
            "{{.HostConfig.Privileged}} {{.HostConfig.NetworkMode}}"
        )
        .as_deref(),
        Some(format!("false berth-{a}").as_str())
    );
    // The token lives in the store and the runner's container, nowhere else.
    let store = berth_reconciler::store::Store::open(&w.state_dir()).expect("store");
    assert_eq!(store.runner(&a).expect("read").map(|r| r.id), Some(321));
    for args in [
        vec!["status", "--output", "json"],
        vec!["audit", "--output", "json"],
        vec!["diff", "--output", "json"],
    ] {
        let out = w.reconciler(&args);
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains(TOKEN),
            "{args:?} leaks the token"
        );
    }
    let labels = w
        .inspect(&runner, "{{json .Config.Labels}}")
        .unwrap_or_default();
    assert!(!labels.contains(TOKEN), "labels leak the token: {labels}");

    // Removing the runner from the file deletes it in GitLab and on Docker.
    let r2 = w.commit(&a, Some("version: 1\n"), &w.mail(&a));
    assert_eq!(server.push(&a, &r2, &a, "run2", WEBHOOK_SECRET), 202);
    wait_for(
        Duration::from_secs(30),
        "the runner container to go",
        || w.inspect(&runner, "{{.Id}}").is_none().then_some(()),
    );
    wait_for(
        Duration::from_secs(30),
        "the runner to leave the store",
        || store.runner(&a).ok().flatten().is_none().then_some(()),
    );
}
