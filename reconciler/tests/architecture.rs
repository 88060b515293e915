//! The layout is the architecture, and this test holds it. The pure core
//! is its own crate (`core/`), so Cargo keeps IO out of it: this test only
//! checks that its manifest stays free of the crates that do IO.

use std::path::Path;

/// Crates that talk to something (a runtime, Docker, Kubernetes, LDAP,
/// HTTP, SQLite, git, files being watched): none may be the core's.
const IO_CRATES: &[&str] = &[
    "tokio", "bollard", "rusqlite", "ldap3", "reqwest", "kube", "gix", "axum", "hyper", "notify",
    "futures",
];

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn the_core_crate_depends_on_no_io_crate() {
    let text = std::fs::read_to_string(root().join("core/Cargo.toml")).expect("core manifest");
    let manifest: toml::Table = text.parse().expect("TOML");
    let deps = manifest
        .get("dependencies")
        .and_then(|d| d.as_table())
        .expect("[dependencies]");
    assert!(deps.contains_key("berth-spec"), "the core reads the spec");
    let io: Vec<&String> = deps
        .keys()
        .filter(|k| IO_CRATES.contains(&k.as_str()))
        .collect();
    assert!(io.is_empty(), "IO crates in the pure core: {io:?}");
}
