//! An upgrade: the previous release (`RELEASES`, built by `scripts/test.sh`
//! into `BERTH_PREVIOUS_RECONCILER`) applies workspaces, then `serve` of
//! this build starts on its state: the store opens and migrates, and the
//! containers the old release made are kept as they are (same ids, names
//! and labels) because nothing about them changed; a later push recreates
//! only what it changes.

use berth_tests::fixture::World;
use berth_tests::{Services, stdout, wait_for};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

/// Each Berth container's id and labels, by name.
fn containers(s: &Services, w: &World) -> BTreeMap<String, String> {
    let ids = stdout(&s.docker(&[
        "ps",
        "-aq",
        "--filter",
        "label=berth.owner",
        "--filter",
        &format!("name={}", w.prefix()),
    ]));
    ids.split_whitespace()
        .map(|id| {
            let out = stdout(&s.docker(&[
                "inspect",
                "--format",
                "{{.Name}} {{.Id}} {{json .Config.Labels}}",
                id,
            ]));
            let (name, rest) = out.split_once(' ').unwrap_or_default();
            (name.trim_start_matches('/').to_string(), rest.to_string())
        })
        .collect()
}

#[test]
fn serve_of_this_release_keeps_what_the_previous_one_made() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let Some(old) = berth_tests::required_var(
        "BERTH_PREVIOUS_RECONCILER",
        "the previous release, built by scripts/test.sh",
    ) else {
        return;
    };
    let mut w = World::new(&s, 28900);
    w.site_overrides.resync = "1s".into();
    let image = &s.test_image;
    let a = w.account("upa", &["students"]);
    let b = w.account("upb", &["students"]);
    w.commit(
        &a,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: web, image: \"{image}\", ports: [8080], env: {{ N: \"1\" }}, volumes: [{{ name: data, path: /data }}] }}\n"
        )),
        &w.mail(&a),
    );
    let b_workspace = |n: &str| {
        format!(
            "version: 1\ncontainers:\n  - {{ name: one, image: \"{image}\" }}\n  - {{ name: two, image: \"{image}\", env: {{ N: \"{n}\" }} }}\n"
        )
    };
    w.commit(&b, Some(&b_workspace("1")), &w.mail(&b));

    // The previous release applies, with the same site and environment.
    let cmd = w.reconciler_command(&["apply"]);
    let out = Command::new(&old)
        .args(cmd.get_args())
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .output()
        .expect("the previous release runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    let before = containers(&s, &w);
    assert_eq!(before.len(), 3, "{before:#?}");
    // How reconciler/src/store/fixtures/store-v0.1.0.sql was made: this
    // state, dumped right after the previous release wrote it.
    if let Some(dump) = std::env::var_os("BERTH_WRITE_STORE_FIXTURE") {
        let db = w.state_dir().join("berth.sqlite3");
        let sql = |arg: &str| {
            let out = Command::new("sqlite3").arg(&db).arg(arg).output();
            out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .expect("sqlite3")
        };
        // `.dump` leaves out the schema version, which migrations start from.
        let version = sql("PRAGMA user_version");
        let text = format!(
            "-- Berth v0.1.0's state store, written by that release (tests/tests/upgrade.rs).\n{}PRAGMA user_version={};\n",
            sql(".dump"),
            version.trim()
        );
        std::fs::write(dump, text).expect("write the fixture");
    }
    let audit_before = stdout(&w.reconciler(&["audit", "--output", "json"]));
    let entries: serde_json::Value = serde_json::from_str(&audit_before).expect("audit json");
    assert!(
        entries["entries"].as_array().is_some_and(|e| !e.is_empty()),
        "this release reads the old audit: {audit_before}"
    );

    // This release serves on the old state: resyncs converge to nothing.
    let server = w.serve();
    wait_for(Duration::from_secs(30), "two rounds of resyncs", || {
        (server.metric("berth_reconcile_duration_seconds_count") >= 4.0).then_some(())
    });
    assert_eq!(
        containers(&s, &w),
        before,
        "ids, names and labels kept across the upgrade"
    );
    assert_eq!(server.metric("berth_actions_total{kind=\"recreate\"}"), 0.0);
    let diff = w.reconciler(&["diff"]);
    assert_eq!(diff.status.code(), Some(0), "{}", stdout(&diff));
    let (code, _) = server.terminate();
    assert_eq!(code, Some(0));

    // A change after the upgrade recreates only what it changes.
    w.commit(&b, Some(&b_workspace("2")), &w.mail(&b));
    let out = w.reconciler(&["apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let after = containers(&s, &w);
    for name in [format!("{a}--web"), format!("{b}--one")] {
        assert_eq!(after.get(&name), before.get(&name), "{name} untouched");
    }
    assert_ne!(
        after.get(&format!("{b}--two")),
        before.get(&format!("{b}--two")),
        "the changed container was recreated"
    );
}
