//! `reconciler backup` while `serve` reconciles a burst of pushes, and
//! `reconciler restore` of the last copy onto a store that was lost: the
//! restored store serves the same `status` and audit.

use berth_tests::fixture::World;
use berth_tests::{Services, stdout, wait_for};
use std::time::Duration;

fn web(greeting: &str, image: &str) -> String {
    format!(
        "version: 1\ncontainers:\n  - {{ name: web, image: \"{image}\", env: {{ GREETING: \"{greeting}\" }} }}\n"
    )
}

#[test]
fn backups_taken_during_a_burst_restore_the_same_status_and_audit() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 28500);
    let accounts: Vec<String> = (0..4)
        .map(|i| w.account(&format!("bk{i}"), &["students"]))
        .collect();
    for a in &accounts {
        w.commit(a, Some(&web("v0", &s.test_image)), &w.mail(a));
    }
    let repos = w.repos_dir().display().to_string();
    let server = w.serve_with(&["--watch", &repos]);
    let dir = w.dir.join("backups");
    std::fs::create_dir_all(&dir).expect("backup dir");

    // The burst: three more revisions per account, a copy after each push.
    let mut copies = 0;
    for round in 1..=3 {
        for a in &accounts {
            w.commit(
                a,
                Some(&web(&format!("v{round}"), &s.test_image)),
                &w.mail(a),
            );
            let file = dir.join(format!("mid-{copies}.sqlite3"));
            let out = w.reconciler(&["backup", &file.display().to_string()]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "backup while serve writes: {}{}",
                stdout(&out),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(stdout(&out).contains("audit entries"), "{}", stdout(&out));
            copies += 1;
        }
    }
    for a in &accounts {
        wait_for(
            Duration::from_secs(60),
            &format!("{a}'s last revision to run"),
            || {
                w.inspect(&format!("{a}--web"), "{{.State.Running}} {{.Config.Env}}")
                    .filter(|e| e.starts_with("true") && e.contains("GREETING=v3"))
            },
        );
    }
    let (code, _) = server.terminate();
    assert_eq!(code, Some(0));

    let last = dir.join("last.sqlite3");
    assert_eq!(
        w.reconciler(&["backup", &last.display().to_string()])
            .status
            .code(),
        Some(0)
    );
    let status = stdout(&w.reconciler(&["status", "--output", "json"]));
    let audit = stdout(&w.reconciler(&["audit", "--output", "json"]));
    assert!(
        status.contains("GREETING") || status.contains(&accounts[0]),
        "{status}"
    );

    // The disk with the store is lost; the copy comes back.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(w.state_dir().join(format!("berth.sqlite3{suffix}")));
    }
    let lost = stdout(&w.reconciler(&["audit", "--output", "json"]));
    assert_ne!(lost, audit, "the store was really gone");
    let out = w.reconciler(&["restore", &last.display().to_string()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout(&w.reconciler(&["status", "--output", "json"])),
        status
    );
    let restored: serde_json::Value =
        serde_json::from_str(&stdout(&w.reconciler(&["audit", "--output", "json"]))).expect("json");
    let before: serde_json::Value = serde_json::from_str(&audit).expect("json");
    let entries = restored["entries"].as_array().expect("entries");
    assert_eq!(
        entries[0]["event"], "restored",
        "the restore is audited first"
    );
    assert_eq!(
        &entries[1..],
        before["entries"].as_array().expect("entries").as_slice()
    );

    // And a restored store converges as the original would: nothing to do.
    let (code, text) = {
        let out = w.reconciler(&["diff"]);
        (out.status.code(), stdout(&out))
    };
    assert_eq!(code, Some(0), "{text}");
}
