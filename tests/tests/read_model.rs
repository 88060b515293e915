//! The read model: `GET /api/v1/accounts` serves from memory exactly what
//! `reconciler status --output json` prints, to the admin credential only.

use berth_tests::fixture::{ADMIN_TOKEN, GITLAB_TOKEN, WEBHOOK_SECRET, World, wait_status};
use berth_tests::{Services, http_get_with, wait_for};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn the_accounts_api_is_the_status_command_from_memory() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let gl = berth_tests::gitlab::statuses_mock().await;
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
    // The whole admin API sits behind the same gate.
    for path in ["/api/v1/audit", "/api/v1/audit/events", &one] {
        let (status, _) = get(path, &[("Authorization", "Bearer wrong")]);
        assert!(status.contains("401"), "{path}: {status}");
    }
    let (status, _) = get("/api/v1/accounts/nobody", &[("Authorization", &bearer)]);
    assert!(status.contains("404"), "{status}");

    // What an admin following `serve` sees at the default level: one line
    // per reconcile, and never a secret.
    let (_, log) = server.terminate();
    let line = log
        .lines()
        .find(|l| l.contains("reconciled") && l.contains(&a) && l.contains("outcome=accepted"))
        .unwrap_or_else(|| panic!("no reconcile line in\n{log}"));
    assert!(line.contains("create=1"), "{line}");
    for secret in [
        WEBHOOK_SECRET,
        GITLAB_TOKEN,
        ADMIN_TOKEN,
        s.ldap_password.as_str(),
    ] {
        assert!(!log.contains(secret), "a secret in the log:\n{log}");
    }
}

/// For log shippers: every line a JSON object; `RUST_LOG` is read when
/// `BERTH_LOG` is unset.
#[test]
fn logs_can_be_json_lines() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let w = World::new(&s, 25200);
    let server = w.serve_with(&["--log-format", "json"]);
    let (_, log) = server.terminate();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.iter().any(|v| v["message"] == "serving"), "{log}");
    // RUST_LOG when BERTH_LOG is unset: `off` silences even "serving".
    let addr = "127.0.0.1:25299";
    let mut quiet = w
        .reconciler_command(&["serve", "--listen", addr])
        .env_remove("BERTH_LOG")
        .env("RUST_LOG", "off")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("serve");
    wait_for(Duration::from_secs(20), "serve to answer", || {
        berth_tests::http_get(addr, "/healthz")
            .ok()
            .filter(|(s, _)| s.contains("200"))
    });
    let _ = quiet.kill();
    let out = quiet.wait_with_output().expect("serve exits");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
