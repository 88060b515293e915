//! Stamps the binary with the git revision it was built from
//! (`reconciler --version`: `0.1.0 (v0.1.0-12-g3f2a9c1)`), so an admin can
//! tell which commit runs. Builds outside a git checkout (a source
//! tarball, a package build) take `BERTH_GIT_REVISION` or say `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=BERTH_GIT_REVISION");
    let revision = std::env::var("BERTH_GIT_REVISION")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| git(&["describe", "--tags", "--always"]))
        .unwrap_or_else(|| "unknown".into());
    // A new commit or tag moves HEAD or a ref; nothing else changes the answer.
    if let Some(dir) = git(&["rev-parse", "--git-common-dir"]) {
        for f in ["HEAD", "refs/heads", "refs/tags", "packed-refs"] {
            println!("cargo:rerun-if-changed={dir}/{f}");
        }
        if let Some(head) = git(&["rev-parse", "--git-dir"]) {
            println!("cargo:rerun-if-changed={head}/HEAD");
        }
    }
    println!("cargo:rustc-env=BERTH_GIT_REVISION={revision}");
}
