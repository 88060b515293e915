//! Isolation between students, tried as an attacker would: each test
//! reproduces one way an account reached another's containers, data,
//! images or quota (issue 10), on real dockerd, slapd, registry and git
//! (the GitLab-facing ones are in `isolation_serve.rs`). Every one of these
//! failed on the code before the fix (see docs/security.md).

use berth_tests::fixture::{ADMIN_TOKEN, World, remove_any};
use berth_tests::{Services, http_get_with, stdout, wait_for};
use std::time::Duration;

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
    // Two cards for three accounts: two run, each with its own card (a
    // stand-in NVIDIA hook lets them start), and the third waits in line
    // instead of being handed a card already lent.
    let out = w.apply(0);
    let ids: Vec<Option<String>> = accounts
        .iter()
        .filter(|a| {
            w.inspect(&format!("{a}--train"), "{{.State.Running}}")
                .as_deref()
                == Some("true")
        })
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
    let waiting: Vec<&String> = accounts
        .iter()
        .filter(|a| w.status(a)["gpus"][0]["state"] == "waiting")
        .collect();
    assert_eq!(waiting.len(), 1, "{out}");
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
