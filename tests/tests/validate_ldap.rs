//! `reconciler validate --config SITE --account A` without `--group` reads
//! the account's groups from the real LDAP directory.

use berth_tests::Services;
use berth_tests::fixture::reconciler_binary;
use std::process::Command;

fn validate(s: &Services, site: &std::path::Path, account: &str) -> (Option<i32>, String) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new(reconciler_binary())
        .current_dir(root)
        .arg("--config")
        .arg(site)
        .args([
            "validate",
            "--account",
            account,
            "examples/workspace-runner-and-share.yaml",
        ])
        .env("BERTH_LDAP_PASSWORD", &s.ldap_password)
        .output()
        .expect("reconciler runs");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn groups_come_from_ldap_when_not_given() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/site.yaml"
    ))
    .expect("example site");
    let site =
        std::env::temp_dir().join(format!("berth-validate-site-{}.yaml", std::process::id()));
    std::fs::write(&site, example.replace("ldap://127.0.0.1:3389", &s.ldap_url))
        .expect("write site");
    assert_eq!(
        validate(&s, &site, "alice").0,
        Some(0),
        "alice is a student with quota"
    );
    let (code, text) = validate(&s, &site, "bob");
    assert_eq!(code, Some(1));
    assert!(
        text.contains("belongs to `alice` and is not shared with you"),
        "{text}"
    );
    let (code, text) = validate(&s, &site, "mallory");
    assert_eq!(code, Some(2));
    assert!(
        text.contains("account `mallory` does not exist in the directory"),
        "{text}"
    );
    let (code, _) = validate(&s, &site, "*)(uid=*");
    assert_eq!(code, Some(2), "a filter-injection attempt finds nobody");
    let _ = std::fs::remove_file(site);
}
