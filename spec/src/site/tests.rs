//! Site validation and the project-path rule, tested.
use super::*;

#[test]
fn one_rule_derives_the_account_from_a_project_path() {
    let gitlab = Repositories::Gitlab {
        groups: vec!["students".into(), "courses/os".into()],
        repository: "workspace".into(),
        clone_url: None,
        poll: None,
    };
    for (path, want) in [
        ("alice/workspace", Some("alice")),
        ("students/alice/workspace", Some("alice")),
        ("courses/os/2026/alice/workspace", Some("alice")),
        // Another repository of the account is not its workspace.
        ("alice/evil", None),
        ("alice/workspace/deeper", None),
        // A project in a group the site does not list.
        ("elsewhere/alice/workspace", None),
        ("studentsx/alice/workspace", None),
        ("workspace", None),
        ("Alice/workspace", None),
        ("a--b/workspace", None),
    ] {
        assert_eq!(gitlab.account_of(path), want, "{path}");
    }
    let local = Repositories::Local {
        root: "/r".into(),
        repository: "workspace".into(),
    };
    assert_eq!(local.account_of("alice/workspace"), Some("alice"));
    assert_eq!(local.account_of("students/alice/workspace"), None);
}

fn problems(extra_ldap: &str, docker: &str) -> Vec<String> {
    let text = format!(
        "ldap:\n  url: ldap://ldap.example:389\n{extra_ldap}  base_dn: ou=people,dc=x\n  allowed_groups: [students]\nbackends:\n  docker:\n    - {docker}\npolicy:\n  quotas: {{}}\nrepositories:\n  local: {{ root: /r }}\nstate_dir: /s\n"
    );
    match crate::parse_site(text.as_bytes()) {
        Ok(_) => vec![],
        Err(d) => d.iter().map(|d| d.to_string()).collect(),
    }
}

#[test]
fn plaintext_ldap_and_docker_need_an_explicit_insecure() {
    let unix = "{ name: a, endpoint: env, host_ports: { first: 1, last: 2 } }";
    let got = problems("", unix);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("2:8: LDAP url `ldap://ldap.example:389` sends passwords in clear"),
        "{got:?}"
    );
    assert!(problems("  starttls: true\n", unix).is_empty());
    assert!(problems("  insecure: true\n", unix).is_empty());
    let tcp = "{ name: a, endpoint: \"tcp://10.0.0.5:2376\", host_ports: { first: 1, last: 2 } }";
    let got = problems("  starttls: true\n", tcp);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("is plain TCP, i.e. root on that host"),
        "{got:?}"
    );
    let tls = "{ name: a, endpoint: \"tcp://10.0.0.5:2376\", tls: { ca: /c, cert: /p, key: /k }, host_ports: { first: 1, last: 2 } }";
    assert!(problems("  starttls: true\n", tls).is_empty());
    let insecure = "{ name: a, endpoint: \"tcp://127.0.0.1:2375\", insecure: true, host_ports: { first: 1, last: 2 } }";
    assert!(problems("  starttls: true\n", insecure).is_empty());
}

#[test]
fn durations() {
    assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
    for bad in ["", "0s", "5 minutes", "-1m", "1.5h", "m"] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn durations_with_a_default_count_in_the_core_units_and_saturate() {
    let day = Duration::from_secs(86_400);
    assert_eq!(duration_or("5m", day), Duration::from_secs(300));
    assert_eq!(duration_or("5 minutes", day), day);
    assert_eq!(millis_or("90s", day), 90_000);
    assert_eq!(secs_or("bad", day), 86_400);
    // Larger than an i64 of milliseconds: the most, not a wrapped negative.
    assert_eq!(millis_or(&format!("{}d", u64::MAX / 86_400), day), i64::MAX);
}

fn console_site(console: &str, docker: &str) -> Result<Site, Vec<String>> {
    let text = format!(
        "ldap:\n  url: ldap://ldap.example:389\n  insecure: true\n  base_dn: ou=people,dc=x\n  allowed_groups: [students]\nbackends:\n  docker:\n    - {docker}\npolicy:\n  quotas: {{}}\nrepositories:\n  local: {{ root: /r }}\nstate_dir: /s\nconsole: {console}\n"
    );
    crate::parse_site(text.as_bytes()).map_err(|d| d.iter().map(|d| d.to_string()).collect())
}

#[test]
fn students_ports_on_the_consoles_host_are_refused_unless_explicitly_shared() {
    let ports = "host_ports: { first: 1, last: 2 }";
    let console = "{ host: berth.example.edu }";
    for docker in [
        // A wildcard bind and no public_host: linked on the page's host.
        format!("{{ name: a, endpoint: env, bind_address: 0.0.0.0, {ports} }}"),
        format!("{{ name: a, endpoint: env, public_host: Berth.Example.edu, {ports} }}"),
        format!("{{ name: a, endpoint: env, bind_address: berth.example.edu, {ports} }}"),
    ] {
        let got = console_site(console, &docker).expect_err("refused");
        assert!(
            got[0].contains("would be served on the console's host `berth.example.edu`"),
            "{docker}: {got:?}"
        );
    }
    let apart = format!("{{ name: a, endpoint: env, public_host: apps.example.edu, {ports} }}");
    assert!(console_site(console, &apart).is_ok());
    // Without console.host nothing can be told; with the override, a warning.
    let wildcard = format!("{{ name: a, endpoint: env, bind_address: 0.0.0.0, {ports} }}");
    assert!(console_site("{}", &wildcard).is_ok());
    let shared = console_site(
        "{ host: berth.example.edu, share_host_with_apps: true }",
        &wildcard,
    )
    .expect("allowed");
    assert_eq!(warnings(&shared).len(), 1);
}

#[test]
fn trusted_proxies_are_addresses_or_ranges() {
    let docker = "{ name: a, endpoint: env, host_ports: { first: 1, last: 2 } }";
    let text = |proxies: &str| {
        format!(
            "ldap:\n  url: ldap://l:389\n  insecure: true\n  base_dn: dc=x\n  allowed_groups: [s]\nbackends:\n  docker:\n    - {docker}\npolicy:\n  quotas: {{}}\nrepositories:\n  local: {{ root: /r }}\nstate_dir: /s\ntrusted_proxies: {proxies}\n"
        )
    };
    assert!(crate::parse_site(text("[127.0.0.1, 10.0.0.0/8, \"::1\"]").as_bytes()).is_ok());
    let got = crate::parse_site(text("[proxy.example]").as_bytes())
        .expect_err("refused")
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>();
    assert!(
        got[0].contains("`proxy.example` is neither an address nor a CIDR range"),
        "{got:?}"
    );
}

#[test]
fn personal_token_lifetimes_are_durations_and_the_default_is_within_the_longest() {
    let text = |token: &str| {
        format!(
            "ldap:\n  url: ldap://l:389\n  insecure: true\n  base_dn: dc=x\n  allowed_groups: [s]\nbackends:\n  docker:\n    - {{ name: a, endpoint: env, host_ports: {{ first: 1, last: 2 }} }}\npolicy:\n  quotas: {{}}\nrepositories:\n  local: {{ root: /r }}\nstate_dir: /s\npublic_url: https://berth.example\nregistry: {{ host: r.example, token: {token} }}\n"
        )
    };
    let got = crate::parse_site(text("{ personal_ttl: forever }").as_bytes())
        .expect_err("refused")
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>();
    assert!(got[0].contains("forever"), "{got:?}");
    let site = crate::parse_site(text("{ personal_ttl: 400d, personal_max_ttl: 30d }").as_bytes())
        .expect("valid");
    let day = Duration::from_secs(86_400);
    let token = site.registry.as_ref().and_then(|r| r.token.as_ref());
    assert_eq!(personal_lifetimes(token), (30 * day, 30 * day));
    assert_eq!(personal_lifetimes(None), (90 * day, 365 * day));
}

#[test]
fn polling_is_a_duration_asks_the_api_and_a_site_that_hears_nothing_is_warned() {
    let text = |gitlab: &str, repositories: &str| {
        format!(
            "{gitlab}ldap:\n  url: ldap://l:389\n  insecure: true\n  base_dn: dc=x\n  allowed_groups: [s]\nbackends:\n  docker:\n    - {{ name: a, endpoint: env, host_ports: {{ first: 1, last: 2 }} }}\npolicy:\n  quotas: {{}}\nrepositories:\n  gitlab: {repositories}\nstate_dir: /s\n"
        )
    };
    let parse = |gitlab: &str, repositories: &str| {
        crate::parse_site(text(gitlab, repositories).as_bytes())
            .map_err(|d| d.iter().map(|d| d.to_string()).collect::<Vec<_>>())
    };
    let api = "gitlab: { url: https://gl.example, token_env: GL_TOKEN }\n";
    let polled = parse(api, "{ groups: [s], poll: 3m }").expect("valid");
    assert_eq!(polled.poll_interval(), Some(Duration::from_secs(180)));
    // No webhook secret, but polling: nothing to warn about.
    assert!(warnings(&polled).is_empty(), "{:?}", warnings(&polled));
    let deaf = parse(api, "{ groups: [s] }").expect("valid");
    assert_eq!(deaf.poll_interval(), None);
    assert!(
        warnings(&deaf)[0].contains("no push is ever noticed"),
        "{:?}",
        warnings(&deaf)
    );
    let bad = parse(api, "{ groups: [s], poll: often }").expect_err("refused");
    assert!(bad[0].contains("duration `often`"), "{bad:?}");
    let anonymous = parse(
        "gitlab: { url: https://gl.example }\n",
        "{ groups: [s], poll: 1m }",
    )
    .expect_err("refused");
    assert!(
        anonymous
            .iter()
            .any(|p| p.contains("polling needs `gitlab.token_env`")),
        "{anonymous:?}"
    );
}

#[test]
fn home_templates_give_each_account_its_own_absolute_directory() {
    let text = |homes: &str| {
        format!(
            "ldap:\n  url: ldap://l:389\n  insecure: true\n  base_dn: dc=x\n  allowed_groups: [s]\nbackends:\n  docker:\n    - {{ name: a, endpoint: env, host_ports: {{ first: 1, last: 2 }}, homes: {homes} }}\npolicy:\n  quotas: {{}}\nrepositories:\n  local: {{ root: /r }}\nstate_dir: /s\n"
        )
    };
    assert!(crate::parse_site(text("{ source: \"/srv/home/{account}\" }").as_bytes()).is_ok());
    for (homes, why) in [
        ("{ source: /srv/home }", "whole path component"),
        (
            "{ source: \"/srv/home/x{account}\" }",
            "whole path component",
        ),
        ("{ source: \"srv/{account}\" }", "absolute path"),
        ("{ source: \"/srv/../{account}\" }", "without `.` or `..`"),
        (
            "{ source: \"/srv/{account}\", target: home }",
            "absolute path",
        ),
    ] {
        let got = crate::parse_site(text(homes).as_bytes())
            .expect_err(homes)
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        assert!(got.contains(why), "{homes}: {got}");
    }
}

fn dormancy_site(dormancy: &str) -> Result<Site, Vec<String>> {
    let text = format!(
        "ldap:\n  url: ldap://ldap.example:389\n  insecure: true\n  base_dn: ou=people,dc=x\n  allowed_groups: [students]\nbackends:\n  docker:\n    - {{ name: a, endpoint: env, host_ports: {{ first: 1, last: 2 }} }}\npolicy:\n  quotas: {{}}\nrepositories:\n  local: {{ root: /r }}\nstate_dir: /s\ndormancy: {dormancy}\n"
    );
    crate::parse_site(text.as_bytes()).map_err(|d| d.iter().map(|d| d.to_string()).collect())
}

#[test]
fn dormancy_tells_before_it_archives_and_keeps_space_free() {
    let ok = dormancy_site("{ dormant_after: 90d, archive_after: 120d, archive_dir: /a }")
        .expect("valid");
    let d = ok.dormancy.expect("set");
    assert_eq!(d.keep_free.bytes(), Ok(2 << 30), "the default reserve");
    let got = dormancy_site(
        "{ dormant_after: 90d, archive_after: 90d, archive_dir: a, keep_free: lots }",
    )
    .expect_err("refused");
    let all = got.join("\n");
    for why in [
        "archive_after must be longer than dormant_after",
        "archive_dir must be an absolute path",
        "dormancy.keep_free",
    ] {
        assert!(all.contains(why), "{why}: {all}");
    }
}
