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
        image_allowed_with(&site, "bob", &img("127.0.0.1:5000/alice/tools:2"), &shared).is_ok(),
        "a share is per repository: every tag of it"
    );
    let digest = format!("sha256:{}", "a".repeat(64));
    for pinned in [
        format!("127.0.0.1:5000/alice/tools:1@{digest}"),
        format!("127.0.0.1:5000/alice/tools@{digest}"),
    ] {
        assert!(
            image_allowed_with(&site, "bob", &img(&pinned), &shared).is_ok(),
            "{pinned}: every digest of a shared repository"
        );
    }
    // The digest bypass: a share of one repository lends nothing of another,
    // by tag or by digest.
    for other in [
        "127.0.0.1:5000/alice/private:latest".to_string(),
        format!("127.0.0.1:5000/alice/private@{digest}"),
        format!("127.0.0.1:5000/alice/tools-private@{digest}"),
        format!("127.0.0.1:5000/alice/tools/sub@{digest}"),
    ] {
        assert_eq!(
            image_allowed_with(&site, "bob", &img(&other), &shared),
            Err(format!(
                "image `{}` belongs to `alice` and is not shared with you",
                img(&other)
            )),
            "{other}"
        );
    }
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
fn names_of_two_accounts_never_collide_and_accounts_may_not_hold_the_separator() {
    let site = site();
    let students = ["students".to_string()];
    let ws = berth_spec::parse_workspace(
        b"version: 1\ncontainers:\n  - name: x-web\n    image: nginx\n    volumes: [{ name: x-data, path: /d }]\n",
    )
    .expect("valid");
    // `alice` + `x-web` and `alice-x` + `web` are different backend names
    // by construction, so both accounts may use them.
    assert!(berth_spec::policy::check(&ws, &site, "alice", &students).is_ok());
    assert!(berth_spec::policy::check(&ws, &site, "alice-x", &students).is_ok());
    assert_eq!(
        problems(berth_spec::policy::check(&ws, &site, "alice--x", &students)),
        ["1:1: account name `alice--x` may not contain `--`: Berth joins account and name with it"]
    );
}

#[test]
fn keep_until_is_bounded_by_the_sites_keep_max_at_the_push() {
    let site = site();
    // 2026-12-03T00:00:00Z; the example site's keep_max is the default 7d.
    let now = 1_796_256_000;
    let ws = |until: &str| {
        berth_spec::parse_workspace(
            format!("version: 1\ncontainers:\n  - name: train\n    image: nginx:1\n    keep_until: \"{until}\"\n").as_bytes(),
        )
        .expect("valid")
    };
    let check = |until: &str| problems(berth_spec::policy::check_dates(&ws(until), &site, now));
    assert_eq!(
        check("2026-12-10T00:00:00Z"),
        Vec::<String>::new(),
        "exactly 7 days"
    );
    assert_eq!(
        check("2026-12-01"),
        Vec::<String>::new(),
        "a past date keeps nothing, refuses nothing"
    );
    assert_eq!(
        check("2026-12-10T00:00:01Z"),
        vec!["5:17: keep_until `2026-12-10T00:00:01Z` is further away than this site allows (7d from now, `policy.idle.keep_max`)".to_string()]
    );
    // A day lasts to its end: 2026-12-10 ends at 2026-12-11T00:00:00Z.
    assert_eq!(check("2026-12-10").len(), 1);
    let bad = berth_spec::parse_workspace(
        b"version: 1\ncontainers:\n  - name: train\n    image: nginx:1\n    keep_until: next week\n",
    );
    let text = bad.err().map(|d| d.to_string()).unwrap_or_default();
    assert!(
        text.contains("keep_until: `next week` is not a date"),
        "{text}"
    );
}

#[test]
fn access_grants_need_the_sites_access_a_grantable_group_a_docker_container_and_a_near_date() {
    let mut site = site();
    let now = 1_796_256_000; // 2026-12-03T00:00:00Z
    let ws = |entry: &str| {
        berth_spec::parse_workspace(
            format!("version: 1\ncontainers:\n  - name: box\n    image: nginx:1\n    access:\n      - {entry}\n").as_bytes(),
        )
        .expect("valid")
    };
    // Without the `line:col: ` each problem starts with.
    let check = |site: &berth_spec::Site, entry: &str| {
        problems(berth_spec::policy::check_dates(&ws(entry), site, now))
            .into_iter()
            .map(|p| {
                p.splitn(3, ':')
                    .nth(2)
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            })
            .collect::<Vec<_>>()
    };
    let ta = "{ account: bob, allow: [terminal], until: \"2027-01-02T00:00:00Z\" }";
    assert_eq!(
        check(&site, ta),
        vec![
            "access: this site lets no one into students' containers (no `access` in site.yaml)"
                .to_string()
        ]
    );
    site.access = Some(berth_spec::site::Access {
        grantable_groups: vec!["tas".into()],
        max: berth_spec::Located::new("30d".into()),
    });
    assert_eq!(check(&site, ta), Vec::<String>::new(), "exactly 30 days");
    assert_eq!(
        check(&site, "{ account: bob, allow: [terminal], until: \"2027-01-02T00:00:01Z\" }"),
        vec!["access until `2027-01-02T00:00:01Z` is further away than this site allows (30d from now, `access.max`)".to_string()]
    );
    assert_eq!(
        check(
            &site,
            "{ group: students, allow: [logs], until: 2026-12-10 }"
        ),
        vec!["access: group `students` is not one this site lets you grant (tas)".to_string()]
    );
    assert_eq!(
        check(&site, "{ group: tas, allow: [logs], until: 2026-12-10 }"),
        Vec::<String>::new()
    );
    let structural = |entry: &str| {
        berth_spec::parse_workspace(
            format!("version: 1\ncontainers:\n  - name: box\n    image: nginx:1\n    access:\n      - {entry}\n").as_bytes(),
        )
        .err()
        .map(|d| d.to_string())
        .unwrap_or_default()
    };
    assert!(
        structural("{ account: bob, group: tas, allow: [logs], until: 2026-12-10 }")
            .contains("not both")
    );
    assert!(
        structural("{ allow: [logs], until: 2026-12-10 }")
            .contains("name the `account` or the `group`")
    );
    assert!(structural("{ account: bob, allow: [], until: 2026-12-10 }").contains("at least one"));
    assert!(structural("{ account: bob, allow: [root], until: 2026-12-10 }").contains("root"));
    assert!(
        structural("{ account: \"b)(uid=*\", allow: [logs], until: 2026-12-10 }")
            .contains("must be 1 to 64")
    );
    let many: String = (0..21)
        .map(|i| format!("      - {{ account: ta{i}, allow: [logs], until: 2026-12-10 }}\n"))
        .collect();
    let text = berth_spec::parse_workspace(
        format!("version: 1\ncontainers:\n  - name: box\n    image: nginx:1\n    access:\n{many}")
            .as_bytes(),
    )
    .err()
    .map(|d| d.to_string())
    .unwrap_or_default();
    assert!(text.contains("more than 20 access grants"), "{text}");
}
