//! Site policy for images: allowed registries, own namespace in the
//! department registry, and images other accounts share.

use berth_spec::policy::{Shared, image_allowed, image_allowed_with, share_key};
use berth_spec::{ImageRef, parse_site};

fn site() -> berth_spec::Site {
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/site.yaml"
    ))
    .expect("example site");
    parse_site(&text).expect("valid")
}

fn img(s: &str) -> ImageRef {
    ImageRef::parse(s).expect("valid reference")
}

#[test]
fn own_namespace_allowed_registries_and_shares() {
    let site = site();
    assert!(
        image_allowed(&site, "alice", &img("nginx:1")).is_ok(),
        "docker.io is allowed"
    );
    assert!(image_allowed(&site, "alice", &img("127.0.0.1:5000/alice/tools:1")).is_ok());
    assert_eq!(
        image_allowed(&site, "bob", &img("127.0.0.1:5000/alice/tools:1")),
        Err(
            "image `127.0.0.1:5000/alice/tools:1` belongs to `alice` and is not shared with you"
                .into()
        )
    );
    let shared: Shared = [share_key(&img("127.0.0.1:5000/alice/tools:1"))]
        .into_iter()
        .collect();
    assert!(
        image_allowed_with(&site, "bob", &img("127.0.0.1:5000/alice/tools:1"), &shared).is_ok()
    );
    assert!(
        image_allowed_with(&site, "bob", &img("127.0.0.1:5000/alice/tools:2"), &shared).is_err(),
        "a share is per tag"
    );
    let pinned = img(&format!(
        "127.0.0.1:5000/alice/tools:1@sha256:{}",
        "a".repeat(64)
    ));
    assert!(
        image_allowed_with(&site, "bob", &pinned, &shared).is_ok(),
        "a digest does not change what is shared"
    );
    assert!(
        image_allowed(&site, "alice", &img("quay.io/x/y"))
            .unwrap_err()
            .contains("registry `quay.io` is not allowed")
    );
    assert!(
        image_allowed(&site, "alice", &img("127.0.0.1:5000/tools"))
            .unwrap_err()
            .contains("outside any account namespace")
    );
}

fn kube_workspace(extra: &str) -> berth_spec::Workspace {
    let text = format!(
        "version: 1\ncontainers:\n  - name: train\n    image: pytorch/pytorch:2\n    backend: kubernetes\n{extra}"
    );
    berth_spec::parse_workspace(text.as_bytes()).expect("valid")
}

fn problems(r: Result<(), berth_spec::Diagnostics>) -> Vec<String> {
    match r {
        Ok(()) => vec![],
        Err(d) => d.iter().map(|d| d.to_string()).collect(),
    }
}

#[test]
fn kubernetes_containers_get_the_same_policy_as_docker_ones() {
    let site = site();
    let students = ["students".to_string()];
    let ok = kube_workspace("    resources: { gpus: 1 }\n");
    assert!(berth_spec::policy::check(&ok, &site, "alice", &students).is_ok());
    let greedy = kube_workspace("    resources: { gpus: 8 }\n");
    assert_eq!(
        problems(berth_spec::policy::check(
            &greedy, &site, "alice", &students
        )),
        ["3:11: quota exceeded: GPUs requested beyond the 1 that group `students` allows"]
    );
    let text = "version: 1\ncontainers:\n  - name: api\n    image: evil.example/miner:1\n    backend: kubernetes\n";
    let foreign = berth_spec::parse_workspace(text.as_bytes()).expect("valid");
    let got = problems(berth_spec::policy::check(
        &foreign, &site, "alice", &students,
    ));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("4:12: registry `evil.example` is not allowed"),
        "{got:?}"
    );
}

#[test]
fn names_that_collide_with_a_longer_account_after_prefixing_are_refused() {
    let accounts: std::collections::BTreeSet<String> =
        ["alice", "alice-x", "bob"].map(String::from).into();
    let ws = berth_spec::parse_workspace(
        b"version: 1\ncontainers:\n  - name: x-web\n    image: nginx\n    volumes: [{ name: x-data, path: /d }]\n  - name: xweb\n    image: nginx\n",
    )
    .expect("valid");
    assert_eq!(
        problems(berth_spec::policy::check_prefixes(&ws, "alice", &accounts)),
        [
            "3:11: container name `x-web` would be `alice-x-web`, which collides with the names of account `alice-x`; choose a name that does not start with `x-`",
            "5:23: volume name `x-data` would be `alice-x-data`, which collides with the names of account `alice-x`; choose a name that does not start with `x-`",
        ]
    );
    // The longer account's own names are its own.
    assert!(berth_spec::policy::check_prefixes(&ws, "alice-x", &accounts).is_ok());
    assert!(berth_spec::policy::check_prefixes(&ws, "bob", &accounts).is_ok());
}
