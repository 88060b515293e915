//! The `reconciler` binary's contract: output format and exit codes of
//! `validate` and `schema`, and stubs that refuse rather than pretend.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn reconciler(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reconciler"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("reconciler runs")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml_files(dir: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join(dir))
        .expect("dir exists")
        .filter_map(Result::ok)
        .map(|e| format!("{dir}/{}", e.file_name().to_string_lossy()))
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn validate_accepts_every_example() {
    let files = yaml_files("examples");
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = reconciler(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn validate_applies_site_policy_for_an_account() {
    let base = [
        "--config",
        "examples/site.yaml",
        "validate",
        "examples/workspace-runner-and-share.yaml",
    ];
    let alice = reconciler(&[&base[..], &["--account", "alice", "--group", "students"]].concat());
    assert_eq!(
        alice.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&alice.stdout)
    );
    let bob = reconciler(&[&base[..], &["--account", "bob", "--group", "students"]].concat());
    assert_eq!(bob.status.code(), Some(1));
    let text = String::from_utf8_lossy(&bob.stdout);
    assert!(
        text.starts_with("examples/workspace-runner-and-share.yaml:7:12: image `127.0.0.1:5000/alice/tools:1.0` belongs to `alice` and is not shared with you\n"),
        "{text}"
    );
}

#[test]
fn each_hostile_file_exits_1_with_path_line_col_messages() {
    for file in yaml_files("spec/tests/hostile") {
        let out = reconciler(&["validate", &file]);
        assert_eq!(out.status.code(), Some(1), "{file}");
        let expected = std::fs::read_to_string(root().join(file.replace(".yaml", ".expected")))
            .expect("expected file");
        let want: String = expected.lines().map(|l| format!("{file}:{l}\n")).collect();
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{file}");
    }
}

#[test]
fn unreadable_file_is_exit_2_and_wins_over_invalid() {
    let out = reconciler(&[
        "validate",
        "spec/tests/hostile/tabs.yaml",
        "no/such/file.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/file.yaml: cannot read"));
}

#[test]
fn invalid_site_config_is_exit_2() {
    let out = reconciler(&[
        "--config",
        "spec/tests/hostile/tabs.yaml",
        "validate",
        "examples/workspace-web.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn schema_prints_the_committed_schema() {
    let out = reconciler(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let committed: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root().join("examples/workspace.schema.json")).expect("committed"),
    )
    .expect("JSON");
    assert_eq!(printed, committed);
}

#[test]
fn usage_errors_are_exit_2() {
    assert_eq!(reconciler(&["validate", "--bogus"]).status.code(), Some(2));
    assert_eq!(reconciler(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(reconciler(&["--help"]).status.code(), Some(0));
}

#[test]
fn the_committed_man_pages_are_current() {
    let dir = std::env::temp_dir().join(format!("berth-man-{}", std::process::id()));
    let out = reconciler(&["man", &dir.display().to_string()]);
    assert_eq!(out.status.code(), Some(0));
    let list = |d: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(d)
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    };
    let committed = root().join("docs/man");
    assert_eq!(
        list(&dir),
        list(&committed),
        "run `reconciler man docs/man`"
    );
    for name in list(&dir) {
        assert_eq!(
            std::fs::read(dir.join(&name)).expect("generated"),
            std::fs::read(committed.join(&name)).expect("committed"),
            "docs/man/{name} is stale: run `reconciler man docs/man`"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bash_completions_load() {
    let bin = env!("CARGO_BIN_EXE_reconciler");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source <('{bin}' completions bash) && complete -p reconciler"
        ))
        .output()
        .expect("bash runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("_reconciler"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
