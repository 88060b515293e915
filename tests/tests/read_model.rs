//! The read model: `GET /api/v1/accounts` serves from memory exactly what
//! `reconciler status --output json` prints, to the admin credential only.

use berth_tests::fixture::{ADMIN_TOKEN, WEBHOOK_SECRET, World, wait_status};
use berth_tests::{Services, http_get_with, wait_for};
use std::time::Duration;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test(flavor = "multi_thread")]
async fn the_accounts_api_is_the_status_command_from_memory() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let gl = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(r"/statuses/"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 1})))
        .mount(&gl)
        .await;
    let mut w = World::new(&s, 25100);
    w.use_gitlab(&gl).await;
    w.site_overrides.extra = "admin_token_env: BERTH_ADMIN_TOKEN\n".into();
    let a = w.account("rm", &["students"]);
    let server = w.serve();
    let r = w.commit(
        &a,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: web, image: {}, ports: [8080] }}\n",
            s.test_image
        )),
        &w.mail(&a),
    );
    assert_eq!(server.push(&a, &r, &a, "rm-1", WEBHOOK_SECRET), 202);
    wait_status(&gl, &r, "success").await;
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let get = |path: &str, auth: &[(&str, &str)]| {
        http_get_with(&server.addr, path, auth).unwrap_or_default()
    };
    let one = format!("/api/v1/accounts/{a}");
    let served = wait_for(Duration::from_secs(20), "the view of the push", || {
        let (_, body) = get(&one, &[("Authorization", &bearer)]);
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (v["accounts"][0]["containers"][0]["state"] == "running").then_some(v)
    });
    let out = w.reconciler(&["status", "--account", &a, "--output", "json"]);
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(served, printed, "the API and `status` show the same view");
    let (_, all) = get("/api/v1/accounts", &[("Authorization", &bearer)]);
    assert!(all.contains(&format!("\"account\":\"{a}\"")), "{all}");
    let (status, _) = get("/api/v1/accounts", &[]);
    assert!(status.contains("401"), "{status}");
    let (status, _) = get("/api/v1/accounts", &[("Authorization", "Bearer wrong")]);
    assert!(status.contains("401"), "{status}");
    let (status, _) = get("/api/v1/accounts/nobody", &[("Authorization", &bearer)]);
    assert!(status.contains("404"), "{status}");
}
