//! Every Kubernetes manifest Berth generates, validated against the
//! Kubernetes OpenAPI schemas of stated versions with `kubernetes-validate`
//! (PyPI; JSON schemas generated from each release's OpenAPI document, used
//! in `--strict` mode so unknown fields fail too). `scripts/test.sh`
//! installs it and sets `BERTH_KUBE_VALIDATE`; without it the test is
//! skipped, unless `BERTH_E2E_REQUIRED` is set.

use berth_core::desired::kube::{Owner, Settings, manifests};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The oldest Kubernetes release still supported upstream when this was
/// written, the one `k8s-openapi` is built for, and the newest.
const VERSIONS: &[&str] = &["1.31.0", "1.33.0", "1.37.0"];

/// Everything a workspace can ask of the Kubernetes backend at once.
const FULL: &str = "version: 1
containers:
  - name: api
    image: python:3.12
    backend: kubernetes
    command: [python, -m, http.server, \"8080\"]
    env: { MODE: prod, EMPTY: \"\" }
    ports: [8080, 9090]
    resources: { cpus: 0.5, memory: 256Mi, gpus: 1 }
    volumes: [{ name: data, path: /srv }, { name: cache, path: /cache }]
  - name: batch
    image: 127.0.0.1:5000/alice/tools:1
    backend: kubernetes
    state: stopped
";

fn validator() -> Option<PathBuf> {
    let explicit = std::env::var_os("BERTH_KUBE_VALIDATE").map(PathBuf::from);
    let found = explicit.or_else(|| {
        Command::new("kubernetes-validate")
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|_| PathBuf::from("kubernetes-validate"))
    });
    if found.is_none() {
        assert!(
            std::env::var_os("BERTH_E2E_REQUIRED").is_none(),
            "kubernetes-validate is required (scripts/test.sh installs it)"
        );
        eprintln!("skipping: kubernetes-validate not installed");
    }
    found
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Writes every object of `text`'s manifests (enabled and disabled
/// account) as one JSON file each; returns the files.
fn write_manifests(dir: &Path, label: &str, text: &str) -> Vec<PathBuf> {
    let site_text = std::fs::read(root().join("examples/site.yaml")).expect("example site");
    let site = berth_spec::parse_site(&site_text).expect("valid site");
    let settings = Settings::from_site(&site).expect("the example site has a cluster");
    let ws = berth_spec::parse_workspace(text.as_bytes()).expect("valid workspace");
    let containers: Vec<&berth_spec::Container> = ws
        .containers
        .iter()
        .filter(|c| berth_spec::policy::backend_of(&site, c) == berth_spec::Backend::Kubernetes)
        .collect();
    let quota = berth_spec::policy::effective_quota(&site, &["students".into()]);
    let pins = BTreeMap::from([(
        "127.0.0.1:5000/alice/tools:1".to_string(),
        format!("sha256:{}", "a".repeat(64)),
    )]);
    let mut files = vec![];
    for disabled in [false, true] {
        let owner = Owner {
            account: "alice",
            repository: "alice/workspace",
            revision: "0123456789abcdef0123456789abcdef01234567",
            disabled,
            pins: &pins,
        };
        let m = manifests(&settings, &site, &owner, &containers, quota.as_ref());
        for (i, o) in m
            .account
            .iter()
            .chain(m.workloads.values().flatten())
            .enumerate()
        {
            let path = dir.join(format!("{label}-{disabled}-{i:02}-{}.json", o.kind));
            std::fs::write(&path, serde_json::to_vec_pretty(&o.value).expect("JSON"))
                .expect("write manifest");
            files.push(path);
        }
    }
    files
}

#[test]
fn generated_manifests_validate_against_the_kubernetes_openapi_schema() {
    let Some(validate) = validator() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("berth-openapi-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut files = write_manifests(&dir, "full", FULL);
    let example = std::fs::read_to_string(root().join("examples/workspace-kubernetes.yaml"))
        .expect("example workspace");
    files.extend(write_manifests(&dir, "example", &example));
    let kinds: std::collections::BTreeSet<String> = files
        .iter()
        .filter_map(|f| {
            f.file_stem()?
                .to_str()?
                .rsplit('-')
                .next()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "Deployment",
            "Ingress",
            "LimitRange",
            "Namespace",
            "NetworkPolicy",
            "PersistentVolumeClaim",
            "ResourceQuota",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ],
        "every kind Berth applies is validated"
    );
    // What the schema cannot say but the API server checks: names and labels.
    for f in &files {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(f).expect("read")).expect("JSON");
        api_server_rules(&v, f);
    }
    for version in VERSIONS {
        let out = Command::new(&validate)
            .args(["--strict", "--quiet", "-k", version])
            .args(&files)
            .output()
            .expect("kubernetes-validate runs");
        assert!(
            out.status.success(),
            "manifests invalid for Kubernetes {version}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The validator really rejects what the API server would.
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},
            "spec":{"replicas":"one","selector":{},"template":{}}}"#,
    )
    .expect("write");
    let out = Command::new(&validate)
        .args(["--strict", "--quiet", "-k", VERSIONS[1]])
        .arg(&bad)
        .output()
        .expect("kubernetes-validate runs");
    assert!(!out.status.success(), "an invalid manifest passed");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most `max` characters.
fn dns_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A label value or the name part of a label key:
/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 characters.
fn label_name(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && s.bytes().next().is_none_or(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_none_or(|b| b.is_ascii_alphanumeric())
}

/// `[prefix/]name` with a DNS subdomain prefix.
fn label_key(k: &str) -> bool {
    match k.split_once('/') {
        Some((prefix, name)) => {
            prefix.len() <= 253
                && prefix.split('.').all(|p| dns_label(p, 63))
                && !name.is_empty()
                && label_name(name)
        }
        None => !k.is_empty() && label_name(k),
    }
}

fn api_server_rules(v: &serde_json::Value, file: &Path) {
    let meta = &v["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    let kind = v["kind"].as_str().unwrap_or_default();
    let name_ok = match kind {
        "Namespace" | "Service" => dns_label(name, 63),
        _ => name.len() <= 253 && name.split('.').all(|p| dns_label(p, 63)),
    };
    assert!(name_ok, "{}: invalid {kind} name `{name}`", file.display());
    let mut label_maps = vec![&meta["labels"]];
    label_maps.push(&v["spec"]["template"]["metadata"]["labels"]);
    label_maps.push(&v["spec"]["selector"]["matchLabels"]);
    label_maps.push(&v["spec"]["selector"]);
    for map in label_maps.into_iter().filter_map(|m| m.as_object()) {
        for (k, val) in map {
            let val = val.as_str().unwrap_or_default();
            assert!(
                label_key(k) && label_name(val),
                "{}: invalid label {k}={val}",
                file.display()
            );
        }
    }
    for k in meta["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        assert!(
            label_key(k),
            "{}: invalid annotation key {k}",
            file.display()
        );
    }
    for c in v["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for p in c["ports"].as_array().into_iter().flatten() {
            let port = p["containerPort"].as_i64().unwrap_or_default();
            assert!(
                (1..=65535).contains(&port),
                "{}: port {port}",
                file.display()
            );
        }
    }
    for p in v["spec"]["ports"].as_array().into_iter().flatten() {
        let port_name = p["name"].as_str().unwrap_or_default();
        assert!(
            dns_label(port_name, 15) && port_name.bytes().any(|b| b.is_ascii_lowercase()),
            "{}: Service port name `{port_name}` is not an IANA service name",
            file.display()
        );
    }
}

#[test]
fn the_name_and_label_rules_catch_what_the_api_server_would_reject() {
    assert!(
        !label_name("alice/workspace"),
        "a slash is not allowed in label values"
    );
    assert!(label_name("0123456789abcdef"));
    assert!(label_key("pod-security.kubernetes.io/enforce"));
    assert!(!label_key("Bad Key"));
    assert!(!dns_label("Web", 63));
}
