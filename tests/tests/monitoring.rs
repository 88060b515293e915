//! The monitoring Berth ships (`ops/prometheus/berth-rules.yaml`,
//! `ops/grafana/berth-dashboard.json`): the rules pass `promtool check
//! rules` and their unit tests, and every Berth metric the rules and the
//! dashboard name is one a running `serve` really exports — a renamed
//! metric would otherwise leave an alert that can never fire.

use berth_tests::fixture::World;
use berth_tests::{Services, wait_for};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn ops() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops")
}

/// `promtool`, or `None` (skipped) unless the suite requires services.
fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("BERTH_E2E_REQUIRED").is_none(),
            "promtool is missing (Debian's prometheus package; scripts/test.sh installs it)"
        );
        eprintln!("skipped: no promtool");
        return None;
    }
    Some("promtool")
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let Some(promtool) = promtool() else {
        return;
    };
    for args in [
        ["check", "rules", "berth-rules.yaml"],
        ["test", "rules", "berth-rules.test.yaml"],
    ] {
        let out = Command::new(promtool)
            .args(args)
            .current_dir(ops().join("prometheus"))
            .output()
            .expect("promtool runs");
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every `berth_…` metric family named in `text`: samples' suffixes
/// (`_total`, `_bucket`, …) dropped, since a family with no samples yet
/// shows only its `# HELP` line.
fn berth_names(text: &str) -> BTreeSet<String> {
    raw_names(text)
        .into_iter()
        .map(|n| {
            ["_total", "_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .map(str::to_string)
                .unwrap_or(n)
        })
        .collect()
}

fn raw_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("berth_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn every_metric_the_rules_and_dashboard_name_is_exported() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 28700);
    let a = w.account("mon", &["students"]);
    w.commit(
        &a,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: web, image: \"{}\" }}\n",
            s.test_image
        )),
        &w.mail(&a),
    );
    let repos = w.repos_dir().display().to_string();
    let server = w.serve_with(&["--watch", &repos]);
    // A labelled family shows once it has a member: an action (the
    // container created), a refused revision (a stranger's commit) and a
    // webhook delivery (one with a wrong secret).
    w.wait_running(&format!("{a}--web"));
    w.commit(
        &a,
        Some("version: 1\ncontainers: []\n"),
        "mallory@evil.test",
    );
    let hook = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-X",
            "POST",
            "-H",
            "X-Gitlab-Token: wrong",
        ])
        .args(["-H", "X-Gitlab-Event: Push Hook", "--data", "{}"])
        .arg(format!("http://{}/hooks/gitlab", server.addr))
        .status()
        .expect("curl");
    assert!(hook.success());
    let exposition = wait_for(Duration::from_secs(30), "every family to show", || {
        let (_, text) = berth_tests::http_get(&server.addr, "/metrics").ok()?;
        [
            "berth_actions_total",
            "berth_rejected_total",
            "berth_webhook_events_total",
            "berth_endpoint_up",
        ]
        .iter()
        .all(|m| text.contains(m))
        .then_some(text)
    });
    let exported = berth_names(&exposition);
    let rules = std::fs::read_to_string(ops().join("prometheus/berth-rules.yaml")).expect("rules");
    let dashboard =
        std::fs::read_to_string(ops().join("grafana/berth-dashboard.json")).expect("dashboard");
    serde_json::from_str::<serde_json::Value>(&dashboard).expect("the dashboard is JSON");
    let named: BTreeSet<String> = berth_names(&rules)
        .into_iter()
        .chain(berth_names(&dashboard))
        // Rule and dashboard names that are not metrics.
        .filter(|n| n != "berth_" && !n.starts_with("berth_rules"))
        .collect();
    assert!(named.len() >= 8, "{named:?}");
    let missing: Vec<_> = named.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "named but not exported: {missing:?}\n{exposition}"
    );
    // (`promtool check metrics` is not run: it lints the classic text
    // format, and reads OpenMetrics' `# HELP berth_actions` for a counter
    // sampled as `berth_actions_total` as missing help.)
}
