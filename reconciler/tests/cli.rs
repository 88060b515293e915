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

/// A temporary directory of the test's own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("berth-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_missing_site_configuration_says_where_it_was_looked_for() {
    let dir = Scratch::new("noconfig");
    let out = Command::new(env!("CARGO_BIN_EXE_reconciler"))
        .arg("status")
        .current_dir(&dir.0)
        .env_remove("BERTH_CONFIG")
        .output()
        .expect("reconciler runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    if Path::new("/etc/berth/site.yaml").exists() {
        return; // this machine has a site: it was found, as it should be.
    }
    for place in [
        "--config",
        "BERTH_CONFIG",
        "./site.yaml",
        "/etc/berth/site.yaml",
    ] {
        assert!(err.contains(place), "{place} missing from: {err}");
    }
    // BERTH_CONFIG is taken like --config.
    let out = Command::new(env!("CARGO_BIN_EXE_reconciler"))
        .arg("audit")
        .current_dir(&dir.0)
        .env("BERTH_CONFIG", dir.0.join("absent.yaml"))
        .output()
        .expect("reconciler runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("absent.yaml"), "{err}");
}

/// Nothing listens where the site says dockerd and LDAP are: each error
/// names the address, the setting and its line, and the real cause.
#[test]
fn unreachable_services_name_the_setting_to_check() {
    let dir = Scratch::new("unreachable");
    let repo = dir.0.join("repos/alice/workspace.git");
    let work = dir.0.join("work");
    let git = |args: &[&str], at: &Path| {
        let ok = Command::new("git")
            .args(args)
            .current_dir(at)
            .env("GIT_AUTHOR_NAME", "a")
            .env("GIT_AUTHOR_EMAIL", "a@b")
            .env("GIT_COMMITTER_NAME", "a")
            .env("GIT_COMMITTER_EMAIL", "a@b")
            .status()
            .expect("git runs")
            .success();
        assert!(ok, "git {args:?}");
    };
    std::fs::create_dir_all(&work).expect("work dir");
    std::fs::create_dir_all(&repo).expect("repo dir");
    git(&["init", "-q", "--bare", "-b", "main"], &repo);
    git(&["init", "-q", "-b", "main"], &work);
    std::fs::write(
        work.join("workspace.yaml"),
        "version: 1\ncontainers:\n  - { name: web, image: \"docker.io/library/nginx:1\" }\n",
    )
    .expect("workspace");
    git(&["add", "."], &work);
    git(&["commit", "-qm", "x"], &work);
    git(
        &["push", "-q", repo.to_str().expect("utf-8"), "main"],
        &work,
    );
    let site = format!(
        "ldap:
  url: ldap://127.0.0.1:9
  insecure: true
  base_dn: ou=people,dc=x
  user_filter: \"(uid={{account}})\"
  allowed_groups: [students]
backends:
  default: docker
  docker:
    - name: local
      endpoint: unix://{0}/no-dockerd.sock
      host_ports: {{ first: 20000, last: 20099 }}
policy:
  allowed_registries: [docker.io]
  quotas: {{ students: {{ containers: 2, cpus: 1, memory: 1Gi }} }}
repositories:
  local: {{ root: {0}/repos, repository: workspace }}
state_dir: {0}/state
",
        dir.0.display()
    );
    std::fs::write(dir.0.join("site.yaml"), site).expect("site");
    let run = |cmd: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_reconciler"))
            .arg(cmd)
            .current_dir(&dir.0)
            .env_remove("BERTH_CONFIG")
            .env("NO_COLOR", "1")
            .output()
            .expect("reconciler runs");
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    // ./site.yaml is found without --config.
    let status = run("status");
    for part in [
        "no-dockerd.sock",
        "is dockerd running there?",
        "`backends.docker[local].endpoint` (line 11 of the site configuration)",
    ] {
        assert!(status.contains(part), "{part:?} missing from:\n{status}");
    }
    let diff = run("diff");
    for part in [
        "LDAP ldap://127.0.0.1:9 unreachable",
        "Connection refused",
        "`ldap.url` (line 2 of the site configuration)",
    ] {
        assert!(diff.contains(part), "{part:?} missing from:\n{diff}");
    }
}

#[test]
fn version_names_the_release_and_the_git_revision() {
    let out = reconciler(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    assert!(
        text.starts_with(&format!("reconciler {} (", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    // In a checkout, the revision is `git describe`'s: a tag, or a tag
    // and the commit's abbreviation.
    if let Some(head) = head {
        let described = Command::new("git")
            .args(["describe", "--tags", "--always"])
            .current_dir(root())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        assert!(
            text.contains(&format!("({described})")),
            "{text} vs {described} at {head}"
        );
    }
}

#[test]
fn the_markdown_cli_reference_has_every_command() {
    let dir = std::env::temp_dir().join(format!("berth-cli-md-{}", std::process::id()));
    let out = reconciler(&["man", "--markdown", &dir.display().to_string()]);
    assert_eq!(out.status.code(), Some(0));
    let text = std::fs::read_to_string(dir.join("cli.md")).expect("cli.md");
    for command in ["apply", "diff", "serve", "backup", "restore", "drain"] {
        assert!(
            text.contains(&format!("## `reconciler {command}`")),
            "{command} missing"
        );
    }
    assert!(
        text.contains("Usage: reconciler apply"),
        "full help per command"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
