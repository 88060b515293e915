//! The hostile-input corpus: every `hostile/*.yaml` must be rejected with
//! exactly the diagnostics in its `.expected` file (`line:col: message` per
//! line), and nothing may panic. Inputs too big to commit are generated here.
//! The same files seed the fuzz target in `spec/fuzz`, whose corpus is
//! replayed below so CI exercises it without nightly.

use berth_spec::parse_workspace;
use std::path::{Path, PathBuf};

fn render(bytes: &[u8]) -> String {
    match parse_workspace(bytes) {
        Ok(_) => "OK".to_string(),
        Err(d) => d.iter().map(|d| format!("{d}\n")).collect(),
    }
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    out.retain(|p| p.extension().is_some_and(|e| e == ext));
    out.sort();
    out
}

#[test]
fn every_hostile_file_fails_with_its_expected_diagnostics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
    let inputs = files(&dir, "yaml");
    assert!(
        inputs.len() >= 30,
        "corpus went missing: {} files",
        inputs.len()
    );
    let mut failures = Vec::new();
    for input in inputs {
        let bytes = std::fs::read(&input).expect("corpus file is readable");
        let expected = std::fs::read_to_string(input.with_extension("expected"))
            .unwrap_or_else(|_| panic!("{} has no .expected file", input.display()));
        let got = render(&bytes);
        if got != expected {
            failures.push(format!(
                "{}\n  expected: {expected:?}\n  got:      {got:?}",
                input.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn ten_megabyte_file_is_refused_before_parsing() {
    let mut big = b"version: 1\ncontainers:\n".to_vec();
    while big.len() < 10 * 1024 * 1024 {
        big.extend_from_slice(b"  - { name: web, image: nginx }\n");
    }
    let got = render(&big);
    assert!(
        got.starts_with("1:1: file is 10485")
            && got.ends_with("workspace.yaml is limited to 262144 bytes\n"),
        "{got}"
    );
}

#[test]
fn ten_thousand_levels_of_block_nesting_are_refused() {
    let mut doc = String::from("version: 1\nx:\n");
    for depth in 1..10_000 {
        doc.push_str(&" ".repeat(depth.min(20_000)));
        doc.push_str("- \n");
        if doc.len() > 200 * 1024 {
            break;
        }
    }
    assert!(
        render(doc.as_bytes()).contains("nesting deeper than 32 levels"),
        "{}",
        render(doc.as_bytes())
    );
}

#[test]
fn fuzz_corpus_never_panics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut inputs = files(&root.join("tests/hostile"), "yaml");
    inputs.extend(files(&root.join("../examples"), "yaml"));
    if let Ok(rd) = std::fs::read_dir(root.join("fuzz/corpus/parse_workspace")) {
        inputs.extend(rd.filter_map(Result::ok).map(|e| e.path()));
    }
    for input in inputs {
        let bytes = std::fs::read(&input).expect("readable");
        // Every truncation of every file, too: half-written YAML is the
        // commonest hostile input of all.
        for cut in (0..bytes.len()).step_by(7) {
            let _ = parse_workspace(&bytes[..cut]);
        }
    }
}
