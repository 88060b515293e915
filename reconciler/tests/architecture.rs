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

/// The reconciler's layers, lowest first: each folder of `src/` is one, and
/// may import only the ones before it.
const LAYERS: &[&str] = &[
    "base", "store", "inputs", "backends", "clients", "engine", "ops", "edges",
];

/// Layers whose folder is one module (everything else: `layer::module`).
const WHOLE: &[&str] = &["store", "clients"];

/// Files at `src/` beside the layers.
const ROOT_FILES: &[&str] = &["lib.rs", "main.rs", "fixtures.rs"];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    for e in entries {
        if e.is_dir() {
            rust_files(&e, out);
        } else if e.extension().is_some_and(|x| x == "rs") {
            out.push(e);
        }
    }
}

/// The module a file belongs to: `ops::poll`, `store`, `clients`.
fn module_of(rel: &str) -> Option<String> {
    let parts: Vec<&str> = rel.trim_end_matches(".rs").split('/').collect();
    let layer = *parts.first()?;
    if !LAYERS.contains(&layer) {
        return None;
    }
    Some(match parts.get(1) {
        Some(m) if !WHOLE.contains(&layer) && *m != "mod" => format!("{layer}::{m}"),
        _ => layer.to_string(),
    })
}

/// The module a `crate::…` path names, if it is a layer's.
fn module_of_path(path: &str) -> Option<String> {
    let mut segs = path.split("::");
    let layer = segs.next()?;
    if !LAYERS.contains(&layer) {
        return None;
    }
    Some(match segs.next() {
        Some(m) if !WHOLE.contains(&layer) && m.starts_with(|c: char| c.is_ascii_lowercase()) => {
            format!("{layer}::{m}")
        }
        _ => layer.to_string(),
    })
}

fn layer(module: &str) -> usize {
    let name = module.split("::").next().unwrap_or(module);
    LAYERS.iter().position(|l| *l == name).unwrap_or(usize::MAX)
}

/// Every `crate::a::b` path in the file's code (tests may use anything).
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let code = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            let tail = &rest[i + "crate::".len()..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            out.push((n + 1, tail[..end].trim_end_matches(':').to_string()));
            rest = &tail[end..];
        }
    }
    out
}

/// `module → modules it imports`, from the files under `src/`; and every
/// import that reaches up a layer.
fn import_graph() -> (
    std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
    Vec<String>,
) {
    let src = root().join("reconciler/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    let mut upward = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .to_string();
        let Some(me) = module_of(&rel) else {
            assert!(
                ROOT_FILES.contains(&rel.as_str()),
                "src/{rel} is in no layer: put it in one of {LAYERS:?}"
            );
            continue;
        };
        // A file of tests only (`tests.rs`) may use anything.
        if rel.ends_with("/tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("readable");
        for (line, path) in crate_paths(&text) {
            let Some(target) = module_of_path(&path) else {
                continue;
            };
            if layer(&target) > layer(&me) {
                upward.push(format!(
                    "src/{rel}:{line}: {me} imports {target} (crate::{path})"
                ));
            }
            if target != me {
                graph.entry(me.clone()).or_default().insert(target);
            }
        }
    }
    (graph, upward)
}

/// A cycle through `start`, if there is one (depth-first).
fn cycle_from(
    graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
    start: &str,
) -> Option<Vec<String>> {
    fn walk(
        graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        at: &str,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut std::collections::BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, next, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    let mut seen = Default::default();
    walk(graph, start, start, &mut path, &mut seen).then_some(path)
}

#[test]
fn layers_import_only_downwards_and_no_modules_import_each_other() {
    let (graph, upward) = import_graph();
    assert!(graph.len() >= 20, "the modules went missing: {graph:?}");
    assert!(
        upward.is_empty(),
        "imports from a lower layer to a higher one ({LAYERS:?}, lowest first):\n{}",
        upward.join("\n")
    );
    for module in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, module) {
            panic!(
                "modules import each other: {} → {module}",
                cycle.join(" → ")
            );
        }
    }
}

#[test]
fn the_check_sees_modules_layers_and_cycles() {
    assert_eq!(module_of("ops/poll.rs").as_deref(), Some("ops::poll"));
    assert_eq!(
        module_of("engine/reconcile/gather.rs").as_deref(),
        Some("engine::reconcile")
    );
    assert_eq!(module_of("store/tokens.rs").as_deref(), Some("store"));
    assert_eq!(module_of("ops/mod.rs").as_deref(), Some("ops"));
    assert_eq!(module_of("lib.rs"), None);
    assert_eq!(
        module_of_path("clients::Context").as_deref(),
        Some("clients")
    );
    assert_eq!(
        module_of_path("ops::report::plan_text").as_deref(),
        Some("ops::report")
    );
    assert_eq!(
        module_of_path("backends::DockerBackend").as_deref(),
        Some("backends")
    );
    assert!(layer("edges::cli") > layer("store"));
    assert_eq!(
        crate_paths(
            "use crate::store::Store; x(crate::ops::poll::round)\n#[cfg(test)]\nuse crate::edges::cli;"
        ),
        vec![(1, "store::Store".into()), (1, "ops::poll::round".into())]
    );
    let graph: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(
        cycle_from(&graph, "a"),
        Some(vec!["a".to_string(), "b".into(), "c".into()])
    );
    assert_eq!(cycle_from(&graph, "d"), None);
}
