//! The layout is the architecture: the pure core (desired state, the plan,
//! the admission decision, GPU and port placement, the runner's config,
//! the registry grants, Dockerfile checks and build contexts)
//! never imports a backend, the store, or the crates that talk to Docker,
//! Kubernetes or SQLite. This test fails when one appears.

use std::path::{Path, PathBuf};

/// Modules that must stay pure (files, or directories taken whole).
const PURE: &[&str] = &[
    "src/desired",
    "src/plan",
    "src/reconcile/decide.rs",
    "src/runner",
    "src/identity/admission.rs",
    "src/identity/dn.rs",
    "src/token/access.rs",
    "src/imagebuild/dockerfile.rs",
    "src/imagebuild/context.rs",
];

/// What a pure module may not mention outside its tests.
const FORBIDDEN: &[&str] = &[
    "crate::backend",
    "crate::store",
    "crate::reconcile::Context",
    "crate::server",
    "bollard",
    "rusqlite",
    "tokio",
    "reqwest",
    "ldap3",
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        entries.sort();
        for e in entries {
            rust_files(&e, out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// The file without its `#[cfg(test)]` tail (tests may use anything).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// `kube::` the crate, as opposed to `desired::kube::`.
fn uses_kube_crate(line: &str) -> bool {
    line.match_indices("kube::").any(|(i, _)| {
        let before = line[..i].chars().last();
        !matches!(before, Some(c) if c == ':' || c.is_alphanumeric() || c == '_')
    })
}

#[test]
fn the_pure_core_imports_no_backend_store_or_io_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for p in PURE {
        rust_files(&root.join(p), &mut files);
    }
    assert!(files.len() >= 10, "pure modules went missing: {files:?}");
    let mut found = Vec::new();
    for f in &files {
        for (n, line) in code(f).lines().enumerate() {
            let line = line.trim();
            if line.starts_with("//") {
                continue;
            }
            for bad in FORBIDDEN {
                if line.contains(bad) {
                    found.push(format!("{}:{}: {bad}", f.display(), n + 1));
                }
            }
            if uses_kube_crate(line) {
                found.push(format!("{}:{}: kube", f.display(), n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "IO in the pure core:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_itself_sees_an_import() {
    assert!(uses_kube_crate("use kube::Client;"));
    assert!(!uses_kube_crate("use crate::desired::kube::KubeObject;"));
}
