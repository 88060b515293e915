//! The registry behind Berth's identity: a real `docker-registry` with
//! `auth: token` pointing at `reconciler serve`, real slapd passwords, and
//! the real docker CLI logging in, pushing and pulling.

use base64::Engine;
use berth_tests::Services;
use berth_tests::fixture::{REGISTRY_PASSWORD, REGISTRY_USER, World, free_port};
use berth_tests::registry::TokenRegistry;
use berth_tests::{http_get_with, stdout};

/// A token-service world: its registry host reserved, `serve` on a known
/// port (the realm), accounts with passwords.
fn world(s: &Services, first_port: u16) -> (World, String) {
    let mut w = World::new(s, first_port);
    let host = TokenRegistry::reserve();
    w.site_overrides.registry = Some(host.clone());
    w.site_overrides.registry_token = true;
    w.site_overrides.serve_port = Some(free_port());
    (w, host)
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// GET /registry/token as `user`; the status code and the token's claims.
fn token(server: &str, user: &str, password: &str, scopes: &[&str]) -> (u16, serde_json::Value) {
    let query: String = scopes
        .iter()
        .map(|s| format!("&scope={}", s.replace(':', "%3A").replace(',', "%2C")))
        .collect();
    let auth = basic(user, password);
    let (status, body) = http_get_with(
        server,
        &format!("/registry/token?account={user}{query}"),
        &[("Authorization", auth.as_str())],
    )
    .expect("token endpoint answers");
    let code = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let claims = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["token"].as_str().map(str::to_string))
        .and_then(|t| t.split('.').nth(1).map(str::to_string))
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    (code, claims)
}

fn access(claims: &serde_json::Value) -> Vec<(String, Vec<String>)> {
    claims["access"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                format!(
                    "{}:{}",
                    a["type"].as_str().unwrap_or(""),
                    a["name"].as_str().unwrap_or("")
                ),
                a["actions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
            )
        })
        .collect()
}

fn grant(name: &str, actions: &[&str]) -> (String, Vec<String>) {
    (
        name.to_string(),
        actions.iter().map(|a| a.to_string()).collect(),
    )
}

fn ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tokens_grant_exactly_what_each_login_may_and_bad_passwords_are_throttled() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (mut w, host) = world(&s, 25400);
    let alice = w.account("ta", &["students"]);
    let bob = w.account("tb", &["students"]);
    let gone = w.account("tgone", &["students"]);
    let root = w.account("troot", &["admins"]);
    let eve = w.account("teve", &["students"]);
    for a in [&alice, &bob, &gone, &root, &eve] {
        w.set_password(a, &format!("pw-{a}"));
    }
    w.set_group(&gone, "disabled", true);
    let registry = TokenRegistry::start(&w, &host);
    let server = w.serve();
    let pw = |a: &str| format!("pw-{a}");

    // Bob publishes two repositories with his own password and shares one.
    let bob_cli = registry.client(&w, "bob");
    ok(&bob_cli.login(&bob, &pw(&bob)), "bob logs in");
    for name in ["shared", "private"] {
        let image = format!("{host}/{bob}/{name}:1");
        ok(&s.docker(&["tag", &s.test_image, &image]), "tag");
        ok(&bob_cli.run(&["push", &image]), "bob pushes his own");
    }
    w.commit(
        &bob,
        Some(&format!(
            "version: 1\nimages:\n  share:\n    - {{ image: \"{host}/{bob}/shared:1\", description: tools }}\n"
        )),
        &w.mail(&bob),
    );
    w.apply(0);

    let own = format!("repository:{alice}/x:pull,push");
    let theirs = format!("repository:{bob}/private:pull,push");
    let shared = format!("repository:{bob}/shared:pull,push");
    let (code, claims) = token(&server.addr, &alice, &pw(&alice), &[&own, &theirs, &shared]);
    assert_eq!(code, 200, "{claims}");
    assert_eq!(
        access(&claims),
        vec![
            grant(&format!("repository:{alice}/x"), &["pull", "push"]),
            grant(&format!("repository:{bob}/shared"), &["pull"]),
        ],
        "exactly her namespace and the shared repository: {claims}"
    );
    assert_eq!(claims["aud"], host.as_str());
    assert_eq!(claims["sub"], alice.as_str());

    // Admins pull everywhere; Berth does everything, catalogue included.
    let (code, claims) = token(&server.addr, &root, &pw(&root), &[&theirs]);
    assert_eq!(code, 200);
    assert_eq!(
        access(&claims),
        vec![grant(&format!("repository:{bob}/private"), &["pull"])]
    );
    let (code, claims) = token(
        &server.addr,
        REGISTRY_USER,
        REGISTRY_PASSWORD,
        &[&theirs, "registry:catalog:*"],
    );
    assert_eq!(code, 200);
    assert_eq!(
        access(&claims),
        vec![
            grant(&format!("repository:{bob}/private"), &["pull", "push"]),
            grant("registry:catalog", &["*"]),
        ]
    );

    // A disabled account gets nothing even with its right password; an
    // empty password is never an anonymous bind.
    assert_eq!(token(&server.addr, &gone, &pw(&gone), &[]).0, 401);
    assert_eq!(token(&server.addr, &alice, "", &[]).0, 401);
    assert_eq!(token(&server.addr, "*)(uid=*", "x", &[]).0, 401);

    // Twenty wrong passwords: three reach the directory, the rest are
    // refused before it, and so is the right one until the window passes.
    let codes: Vec<u16> = (0..20)
        .map(|i| token(&server.addr, &eve, &format!("guess{i}"), &[]).0)
        .collect();
    assert_eq!(&codes[..3], &[401, 401, 401], "{codes:?}");
    assert!(codes[3..].iter().all(|c| *c == 429), "{codes:?}");
    assert_eq!(token(&server.addr, &eve, &pw(&eve), &[]).0, 429);
    // Other accounts are not locked out by eve's attacker.
    assert_eq!(token(&server.addr, &alice, &pw(&alice), &[]).0, 200);
    // Berth's own password is guessed through the same throttle (it used
    // to be compared before it: unlimited guesses).
    let codes: Vec<u16> = (0..4)
        .map(|i| token(&server.addr, REGISTRY_USER, &format!("guess{i}"), &[]).0)
        .collect();
    assert_eq!(codes, [401, 401, 401, 429]);
    assert_eq!(
        token(&server.addr, REGISTRY_USER, REGISTRY_PASSWORD, &[]).0,
        429
    );
    drop(registry);
}

#[test]
fn docker_login_push_pull_and_personal_tokens_through_berth() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (mut w, host) = world(&s, 25500);
    let alice = w.account("da", &["students"]);
    let bob = w.account("db", &["students"]);
    w.set_password(&alice, "alice-secret");
    w.set_password(&bob, "bob-secret");
    let registry = TokenRegistry::start(&w, &host);
    let _server = w.serve();

    let alice_cli = registry.client(&w, "alice");
    let bob_cli = registry.client(&w, "bob");
    assert!(
        !alice_cli.login(&alice, "wrong").status.success(),
        "a wrong password is refused"
    );
    ok(&alice_cli.login(&alice, "alice-secret"), "alice logs in");
    ok(&bob_cli.login(&bob, "bob-secret"), "bob logs in");

    let mine = format!("{host}/{alice}/x:1");
    let into_bob = format!("{host}/{bob}/x:1");
    for image in [&mine, &into_bob] {
        ok(&s.docker(&["tag", &s.test_image, image]), "tag");
    }
    ok(
        &alice_cli.run(&["push", &mine]),
        "alice pushes into her namespace",
    );
    let denied = alice_cli.run(&["push", &into_bob]);
    assert!(
        !denied.status.success(),
        "alice overwrote bob's namespace: {}",
        stdout(&denied)
    );

    // Bob's unshared repository is his alone; the one he shares is anyone's.
    let private = format!("{host}/{bob}/private:1");
    let shared = format!("{host}/{bob}/shared:1");
    for image in [&private, &shared] {
        ok(&s.docker(&["tag", &s.test_image, image]), "tag");
        ok(&bob_cli.run(&["push", image]), "bob pushes");
        ok(&s.docker(&["rmi", image]), "untag locally");
    }
    w.commit(
        &bob,
        Some(&format!(
            "version: 1\nimages:\n  share:\n    - {{ image: \"{host}/{bob}/shared:1\", description: tools }}\n"
        )),
        &w.mail(&bob),
    );
    w.apply(0);
    assert!(
        !alice_cli.run(&["pull", &private]).status.success(),
        "alice pulled bob's unshared image"
    );
    ok(
        &alice_cli.run(&["pull", &shared]),
        "alice pulls the shared image",
    );

    // A personal token logs in instead of the password, until revoked.
    let out = w.reconciler(&[
        "registry-token",
        "create",
        "--account",
        &alice,
        "--name",
        "laptop",
    ]);
    ok(&out, "create a token");
    let secret = stdout(&out).trim().to_string();
    assert!(secret.starts_with("berth_pat_"), "{secret}");
    let laptop = registry.client(&w, "laptop");
    ok(
        &laptop.login(&alice, &secret),
        "login with the personal token",
    );
    assert!(
        !laptop.login(&bob, &secret).status.success(),
        "a token is its owner's only"
    );
    let listed = w.reconciler(&[
        "registry-token",
        "list",
        "--account",
        &alice,
        "--output",
        "json",
    ]);
    let listed: serde_json::Value = serde_json::from_str(&stdout(&listed)).expect("json");
    assert_eq!(listed["tokens"][0]["name"], "laptop");
    assert!(
        !listed.to_string().contains(&secret),
        "the secret is never listed"
    );
    ok(
        &w.reconciler(&[
            "registry-token",
            "revoke",
            "--account",
            &alice,
            "--name",
            "laptop",
        ]),
        "revoke",
    );
    assert!(
        !registry
            .client(&w, "laptop2")
            .login(&alice, &secret)
            .status
            .success(),
        "a revoked token still logs in"
    );

    // Berth itself pins and pulls through its own tokens: alice's
    // container runs the image from her private repository.
    ok(&s.docker(&["rmi", &mine]), "untag locally");
    w.commit(
        &alice,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: web, image: \"{mine}\" }}\n"
        )),
        &w.mail(&alice),
    );
    w.apply(0);
    assert_eq!(
        w.inspect(&format!("{alice}--web"), "{{.State.Running}}")
            .as_deref(),
        Some("true"),
        "{}\n{}",
        w.status(&alice),
        registry.log()
    );
    let image = w
        .inspect(&format!("{alice}--web"), "{{.Config.Image}}")
        .unwrap_or_default();
    assert!(
        image.starts_with(&format!("{host}/{alice}/x@sha256:")),
        "pinned by digest through a token: {image}"
    );
}

/// The runner's CI jobs get a credential for their account's namespace in
/// `DOCKER_AUTH_CONFIG`: it logs in as the account, pulls its private
/// images, and pushes nowhere else.
#[tokio::test(flavor = "multi_thread")]
async fn ci_jobs_get_a_credential_for_their_own_namespace_only() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let gl = berth_tests::gitlab::runner_mock(77, "glrt-ci-cred").await;
    let (mut w, host) = world(&s, 25900);
    w.use_gitlab(&gl).await;
    w.site_overrides.runner_image = Some(s.test_image.clone());
    let alice = w.account("ca", &["students"]);
    let bob = w.account("cb", &["students"]);
    let registry = TokenRegistry::start(&w, &host);
    let server = w.serve();
    let runner = w.start_runner(&server, &alice);
    let config = stdout(&s.docker(&[
        "exec",
        &runner,
        "/bin/busybox",
        "cat",
        "/etc/gitlab-runner/config.toml",
    ]));
    let parsed: toml::Value = toml::from_str(&config).expect("config.toml is TOML");
    let env = parsed["runners"][0]["environment"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let json = env
        .strip_prefix("DOCKER_AUTH_CONFIG=")
        .unwrap_or_else(|| panic!("no DOCKER_AUTH_CONFIG in {config}"));
    let auth: serde_json::Value = serde_json::from_str(json).expect("JSON");
    let pair = base64::engine::general_purpose::STANDARD
        .decode(
            auth["auths"][host.as_str()]["auth"]
                .as_str()
                .unwrap_or_default(),
        )
        .expect("base64");
    let pair = String::from_utf8(pair).expect("utf-8");
    let (user, credential) = pair.split_once(':').expect("user:credential");
    assert_eq!(user, alice);
    assert!(credential.starts_with("berth_ci_"), "{credential}");

    // As a CI job would: log in, push and pull its own, nothing of bob's.
    let job = registry.client(&w, "ci-job");
    ok(&job.login(user, credential), "the CI credential logs in");
    let own = format!("{host}/{alice}/ci:1");
    let theirs = format!("{host}/{bob}/ci:1");
    for image in [&own, &theirs] {
        ok(&s.docker(&["tag", &s.test_image, image]), "tag");
    }
    ok(
        &job.run(&["push", &own]),
        "CI pushes into its account's namespace",
    );
    assert!(
        !job.run(&["push", &theirs]).status.success(),
        "CI pushed into bob's namespace"
    );
    assert!(
        !registry
            .client(&w, "ci-as-bob")
            .login(&bob, credential)
            .status
            .success(),
        "alice's CI credential logs in as bob"
    );
}

#[test]
fn a_personal_token_ends_with_its_directory_entry_and_its_lifetime() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (mut w, _host) = world(&s, 28700);
    let alice = w.student("pe", "first-pw");
    let server = w.serve();
    let create = |name: &str, extra: &[&str]| -> String {
        let mut args = vec![
            "registry-token",
            "create",
            "--account",
            &alice,
            "--name",
            name,
        ];
        args.extend_from_slice(extra);
        let out = w.reconciler(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout(&out)
    };
    let laptop = create("laptop", &[]);
    assert_eq!(token(&server.addr, &alice, &laptop, &[]).0, 200);
    let out = w.reconciler(&["registry-token", "list", "--account", &alice]);
    assert!(stdout(&out).contains("EXPIRES"), "{}", stdout(&out));
    // Past the site's longest lifetime: refused.
    let out = w.reconciler(&[
        "registry-token",
        "create",
        "--account",
        &alice,
        "--name",
        "forever",
        "--expires",
        "3650d",
    ]);
    assert_eq!(out.status.code(), Some(2));

    // A token that lives two seconds stops working after them.
    let short = create("short", &["--expires", "2s"]);
    assert_eq!(token(&server.addr, &alice, &short, &[]).0, 200);
    berth_tests::wait_for(
        std::time::Duration::from_secs(30),
        "the short-lived token to expire",
        || (token(&server.addr, &alice, &short, &[]).0 == 401).then_some(()),
    );

    // Her entry is deleted and a new one takes the name: the old token
    // is not the newcomer's (before, tokens were bound to the name only).
    let dn = format!("uid={alice},ou=people,{}", s.ldap_base);
    let deleted = s
        .ldap_tool("ldapdelete")
        .arg(&dn)
        .output()
        .expect("ldapdelete");
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    // The group still lists the DN (no referential integrity here): take it
    // out and in again so the new entry's memberOf is written.
    assert_eq!(w.account("pe", &[]), alice);
    w.set_group(&alice, "students", false);
    w.set_group(&alice, "students", true);
    w.set_password(&alice, "second-pw");
    berth_tests::wait_for(
        std::time::Duration::from_secs(30),
        "the old entry's token to be refused",
        || (token(&server.addr, &alice, &laptop, &[]).0 == 401).then_some(()),
    );
    assert_eq!(token(&server.addr, &alice, "second-pw", &[]).0, 200);
}

#[test]
fn a_push_by_hand_is_held_to_the_registry_quota() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (mut w, host) = world(&s, 28900);
    w.site_overrides.student_registry = Some("1Ki".into());
    let alice = w.student("qa", "alice-pw");
    let registry = TokenRegistry::start(&w, &host);
    let server = w.serve();
    let cli = registry.client(&w, "quota");
    ok(&cli.login(&alice, "alice-pw"), "alice logs in");
    // Under the quota (nothing pushed yet): the push goes through.
    let first = format!("{host}/{alice}/one:1");
    ok(&s.docker(&["tag", &s.test_image, &first]), "tag");
    ok(&cli.run(&["push", &first]), "the first push");
    // Now her images take more than 1 KiB: push is no longer granted (its
    // usage is re-read every 2 s), pull still is. Before, only Berth's own
    // builds were held to the quota.
    let scope = format!("repository:{alice}/two:pull,push");
    let claims = berth_tests::wait_for(
        std::time::Duration::from_secs(30),
        "push over the quota to be refused",
        || {
            let (code, claims) = token(&server.addr, &alice, "alice-pw", &[&scope]);
            (code == 200 && !claims.to_string().contains("push")).then_some(claims)
        },
    );
    assert_eq!(
        access(&claims),
        vec![grant(&format!("repository:{alice}/two"), &["pull"])]
    );
    drop(registry);
}

#[test]
fn an_owner_deletes_an_unused_image_from_the_console_but_not_one_that_runs() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (mut w, host) = world(&s, 29000);
    let alice = w.account("xa", &["students"]);
    let bob = w.account("xb", &["students"]);
    w.set_password(&alice, "alice-pw");
    w.set_password(&bob, "bob-pw");
    let registry = TokenRegistry::start(&w, &host);
    let server = w.serve();
    let cli = registry.client(&w, "delete");
    ok(&cli.login(&alice, "alice-pw"), "alice logs in");
    let (used, spare) = (
        format!("{host}/{alice}/used:1"),
        format!("{host}/{alice}/spare:1"),
    );
    for image in [&used, &spare] {
        ok(&s.docker(&["tag", &s.test_image, image]), "tag");
        ok(&cli.run(&["push", image]), "alice pushes");
    }
    w.commit(
        &alice,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: web, image: \"{used}\" }}\n"
        )),
        &w.mail(&alice),
    );
    w.apply(0);
    let delete = |user: &str, password: &str, image: &str| -> u16 {
        let auth = berth_tests::session_cookie(&server.addr, user, password);
        let (_, page) =
            berth_tests::http_raw(&server.addr, "GET", "/my/images", &[("Cookie", &auth)], b"")
                .expect("images page");
        let page = String::from_utf8_lossy(&page);
        let at = page.find("name=\"csrf\" value=\"").expect("csrf") + 19;
        let csrf = &page[at..at + page[at..].find('"').expect("end")];
        let body = format!(
            "csrf={csrf}&image={}",
            image.replace(':', "%3A").replace('/', "%2F")
        );
        berth_tests::http_raw(
            &server.addr,
            "POST",
            "/my/images/delete",
            &[
                ("Cookie", &auth),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            body.as_bytes(),
        )
        .expect("delete")
        .0
    };
    // With the registry API: a delete grant in her namespace, but not on
    // a repository her accepted workspace runs.
    let (_, claims) = token(
        &server.addr,
        &alice,
        "alice-pw",
        &[
            &format!("repository:{alice}/used:delete,pull"),
            &format!("repository:{alice}/spare:delete"),
        ],
    );
    assert_eq!(
        access(&claims),
        vec![
            grant(&format!("repository:{alice}/used"), &["pull"]),
            grant(&format!("repository:{alice}/spare"), &["delete"]),
        ]
    );
    // Bob cannot delete alice's image: it is not there for him.
    assert_eq!(delete(&bob, "bob-pw", &spare), 404);
    // The image her accepted workspace runs is refused; the spare goes.
    assert_eq!(delete(&alice, "alice-pw", &used), 409);
    assert_eq!(delete(&alice, "alice-pw", &spare), 303);
    ok(
        &cli.run(&["pull", &used]),
        "the running image is still there",
    );
    assert!(
        !cli.run(&["pull", &spare]).status.success(),
        "the deleted image can still be pulled"
    );
    let audit = stdout(&w.reconciler(&["audit", "--account", &alice]));
    assert!(audit.contains("image-deleted"), "{audit}");
    drop(registry);
}
