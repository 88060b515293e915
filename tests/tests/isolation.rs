//! Isolation between students, tried as an attacker would: each test
//! reproduces one way an account reached another's containers, data,
//! images, runner or quota (issue 10), on real dockerd, slapd, registry and
//! git, with GitLab's API mocked from its documented payloads. Every one of
//! these failed on the code before the fix (see docs/security.md).

use berth_tests::fixture::{
    ADMIN_TOKEN, GitLabUsers, WEBHOOK_SECRET, World, push_event, remove_any, wait_status,
};
use berth_tests::{Services, http_get_with, http_post, stdout, wait_for};
use std::time::Duration;
use wiremock::matchers::{body_partial_json, method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const WAIT: Duration = Duration::from_secs(40);

fn web(image: &str, volume: &str) -> String {
    format!(
        "version: 1\ncontainers:\n  - name: web\n    image: {image}\n    volumes: [{{ name: {volume}, path: /data }}]\n"
    )
}

/// Changes a work tree before a commit.
type Prepare = fn(&std::path::Path);

fn running(w: &World, name: &str) -> Option<String> {
    w.inspect(name, "{{.State.Running}}")
}

fn sh(s: &Services, container: &str, script: &str) -> std::process::Output {
    s.docker(&["exec", container, "/bin/busybox", "sh", "-c", script])
}

/// A GitLab mock that accepts commit statuses.
async fn gitlab() -> MockServer {
    let gl = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(r"/statuses/"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 1})))
        .mount(&gl)
        .await;
    gl
}

/// Hole 1: CI jobs ran unlimited `services:` from any image, and
/// `if-not-present` let a job run an image another account pulled. The
/// runner's config now limits services, allows only the images the account
/// may use, always pulls, and a share added later is written into the
/// running runner's config without recreating it.
#[tokio::test(flavor = "multi_thread")]
async fn ci_jobs_stay_inside_quota_and_image_rules() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let gl = gitlab().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/user/runners"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(serde_json::json!({"id": 901, "token": "glrt-isolation"})),
        )
        .mount(&gl)
        .await;
    let mut w = World::new(&s, 24000);
    w.use_gitlab(&gl).await;
    w.site_overrides.runner_image = Some(s.test_image.clone());
    w.site_overrides.registry = Some(s.registry.clone());
    w.site_overrides.resync = "2s".into();
    let a = w.account("ci", &["students"]);
    let owner = w.account("cio", &["students"]);
    let server = w.serve();
    let r = w.commit(
        &a,
        Some("version: 1\nrunner: { enabled: true, tags: [docker] }\n"),
        &w.mail(&a),
    );
    assert_eq!(server.push(&a, &r, &a, "ci-1", WEBHOOK_SECRET), 202);
    let runner = format!("{a}.runner");
    wait_for(WAIT, "the runner to run", || {
        (running(&w, &runner).as_deref() == Some("true")).then_some(())
    });
    let config = |w: &World| -> toml::Value {
        let out = w.services.docker(&[
            "exec",
            &runner,
            "/bin/busybox",
            "cat",
            "/etc/gitlab-runner/config.toml",
        ]);
        toml::from_str(&stdout(&out)).expect("config.toml is TOML")
    };
    let strings = |v: &toml::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let c = config(&w);
    let d = &c["runners"][0]["docker"];
    assert_eq!(strings(&d["pull_policy"]), ["always"]);
    assert_eq!(strings(&d["allowed_pull_policies"]), ["always"]);
    assert_eq!(d["services_limit"].as_integer(), Some(2));
    // students: 4 CPUs, 4 GiB → 2 jobs × (1 CPU + 2 services × 0.5 CPU).
    assert_eq!(d["cpus"].as_str(), Some("1"));
    assert_eq!(d["memory"].as_str(), Some("1024m"));
    assert_eq!(d["service_cpus"].as_str(), Some("0.5"));
    assert_eq!(d["service_memory"].as_str(), Some("512m"));
    let allowed = strings(&d["allowed_images"]);
    assert!(
        allowed.contains(&format!("{}/{a}/**", s.registry)),
        "{allowed:?}"
    );
    assert_eq!(allowed, strings(&d["allowed_services"]));
    let shared = format!("{}/{owner}/tools", s.registry);
    assert!(
        !allowed.iter().any(|p| p.starts_with(&shared)),
        "{allowed:?}"
    );
    let id = w.inspect(&runner, "{{.Id}}");

    // The owner shares a repository: the runner's config learns it in place.
    let image = format!("{shared}:1");
    assert!(s.docker(&["tag", &s.test_image, &image]).status.success());
    assert!(s.docker(&["push", &image]).status.success());
    let share = format!("version: 1\nimages:\n  share:\n    - image: {image}\n");
    let r = w.commit(&owner, Some(&share), &w.mail(&owner));
    assert_eq!(server.push(&owner, &r, &owner, "ci-2", WEBHOOK_SECRET), 202);
    wait_status(&gl, &r, "success").await;
    wait_for(WAIT, "the share in the runner's allow-list", || {
        strings(&config(&w)["runners"][0]["docker"]["allowed_images"])
            .contains(&format!("{shared}:*"))
            .then_some(())
    });
    assert_eq!(
        w.inspect(&runner, "{{.Id}}"),
        id,
        "rewritten in place, not recreated"
    );
    assert_eq!(running(&w, &runner).as_deref(), Some("true"));
    s.docker(&["rmi", &image]);
}

/// Hole 2: an account deleted from LDAP, taken out of every allowed group,
/// or whose repository vanished kept its containers running.
#[test]
fn removed_students_are_stopped_and_keep_their_volumes() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 24100);
    let gone = w.account("gone", &["students"]);
    let out = w.account("out", &["students"]);
    let arch = w.account("arch", &["students"]);
    for a in [&gone, &out, &arch] {
        w.commit(a, Some(&web(&s.test_image, "data")), &w.mail(a));
    }
    w.apply(0);
    for a in [&gone, &out, &arch] {
        assert_eq!(running(&w, &format!("{a}--web")).as_deref(), Some("true"));
    }
    let deleted = s
        .ldap_tool("ldapdelete")
        .arg(format!("uid={gone},ou=people,{}", s.ldap_base))
        .output()
        .expect("ldapdelete");
    assert!(deleted.status.success());
    w.set_group(&out, "students", false);
    std::fs::remove_dir_all(w.repos_dir().join(&arch)).expect("repository deleted");
    w.set_group(&arch, "disabled", true);
    // The directory cache lives 1 s.
    std::thread::sleep(Duration::from_millis(1100));
    w.apply(0);
    for a in [&gone, &out, &arch] {
        let name = format!("{a}--web");
        assert_eq!(
            running(&w, &name).as_deref(),
            Some("false"),
            "{a} is stopped"
        );
        let volume = s.docker(&["volume", "inspect", &format!("berth-{a}--data")]);
        assert!(volume.status.success(), "{a}'s volume is kept");
    }
    let warnings = w.status(&gone)["warnings"].to_string();
    assert!(
        warnings.contains(&format!("stopped: account `{gone}` does not exist")),
        "{warnings}"
    );
    let warnings = w.status(&out)["warnings"].to_string();
    assert!(
        warnings.contains("is in none of the allowed groups"),
        "{warnings}"
    );
}

/// Hole 2 (fault run): a `workspace.yaml` that is a symlink (to
/// `/etc/passwd`), a directory or missing was read as an empty workspace
/// and the account's containers were removed.
#[test]
fn a_vanished_or_odd_workspace_file_changes_nothing() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 24200);
    let a = w.account("odd", &["students"]);
    let never = w.account("never", &["students"]);
    w.commit(&a, Some(&web(&s.test_image, "data")), &w.mail(&a));
    w.apply(0);
    let name = format!("{a}--web");
    let id = w.inspect(&name, "{{.Id}}");
    assert!(id.is_some());
    let cases: [(&str, Prepare); 3] = [
        ("workspace.yaml is a symlink", |work| {
            let file = work.join("workspace.yaml");
            remove_any(&file);
            std::os::unix::fs::symlink("/etc/passwd", &file).expect("symlink");
        }),
        ("workspace.yaml is a directory", |work| {
            let file = work.join("workspace.yaml");
            remove_any(&file);
            std::fs::create_dir_all(&file).expect("dir");
            std::fs::write(file.join("x"), "version: 1\n").expect("file");
        }),
        ("workspace.yaml is missing", |work| {
            remove_any(&work.join("workspace.yaml"))
        }),
    ];
    for (why, prepare) in cases {
        w.commit_with(&a, &w.mail(&a), prepare);
        w.apply(0);
        assert_eq!(w.inspect(&name, "{{.Id}}"), id, "{why}: container kept");
        assert_eq!(running(&w, &name).as_deref(), Some("true"), "{why}");
        let error = w.status(&a)["last_error"].to_string();
        assert!(error.contains(why), "{why}: {error}");
    }
    // Removing everything takes an explicit empty list.
    w.commit(&a, Some("version: 1\ncontainers: []\n"), &w.mail(&a));
    w.apply(0);
    assert_eq!(w.inspect(&name, "{{.Id}}"), None);
    assert!(
        s.docker(&["volume", "inspect", &format!("berth-{a}--data")])
            .status
            .success(),
        "volumes outlive removal"
    );
    // An account that never had the file is not managed: nothing failed.
    w.commit(&never, None, &w.mail(&never));
    w.apply(0);
    assert_eq!(w.status(&never)["last_error"], serde_json::Value::Null);
    let diff = stdout(&w.reconciler(&["diff", "--account", &never]));
    assert!(diff.contains("not managed"), "{diff}");
}

/// Hole 3: a digest of a shared repository was refused while `latest`
/// lent every digest, and `GET /images` listed every repository and who
/// runs it to anyone.
#[test]
fn sharing_is_per_repository_and_the_catalogue_tells_no_one_who() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 24300);
    w.site_overrides.registry = Some(s.registry.clone());
    w.site_overrides.extra = "admin_token_env: BERTH_ADMIN_TOKEN\n".into();
    let owner = w.account("cato", &["students"]);
    let user = w.account("catu", &["students"]);
    let tools = format!("{}/{owner}/tools:1", s.registry);
    let private = format!("{}/{owner}/private:1", s.registry);
    for image in [&tools, &private] {
        assert!(s.docker(&["tag", &s.test_image, image]).status.success());
        assert!(s.docker(&["push", image]).status.success());
    }
    let digest = stdout(&s.docker(&["inspect", "-f", "{{index .RepoDigests 0}}", &tools]));
    let digest = digest
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_default();
    assert!(digest.starts_with("sha256:"), "{digest}");
    w.commit(
        &owner,
        Some(&format!(
            "version: 1\nimages:\n  share:\n    - {{ image: \"{tools}\", description: compilers }}\n"
        )),
        &w.mail(&owner),
    );
    w.apply(0);
    // Any digest of the shared repository is usable …
    let by_digest = format!("{}/{owner}/tools@{digest}", s.registry);
    w.commit(
        &user,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: t, image: \"{by_digest}\" }}\n"
        )),
        &w.mail(&user),
    );
    w.apply(0);
    assert_eq!(
        running(&w, &format!("{user}--t")).as_deref(),
        Some("true"),
        "{}",
        w.status(&user)
    );
    // … of the unshared one, none.
    let stolen = format!("{}/{owner}/private@{digest}", s.registry);
    w.commit(
        &user,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: t, image: \"{stolen}\" }}\n"
        )),
        &w.mail(&user),
    );
    w.apply(0);
    assert!(
        w.status(&user)["last_error"]
            .to_string()
            .contains("is not shared with you")
    );
    let server = w.serve();
    let anyone = wait_for(WAIT, "the catalogue", || {
        http_get_with(&server.addr, "/images", &[])
            .ok()
            .map(|(_, b)| b)
            .filter(|b| b.contains("compilers"))
    });
    let v: serde_json::Value = serde_json::from_str(&anyone).expect("JSON");
    assert_eq!(
        v["shared"][0]["repository"],
        format!("{}/{owner}/tools", s.registry)
    );
    assert_eq!(v["shared"][0]["accounts_using"], 1);
    assert!(
        !anyone.contains("private"),
        "unshared repositories: {anyone}"
    );
    assert!(!anyone.contains(&user), "who uses it: {anyone}");
    let wrong = http_get_with(&server.addr, "/images", &[("Authorization", "Bearer nope")])
        .map(|(_, b)| b)
        .unwrap_or_default();
    assert!(!wrong.contains("private"), "{wrong}");
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let admin = http_get_with(&server.addr, "/images", &[("Authorization", &bearer)])
        .map(|(_, b)| b)
        .unwrap_or_default();
    assert!(admin.contains(&private), "{admin}");
    for image in [&tools, &private] {
        s.docker(&["rmi", image]);
    }
}

/// Hole 4: the webhook took the first path segment as the account and
/// stored the project id before checking the pusher, so a push to
/// `alice/evil` (or a refused push) chose where alice's runner registers.
#[tokio::test(flavor = "multi_thread")]
async fn pushes_to_other_projects_are_ignored_and_never_record_a_project() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let gl = gitlab().await;
    let mut w = World::new(&s, 24400);
    w.use_gitlab(&gl).await;
    let a = w.account("wh", &["students"]);
    let b = w.account("whb", &["students"]);
    let server = w.serve();
    let head = w.commit(&a, Some("version: 1\n"), &w.mail(&a));
    let mut event: serde_json::Value =
        serde_json::from_str(&push_event(&a, &head, &b)).expect("event");
    event["project"]["path_with_namespace"] = format!("{a}/evil").into();
    event["project_id"] = 666.into();
    event["project"]["id"] = 666.into();
    let headers = [
        ("X-Gitlab-Token", WEBHOOK_SECRET),
        ("X-Gitlab-Event", "Push Hook"),
        ("X-Gitlab-Event-UUID", "evil-1"),
    ];
    let (code, body) =
        http_post(&server.addr, "/hooks/gitlab", &headers, &event.to_string()).expect("post");
    assert_eq!((code, body.trim()), (200, "{\"status\":\"ignored\"}"));
    assert_eq!(
        server.metric("berth_webhook_events_total{outcome=\"not_a_workspace\"}"),
        1.0
    );
    // A refused push to the right project records nothing either.
    assert_eq!(server.push(&a, &head, &b, "evil-2", WEBHOOK_SECRET), 202);
    let failed = wait_status(&gl, &head, "failed").await;
    assert!(
        failed.iter().any(|(_, d)| d.contains("is neither")),
        "{failed:?}"
    );
    let store = berth_reconciler::store::Store::open(&w.state_dir()).expect("store");
    assert_eq!(store.project(&a).expect("read"), None);
    // Only the owner's accepted push names the project.
    assert_eq!(server.push(&a, &head, &a, "ok-1", WEBHOOK_SECRET), 202);
    wait_status(&gl, &head, "success").await;
    assert_eq!(store.project(&a).expect("read"), Some(1000));
}

/// Hole 5: `alice` + volume `x-data` and a later `alice-x` + volume `data`
/// both mounted `berth-alice-x-data`; and Berth mounted a volume it did not
/// create.
#[test]
fn names_of_two_accounts_never_collide_and_foreign_volumes_are_not_mounted() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 24500);
    let short = w.account("vo", &["students"]);
    w.commit(&short, Some(&web(&s.test_image, "x-data")), &w.mail(&short));
    w.apply(0);
    let writer = format!("{short}--web");
    assert!(
        sh(&s, &writer, "echo s3cret > /data/secret")
            .status
            .success()
    );
    let long = w.account("vo-x", &["students"]);
    w.commit(&long, Some(&web(&s.test_image, "data")), &w.mail(&long));
    w.apply(0);
    let reader = format!("{long}--web");
    assert_eq!(running(&w, &reader).as_deref(), Some("true"));
    let read = sh(&s, &reader, "cat /data/secret");
    assert!(
        !read.status.success(),
        "{long} reads {short}'s data: {}",
        stdout(&read)
    );
    // A volume Berth did not create is never mounted, whatever its name.
    let third = w.account("vt", &["students"]);
    let planted = format!("berth-{third}--data");
    assert!(s.docker(&["volume", "create", &planted]).status.success());
    w.commit(&third, Some(&web(&s.test_image, "data")), &w.mail(&third));
    let out = w.apply(2);
    assert!(
        out.contains(&format!(
            "volume `{planted}` exists and belongs to nobody Berth knows"
        )),
        "{out}"
    );
    assert_eq!(w.inspect(&format!("{third}--web"), "{{.Id}}"), None);
    s.docker(&["volume", "rm", &planted]);
}

/// Hole 6: the pusher's username alone authenticated; a local GitLab
/// account named like a student deployed as that student.
#[tokio::test(flavor = "multi_thread")]
async fn a_gitlab_user_without_the_students_ldap_identity_never_deploys() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let gl = gitlab().await;
    let mut w = World::new(&s, 24600);
    w.site_overrides.gitlab = Some(gl.uri());
    let a = w.account("idn", &["students"]);
    Mock::given(method("GET"))
        .and(path_regex(r"^/api/v4/users/\d+$"))
        .respond_with(GitLabUsers {
            ldap_base: s.ldap_base.clone(),
            local_only: vec![a.clone()],
        })
        .mount(&gl)
        .await;
    let server = w.serve();
    let r = w.commit(&a, Some(&web(&s.test_image, "data")), &w.mail(&a));
    assert_eq!(server.push(&a, &r, &a, "idn-1", WEBHOOK_SECRET), 202);
    let seen = wait_status(&gl, &r, "failed").await;
    assert!(
        seen.iter()
            .any(|(_, d)| d.contains("has no GitLab login through LDAP provider `ldapmain`")),
        "{seen:?}"
    );
    assert_eq!(w.inspect(&format!("{a}--web"), "{{.Id}}"), None);
}

/// Hole 7: `tcp://` endpoints could only be plain HTTP, root on the host
/// for anyone reaching the port.
#[test]
fn remote_docker_endpoints_need_tls_with_client_certificates() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (Ok(tls), Ok(dir)) = (
        std::env::var("BERTH_DOCKER_TLS"),
        std::env::var("BERTH_DOCKER_TLS_DIR"),
    ) else {
        assert!(
            std::env::var("BERTH_E2E_REQUIRED").is_err(),
            "the test dockerd has no TLS listener"
        );
        return;
    };
    // Without a client certificate the daemon does not answer.
    let anonymous = std::process::Command::new("curl")
        .args(["-sk", "--max-time", "5"])
        .arg(format!("{}/_ping", tls.replace("tcp://", "https://")))
        .output()
        .expect("curl");
    assert!(!anonymous.status.success(), "{}", stdout(&anonymous));
    let mut w = World::new(&s, 24700);
    let a = w.account("tls", &["students"]);
    w.site_overrides.docker_endpoint = Some(format!(
        "{{ name: remote, endpoint: \"{tls}\", tls: {{ ca: {dir}/ca.pem, cert: {dir}/cert.pem, key: {dir}/key.pem }}, host_ports: {{ first: 24700, last: 24799 }} }}"
    ));
    w.commit(&a, Some(&web(&s.test_image, "data")), &w.mail(&a));
    w.apply(0);
    assert_eq!(running(&w, &format!("{a}--web")).as_deref(), Some("true"));
    // Plain TCP is refused unless the site says so.
    w.site_overrides.docker_endpoint = Some(format!(
        "{{ name: remote, endpoint: \"{tls}\", host_ports: {{ first: 24700, last: 24799 }} }}"
    ));
    let out = w.apply(2);
    assert!(out.contains("is plain TCP"), "{out}");
}

/// Hole 9: backend errors (internal addresses, other services' answers)
/// went into commit statuses that students read.
#[tokio::test(flavor = "multi_thread")]
async fn students_see_an_audit_id_not_the_backends_words() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let gl = gitlab().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/user/runners"))
        .and(body_partial_json(serde_json::json!({"project_id": 1000})))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(serde_json::json!({"message": "db 10.9.8.7:5432 refused"})),
        )
        .mount(&gl)
        .await;
    let mut w = World::new(&s, 24800);
    w.use_gitlab(&gl).await;
    w.site_overrides.runner_image = Some(s.test_image.clone());
    let a = w.account("au", &["students"]);
    let server = w.serve();
    let r = w.commit(
        &a,
        Some("version: 1\nrunner: { enabled: true, tags: [x] }\n"),
        &w.mail(&a),
    );
    assert_eq!(server.push(&a, &r, &a, "au-1", WEBHOOK_SECRET), 202);
    let seen = wait_status(&gl, &r, "failed").await;
    let (_, text) = seen.iter().find(|(s, _)| s == "failed").expect("failed");
    assert!(!text.contains("10.9.8.7"), "{text}");
    assert!(text.contains("audit #"), "{text}");
    let audit = stdout(&w.reconciler(&["audit", "--account", &a]));
    assert!(audit.contains("10.9.8.7"), "the admin sees it: {audit}");
    // The read model keeps both: the detail for admins, the id for students.
    let status = w.status(&a);
    let student = status["last_error_student"].as_str().unwrap_or_default();
    assert!(
        student.contains("audit #") && !student.contains("10.9.8.7"),
        "{status}"
    );
    assert!(
        status["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("10.9.8.7"),
        "{status}"
    );
}

/// Hole 9: GPUs were requested by count, so dockerd could hand two
/// accounts the same card.
#[test]
fn each_gpu_container_gets_its_own_cards() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 24900);
    w.site_overrides.docker_endpoint = Some("gpus: 2".into());
    let accounts: Vec<String> = ["ga", "gb", "gc"]
        .iter()
        .map(|n| w.account(n, &["students"]))
        .collect();
    let ws = format!(
        "version: 1\ncontainers:\n  - {{ name: train, image: {}, resources: {{ gpus: 1 }} }}\n",
        s.test_image
    );
    for a in &accounts {
        w.commit(a, Some(&ws), &w.mail(a));
    }
    // No GPU driver here: the containers are created with their device
    // requests, starting them fails, and that is what is checked.
    let out = w.apply(2);
    let ids: Vec<Option<String>> = accounts
        .iter()
        .map(|a| {
            w.inspect(
                &format!("{a}--train"),
                "{{range .HostConfig.DeviceRequests}}{{json .DeviceIDs}}{{end}}",
            )
        })
        .collect();
    let mut given: Vec<String> = ids.iter().flatten().cloned().collect();
    given.sort();
    assert_eq!(given, ["[\"0\"]", "[\"1\"]"], "{ids:?}\n{out}");
    assert!(out.contains("has 2 GPU(s) and 0 free"), "{out}");
}

/// Hole 9: groups were compared by their first RDN, so a group called
/// `students` anywhere in the tree counted as the site's.
#[test]
fn a_look_alike_group_elsewhere_in_the_tree_grants_nothing() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 25000);
    let a = w.account("club", &[]);
    let ou = format!("ou=clubs{a},{}", s.ldap_base);
    let ldif = format!(
        "dn: {ou}\nobjectClass: organizationalUnit\nou: clubs{a}\n\ndn: cn=students,{ou}\nobjectClass: groupOfNames\ncn: students\nmember: uid={a},ou=people,{}\n",
        s.ldap_base
    );
    let mut add = s
        .ldap_tool("ldapadd")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ldapadd");
    std::io::Write::write_all(&mut add.stdin.take().expect("stdin"), ldif.as_bytes())
        .expect("ldif");
    assert!(add.wait().expect("ldapadd").success());
    w.commit(&a, Some(&web(&s.test_image, "data")), &w.mail(&a));
    w.apply(0);
    let _ = s.ldap_tool("ldapdelete").args(["-r", &ou]).output();
    assert_eq!(w.inspect(&format!("{a}--web"), "{{.Id}}"), None);
    let error = w.status(&a)["last_error"].to_string();
    assert!(
        error.contains("is in none of the allowed groups"),
        "{error}"
    );
}
