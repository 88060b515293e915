//! Several real Docker hosts: the test dockerd and a second one in its own
//! network namespace (`scripts/lib/services.sh`). Placement across them,
//! a host that dies and comes back, and draining a host with its volumes'
//! data. These tests stop and start the second daemon, so they run one at
//! a time.

use berth_tests::fixture::World;
use berth_tests::{Services, docker_at, read_volume, stdout, volume_exists, wait_for};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

static SECOND_HOST: Mutex<()> = Mutex::new(());

fn running_on(host: &str, name: &str) -> bool {
    stdout(&docker_at(
        host,
        &["inspect", "-f", "{{.State.Running}}", name],
    )) == "true"
}

fn services_script(function: &str) {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/lib/services.sh");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("source '{}' && {function}", script.display()))
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{function}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn web(image: &str, greeting: &str) -> String {
    format!(
        "version: 1\ncontainers:\n  - {{ name: web, image: \"{image}\", ports: [8080], env: {{ GREETING: {greeting} }} }}\n"
    )
}

fn endpoint_of(w: &World, account: &str) -> String {
    w.status(account)["endpoint"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn accounts_spread_over_two_hosts_and_a_dead_host_stops_no_one_else() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let Some((h2, h2_addr)) = s.docker2.clone() else {
        return;
    };
    let _one_at_a_time = SECOND_HOST.lock().unwrap_or_else(|p| p.into_inner());
    let mut w = World::new(&s, 26400);
    w.site_overrides.second_host = true;
    let accounts: Vec<String> = ["fa", "fb", "fc", "fd"]
        .iter()
        .map(|a| w.account(a, &["students"]))
        .collect();
    for a in &accounts {
        w.commit(a, Some(&web(&s.test_image, "one")), &w.mail(a));
    }
    w.apply(0);

    // Two on each host, each account whole on one host.
    let on_h2: Vec<&String> = accounts
        .iter()
        .filter(|a| endpoint_of(&w, a) == "h2")
        .collect();
    let on_local: Vec<&String> = accounts
        .iter()
        .filter(|a| endpoint_of(&w, a) == "local")
        .collect();
    assert_eq!((on_h2.len(), on_local.len()), (2, 2), "least loaded first");
    for a in &on_h2 {
        let name = format!("{a}--web");
        assert!(running_on(&h2, &name), "{name} runs on the second host");
        assert!(!running_on(&s.docker_host, &name));
        let port = stdout(&docker_at(
            &h2,
            &[
                "inspect",
                "-f",
                "{{(index (index .NetworkSettings.Ports \"8080/tcp\") 0).HostPort}}",
                &name,
            ],
        ));
        let (status, body) =
            berth_tests::http_get(&format!("{h2_addr}:{port}"), "/").expect("answers");
        assert!(
            status.contains("200") && body.contains("hello from berth"),
            "{status} {body}"
        );
    }
    for a in &on_local {
        assert!(running_on(&s.docker_host, &format!("{a}--web")));
    }

    // The second host dies: the others converge, its accounts are reported
    // and stay where their volumes are.
    services_script("services_stop_dockerd2");
    for a in &accounts {
        w.commit(a, Some(&web(&s.test_image, "two")), &w.mail(a));
    }
    let out = w.reconciler(&["apply"]);
    assert_ne!(out.status.code(), Some(0), "a dead host is an error");
    for a in &on_local {
        let env = w
            .inspect(&format!("{a}--web"), "{{json .Config.Env}}")
            .unwrap_or_default();
        assert!(
            env.contains("GREETING=two"),
            "{a} converged while h2 was down: {env}"
        );
    }
    for a in &on_h2 {
        let status = w.status(a);
        assert_eq!(status["endpoint"], "h2", "{a} was moved: {status}");
        assert!(
            status["last_error"].to_string().contains("h2"),
            "{a}'s status names the dead host: {status}"
        );
    }

    // It comes back: its accounts converge.
    services_script("services_start_dockerd2");
    w.apply(0);
    for a in &on_h2 {
        let name = format!("{a}--web");
        wait_for(
            Duration::from_secs(30),
            "the container on h2 to run",
            || running_on(&h2, &name).then_some(()),
        );
        let env = stdout(&docker_at(
            &h2,
            &["inspect", "-f", "{{json .Config.Env}}", &name],
        ));
        assert!(env.contains("GREETING=two"), "{env}");
    }
}

#[test]
fn drain_moves_an_account_with_its_data_and_resumes_after_a_crash() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let Some((h2, h2_addr)) = s.docker2.clone() else {
        return;
    };
    let _one_at_a_time = SECOND_HOST.lock().unwrap_or_else(|p| p.into_inner());
    let Some(smtp) = berth_tests::smtp::Smtp::start() else {
        return;
    };
    let mut w = World::new(&s, 26800);
    w.site_overrides.second_host = true;
    w.site_overrides.extra = smtp.site_notify("1s", "");
    let a = w.account("dm", &["students"]);
    let name = format!("{a}--web");
    let volume = format!("berth-{a}--data");
    w.commit(
        &a,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: web, image: \"{}\", ports: [8080], volumes: [{{ name: data, path: /data }}] }}\n",
            s.test_image
        )),
        &w.mail(&a),
    );
    w.apply(0);
    assert_eq!(endpoint_of(&w, &a), "local");
    let exec = |host: &str, script: &str| {
        stdout(&docker_at(
            host,
            &["exec", &name, "/bin/busybox", "sh", "-c", script],
        ))
    };
    exec(
        &s.docker_host,
        "echo secret-data > /data/file && mkdir -p /data/sub && /bin/busybox head -c 200000 /dev/urandom > /data/sub/blob",
    );
    let sum = exec(&s.docker_host, "/bin/busybox sha256sum /data/sub/blob");
    assert!(sum.len() > 64, "{sum}");

    // A drain that dies after copying: nothing is removed, nothing moves.
    let crashed = w
        .reconciler_command(&["drain", "local"])
        .env("BERTH_DRAIN_STOP_AFTER_COPY", "1")
        .output()
        .expect("drain runs");
    assert_eq!(
        crashed.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&crashed.stderr)
    );
    assert_eq!(endpoint_of(&w, &a), "local");
    assert!(volume_exists(&s.docker_host, &volume));

    // Run again: it resumes and finishes, one JSON line per account moved.
    let out = w.reconciler(&["drain", "local", "--output", "json"]);
    assert!(
        out.status.success(),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|m| m["account"] == a.as_str() && m["to"] == "h2" && m["volumes"] == 1),
        "{lines:?}"
    );
    assert_eq!(endpoint_of(&w, &a), "h2");
    wait_for(
        Duration::from_secs(30),
        "the container on the new host",
        || running_on(&h2, &name).then_some(()),
    );
    assert_eq!(exec(&h2, "cat /data/file"), "secret-data");
    assert_eq!(
        exec(&h2, "/bin/busybox sha256sum /data/sub/blob"),
        sum,
        "the data is intact"
    );
    assert!(
        !volume_exists(&s.docker_host, &volume),
        "the old volume is removed once the copy is verified"
    );
    assert!(
        stdout(&docker_at(
            &s.docker_host,
            &["ps", "-aq", "--filter", &format!("label=berth.owner={a}")]
        ))
        .is_empty()
    );
    // The student is told: ports changed; the new one answers.
    let status = w.status(&a);
    assert!(
        status
            .to_string()
            .contains("moved from host `local` to `h2`"),
        "{status}"
    );
    // ... and mailed (serve sends what the drain queued).
    let server = w.serve();
    let mail = wait_for(Duration::from_secs(30), "the drain's mail", || {
        smtp.messages()
            .into_iter()
            .find(|m| m.to.contains(&w.mail(&a)))
    });
    assert_eq!(mail.subject, "[Berth] Moved to another host", "{mail:?}");
    assert!(
        mail.body.contains("your containers' host ports changed"),
        "{}",
        mail.body
    );
    drop(server);
    let port = stdout(&docker_at(
        &h2,
        &[
            "inspect",
            "-f",
            "{{(index (index .NetworkSettings.Ports \"8080/tcp\") 0).HostPort}}",
            &name,
        ],
    ));
    let (code, _) = berth_tests::http_get(&format!("{h2_addr}:{port}"), "/").expect("answers");
    assert!(code.contains("200"));
}

/// `web` with the volume `data`, running or stopped.
fn with_data(image: &str, state: &str) -> String {
    format!(
        "version: 1\ncontainers:\n  - {{ name: web, image: \"{image}\", state: {state}, ports: [8080], volumes: [{{ name: data, path: /data }}] }}\n"
    )
}

/// What `path` holds in `volume` on `host`, read by a throwaway container.
fn file_in(host: &str, image: &str, volume: &str, path: &str) -> Option<String> {
    let out = read_volume(host, image, volume, &format!("cat /d/{path}"));
    out.status.success().then(|| stdout(&out))
}

/// `account`'s `web` runs on the local host with `secret-data` in its
/// volume; returns the volume's name.
fn placed_locally_with_data(w: &World, s: &Services, account: &str) -> String {
    w.commit(
        account,
        Some(&with_data(&s.test_image, "running")),
        &w.mail(account),
    );
    w.apply(0);
    assert_eq!(endpoint_of(w, account), "local");
    let name = format!("{account}--web");
    let wrote = docker_at(
        &s.docker_host,
        &[
            "exec",
            &name,
            "/bin/busybox",
            "sh",
            "-c",
            "echo secret-data > /data/file",
        ],
    );
    assert!(wrote.status.success(), "{wrote:?}");
    format!("berth-{account}--data")
}

#[test]
fn a_drain_moves_a_volume_no_container_mounts_any_more() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let Some((h2, _)) = s.docker2.clone() else {
        return;
    };
    let _one_at_a_time = SECOND_HOST.lock().unwrap_or_else(|p| p.into_inner());
    let mut w = World::new(&s, 31300);
    w.site_overrides.second_host = true;
    let a = w.account("dv", &["students"]);
    let volume = placed_locally_with_data(&w, &s, &a);
    // The container goes from the file; its volume stays (Berth keeps data).
    w.commit(&a, Some("version: 1\ncontainers: []\n"), &w.mail(&a));
    w.apply(0);
    assert!(w.inspect(&format!("{a}--web"), "{{.Id}}").is_none());
    assert!(
        volume_exists(&s.docker_host, &volume),
        "the volume was kept"
    );

    let out = w.reconciler(&["drain", "local"]);
    assert!(
        out.status.success(),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    // Before the fix, the copy was skipped and the volume removed: lost.
    assert_eq!(
        file_in(&h2, &s.test_image, &volume, "file").as_deref(),
        Some("secret-data"),
        "the volume moved with its data"
    );
    assert!(
        !volume_exists(&s.docker_host, &volume),
        "the old one goes once the copy is verified"
    );
}

#[test]
fn an_archived_workspace_drained_elsewhere_comes_back_on_its_new_host() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let Some((h2, _)) = s.docker2.clone() else {
        return;
    };
    let _one_at_a_time = SECOND_HOST.lock().unwrap_or_else(|p| p.into_inner());
    let mut w = World::new(&s, 31400);
    w.site_overrides.second_host = true;
    w.site_overrides.extra = format!(
        "dormancy: {{ dormant_after: 1d, archive_after: 2d, archive_dir: \"{}\" }}\n",
        w.dir.join("archive").display()
    );
    let a = w.account("dd", &["students"]);
    let volume = placed_locally_with_data(&w, &s, &a);
    w.commit(&a, Some(&with_data(&s.test_image, "stopped")), &w.mail(&a));
    w.apply(0);
    let archived = w.reconciler(&["archive", "--account", &a]);
    assert!(archived.status.success(), "{archived:?}");
    assert!(!volume_exists(&s.docker_host, &volume));

    let drained = w.reconciler(&["drain", "local"]);
    assert!(drained.status.success(), "{drained:?}");
    assert_eq!(endpoint_of(&w, &a), "h2");

    // The next push brings the volume back where the account now runs.
    w.commit(&a, Some(&with_data(&s.test_image, "running")), &w.mail(&a));
    w.apply(0);
    let name = format!("{a}--web");
    wait_for(Duration::from_secs(30), "the container on h2", || {
        running_on(&h2, &name).then_some(())
    });
    assert_eq!(
        file_in(&h2, &s.test_image, &volume, "file").as_deref(),
        Some("secret-data"),
        "the archive came back on the account's host"
    );
    assert!(
        !volume_exists(&s.docker_host, &volume),
        "nothing is restored on the drained host"
    );
}
