//! Following a running `serve` from an admin's shell: `audit --follow`
//! (local store, and `--server` over the event stream) prints each line as
//! a push is reconciled; `status --server` is the served read model, and
//! `status --watch --server` redraws when a reconcile is audited rather
//! than at its interval; each ends cleanly on Ctrl-C. A wrong admin token
//! is a clear exit 2.

use berth_tests::Services;
use berth_tests::fixture::{WEBHOOK_SECRET, World, wait_status};
use berth_tests::lines::Lines;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn workspace(image: &str, names: &[&str]) -> String {
    let mut y = String::from("version: 1\ncontainers:\n");
    for n in names {
        y.push_str(&format!("  - {{ name: {n}, image: \"{image}\" }}\n"));
    }
    y
}

fn json_line(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_follows_serve_from_the_command_line() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let gl = berth_tests::gitlab::statuses_mock().await;
    let mut w = World::new(&s, 27300);
    w.use_gitlab(&gl).await;
    w.site_overrides.extra = "admin_token_env: BERTH_ADMIN_TOKEN\n".into();
    let a = w.account("fo", &["students"]);
    let server = w.serve();
    let url = format!("http://{}", server.addr);

    let mut remote = Lines::spawn(w.reconciler_command(&[
        "audit",
        "--follow",
        "--output",
        "json",
        "--account",
        &a,
        "--server",
        &url,
    ]));
    let mut local = Lines::spawn(w.reconciler_command(&[
        "audit",
        "--follow",
        "--output",
        "json",
        "--account",
        &a,
    ]));
    let mut watch = Lines::spawn(w.reconciler_command(&[
        "status",
        "--watch",
        "--interval",
        "600",
        "--server",
        &url,
        "--account",
        &a,
    ]));
    watch.wait(WAIT, "the first drawing", |l| {
        l.starts_with("reconciler status (")
    });
    let mut watch_json = Lines::spawn(w.reconciler_command(&[
        "status",
        "--watch",
        "--interval",
        "600",
        "--output",
        "json",
        "--server",
        &url,
        "--account",
        &a,
    ]));
    let first = watch_json.wait(WAIT, "the first JSON drawing", |_| true);
    assert!(json_line(&first)["accounts"].is_array(), "{first}");

    let r = w.commit(&a, Some(&workspace(&s.test_image, &["web"])), &w.mail(&a));
    assert_eq!(server.push(&a, &r, &a, "fo-1", WEBHOOK_SECRET), 202);
    wait_status(&gl, &r, "success").await;

    for (who, follower) in [("--server", &mut remote), ("local", &mut local)] {
        let accepted = follower.wait(WAIT, &format!("{who}: the acceptance"), |l| {
            l.contains("\"event\":\"accepted\"")
        });
        let v = json_line(&accepted);
        assert_eq!(
            (v["account"].as_str(), v["revision"].as_str()),
            (Some(a.as_str()), Some(r.as_str()))
        );
        let action = follower.wait(WAIT, &format!("{who}: the create"), |l| {
            l.contains("\"event\":\"action\"") && l.contains("web")
        });
        assert!(
            json_line(&action)["id"].as_i64() > v["id"].as_i64(),
            "{action}"
        );
    }
    // Redrawn by the audit lines, 600 s before its interval; as JSON one
    // object per line.
    watch_json.wait(WAIT, "a JSON redraw with the container running", |l| {
        json_line(l)["accounts"][0]["containers"][0]["state"] == "running"
    });
    watch.wait(WAIT, "a redraw after the push", |l| {
        l.starts_with("reconciler status (")
    });
    watch.wait(WAIT, "the new container in the redraw", |l| {
        l.contains(&format!("{a}--web")) && l.contains("running")
    });

    // Ctrl-C ends each follower cleanly (exit 0).
    for (what, follower) in [
        ("audit --follow --server", &mut remote),
        ("audit --follow", &mut local),
        ("status --watch --server", &mut watch),
    ] {
        follower.interrupt();
        assert_eq!(follower.exit_code(WAIT), Some(0), "{what} after Ctrl-C");
    }

    // One-shot status over the API is the served read model.
    let out = w.reconciler(&[
        "status",
        "--server",
        &url,
        "--account",
        &a,
        "--output",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(
        v["accounts"][0]["revision"].as_str(),
        Some(r.as_str()),
        "{v}"
    );
    assert_eq!(v["accounts"][0]["containers"][0]["state"], "running", "{v}");

    // The audit backlog over the API, like the local one.
    let out = w.reconciler(&[
        "audit",
        "--server",
        &url,
        "--account",
        &a,
        "--output",
        "json",
    ]);
    let served: serde_json::Value = serde_json::from_slice(&out.stdout).expect("audit JSON");
    let out = w.reconciler(&["audit", "--account", &a, "--output", "json"]);
    let here: serde_json::Value = serde_json::from_slice(&out.stdout).expect("audit JSON");
    assert_eq!(served, here);

    // A wrong token: exit 2 and what to check.
    let out = w
        .reconciler_command(&["status", "--server", &url])
        .env("BERTH_ADMIN_TOKEN", "wrong")
        .output()
        .expect("status runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refused the admin token") && err.contains("BERTH_ADMIN_TOKEN"),
        "{err}"
    );
    // Nothing listening: exit 2 naming the address.
    let out = w.reconciler(&["status", "--server", "http://127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http://127.0.0.1:9") && err.contains("reconciler serve"),
        "{err}"
    );
    drop(server);
}
