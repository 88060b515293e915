//! The Docker reconciler end to end, on the real dockerd, slapd and git
//! repositories: convergence, recreation with stable ports, removal that
//! keeps volumes, self-heal, isolation from objects Berth does not own,
//! rejected revisions, outages, a dockerd restart and a killed apply.
//!
//! These tests share one dockerd and one of them restarts it, so they run
//! one at a time (the lock below); other test binaries never run
//! concurrently with this one (cargo runs test binaries in sequence).

use berth_tests::fixture::World;
use berth_tests::{Services, http_get, stdout, wait_for};
use std::sync::Mutex;
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn web(greeting: &str, image: &str) -> String {
    format!(
        "version: 1
containers:
  - name: web
    image: {image}
    env: {{ GREETING: {greeting} }}
    ports: [8080]
    resources: {{ cpus: 0.2, memory: 32Mi }}
    volumes: [{{ name: data, path: /data }}]
"
    )
}

fn host_port(w: &World, account: &str, container: &str) -> String {
    let status = w.status(account);
    let c = status["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container))
        .unwrap_or_else(|| panic!("{container} not in status: {status}"));
    let port = c["ports"][0]
        .as_str()
        .expect("a published port")
        .to_string();
    port.split("->").next().expect("host part").to_string()
}

fn answers(addr: &str) -> String {
    let (status, body) = wait_for(Duration::from_secs(30), "HTTP answer", || {
        http_get(addr, "/").ok()
    });
    assert!(status.contains("200"), "{status}");
    body
}

#[test]
fn lifecycle_converges_recreates_removes_and_self_heals() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let _lock = serial();
    let mut w = World::new(&s, 21000);
    let a = w.account("a", &["students"]);
    let mail = w.mail(&a);
    let web_name = format!("{a}--web");

    // create
    w.commit(&a, Some(&web("hello", &s.test_image)), &mail);
    let diff = w.reconciler(&["diff"]);
    assert_eq!(diff.status.code(), Some(1), "diff shows pending changes");
    assert!(
        stdout(&diff).contains(&format!("+ create {web_name}")),
        "{}",
        stdout(&diff)
    );
    w.apply(0);
    assert_eq!(
        w.inspect(&web_name, "{{.State.Running}}").as_deref(),
        Some("true")
    );
    let addr = host_port(&w, &a, "web");
    assert!(addr.starts_with("127.0.0.1:210"), "{addr}");
    assert_eq!(answers(&addr).trim(), "hello from berth");
    assert_eq!(
        w.reconciler(&["diff"]).status.code(),
        Some(0),
        "converged: no changes"
    );
    let labels = w.inspect(&web_name, "{{index .Config.Labels \"berth.owner\"}} {{.HostConfig.Privileged}} {{.HostConfig.SecurityOpt}}");
    assert_eq!(
        labels.as_deref(),
        Some(format!("{a} false [no-new-privileges:true]").as_str())
    );

    // change env → recreated, same host port
    let old_id = w.inspect(&web_name, "{{.Id}}");
    w.commit(&a, Some(&web("hi", &s.test_image)), &mail);
    let diff = stdout(&w.reconciler(&["diff"]));
    assert!(
        diff.contains(&format!("~ recreate {web_name}"))
            && diff.contains("env.GREETING: \"hello\" → \"hi\""),
        "{diff}"
    );
    w.apply(0);
    assert_ne!(w.inspect(&web_name, "{{.Id}}"), old_id, "recreated");
    assert!(
        w.inspect(&web_name, "{{.Config.Env}}")
            .is_some_and(|e| e.contains("GREETING=hi"))
    );
    assert_eq!(
        host_port(&w, &a, "web"),
        addr,
        "host port is stable across recreation"
    );
    answers(&addr);

    // removed from the file → gone, volume kept
    w.commit(&a, Some("version: 1\n"), &mail);
    w.apply(0);
    assert_eq!(w.inspect(&web_name, "{{.Id}}"), None, "container removed");
    let vol = format!("berth-{a}--data");
    assert!(
        s.docker(&["volume", "inspect", &vol]).status.success(),
        "volume survives removal"
    );

    // declared again; stopped by hand → started; removed by hand → recreated
    w.commit(&a, Some(&web("back", &s.test_image)), &mail);
    w.apply(0);
    assert!(s.docker(&["stop", "-t", "1", &web_name]).status.success());
    let out = w.apply(0);
    assert!(out.contains(&format!("start {web_name}")), "{out}");
    assert_eq!(
        w.inspect(&web_name, "{{.State.Running}}").as_deref(),
        Some("true")
    );
    assert!(s.docker(&["rm", "-f", &web_name]).status.success());
    let out = w.apply(0);
    assert!(out.contains(&format!("create {web_name}")), "{out}");
    assert_eq!(
        w.inspect(&web_name, "{{.State.Running}}").as_deref(),
        Some("true")
    );
    assert_eq!(
        host_port(&w, &a, "web"),
        addr,
        "host port is stable across self-heal"
    );
}

#[test]
fn objects_berth_does_not_own_are_never_touched() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let _lock = serial();
    let mut w = World::new(&s, 21100);
    let a = w.account("a", &["students"]);
    let b = w.account("b", &["students"]);
    // An unlabelled container with a name in a's prefix, and b's container.
    let stray = format!("{a}--stray");
    assert!(
        s.docker(&[
            "run",
            "-d",
            "--name",
            &stray,
            "--label",
            "owner=someone",
            &s.test_image
        ])
        .status
        .success()
    );
    w.commit(&b, Some(&web("b", &s.test_image)), &w.mail(&b));
    w.apply(0);
    let b_id = w.inspect(&format!("{b}--web"), "{{.Id}}");
    w.commit(&a, Some(&web("a", &s.test_image)), &w.mail(&a));
    w.apply(0);
    w.commit(&a, Some("version: 1\n"), &w.mail(&a));
    w.apply(0);
    assert_eq!(
        w.inspect(&stray, "{{.State.Running}}").as_deref(),
        Some("true"),
        "unlabelled container untouched"
    );
    assert_eq!(
        w.inspect(&format!("{b}--web"), "{{.Id}}"),
        b_id,
        "other account's container untouched"
    );
    // A name Berth wants but did not create is reported, not taken over.
    let clash = format!("{a}--web");
    assert!(
        s.docker(&["run", "-d", "--name", &clash, &s.test_image])
            .status
            .success()
    );
    w.commit(&a, Some(&web("a", &s.test_image)), &w.mail(&a));
    let out = w.apply(2);
    assert!(out.contains("exists that Berth did not create"), "{out}");
    assert_eq!(
        w.inspect(&clash, "{{index .Config.Labels \"berth.owner\"}}")
            .as_deref(),
        Some("")
    );
    s.docker(&["rm", "-f", &stray, &clash]);
}

#[test]
fn rejected_revisions_change_nothing_and_are_reported() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let _lock = serial();
    let mut w = World::new(&s, 21200);
    let a = w.account("a", &["students"]);
    let good = w.commit(&a, Some(&web("ok", &s.test_image)), &w.mail(&a));
    w.apply(0);
    let running_id = w.inspect(&format!("{a}--web"), "{{.Id}}");
    let assert_untouched = |w: &World, why: &str| {
        assert_eq!(
            w.inspect(&format!("{a}--web"), "{{.Id}}"),
            running_id,
            "{why}: previous container still there"
        );
        assert_eq!(
            w.inspect(&format!("{a}--web"), "{{.State.Running}}")
                .as_deref(),
            Some("true"),
            "{why}: still running"
        );
        assert_eq!(
            w.status(&a)["revision"],
            good.as_str(),
            "{why}: accepted revision unchanged"
        );
    };

    // committer email mismatch
    let bad = w.commit(&a, Some(&web("evil", &s.test_image)), "mallory@evil.test");
    w.apply(0);
    assert_untouched(&w, "committer mismatch");
    let err = w.status(&a)["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        err.contains("committer email `mallory@evil.test` is not the account's directory mail"),
        "{err}"
    );
    let store = berth_reconciler::store::Store::open(&w.state_dir()).expect("store");
    let log = store.audit_log(Some(&a), 50).expect("audit");
    assert!(
        log.iter()
            .any(|e| e.event == "rejected" && e.revision.as_deref() == Some(bad.as_str())),
        "{log:?}"
    );

    // over quota (students may have 4 containers)
    let many: String = (0..5)
        .map(|i| format!("  - {{ name: c{i}, image: {} }}\n", s.test_image))
        .collect();
    w.commit(
        &a,
        Some(&format!("version: 1\ncontainers:\n{many}")),
        &w.mail(&a),
    );
    w.apply(0);
    assert_untouched(&w, "over quota");
    assert!(
        w.status(&a)["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("quota exceeded: 5 containers declared")
    );

    // invalid file: line:col in the reason
    w.commit(
        &a,
        Some("version: 1\ncontainers:\n  - name: web\n    privileged: true\n"),
        &w.mail(&a),
    );
    w.apply(0);
    assert_untouched(&w, "invalid file");
    assert!(
        w.status(&a)["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("workspace.yaml:4:5: `privileged` is not allowed")
    );

    // disabled account: new revision rejected, containers stopped, not removed
    w.set_group(&a, "disabled", true);
    w.commit(&a, Some(&web("later", &s.test_image)), &w.mail(&a));
    w.apply(0);
    assert_eq!(
        w.inspect(&format!("{a}--web"), "{{.Id}}"),
        running_id,
        "disabled: container kept"
    );
    assert_eq!(
        w.inspect(&format!("{a}--web"), "{{.State.Running}}")
            .as_deref(),
        Some("false"),
        "disabled: stopped"
    );
    assert!(
        w.status(&a)["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("is disabled")
    );
    w.set_group(&a, "disabled", false);
}

#[test]
fn unknown_account_gets_nothing() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let _lock = serial();
    let w = World::new(&s, 21300);
    let ghost = "ghost-nobody";
    w.commit(ghost, Some(&web("boo", &s.test_image)), "ghost@berth.test");
    w.apply(0);
    assert!(w.containers_of(ghost).is_empty());
    let err = w.status(ghost)["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        err.contains("account `ghost-nobody` does not exist in the directory"),
        "{err}"
    );
}

#[test]
fn ldap_outage_is_exit_2_and_changes_nothing() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let _lock = serial();
    let mut w = World::new(&s, 21400);
    let a = w.account("a", &["students"]);
    w.commit(&a, Some(&web("one", &s.test_image)), &w.mail(&a));
    w.apply(0);
    let id = w.inspect(&format!("{a}--web"), "{{.Id}}");
    w.commit(&a, Some("version: 1\n"), &w.mail(&a));
    w.site_overrides.ldap_url = Some("ldap://127.0.0.1:1".into());
    let out = w.apply(2);
    assert!(out.contains("unreachable"), "{out}");
    assert_eq!(
        w.inspect(&format!("{a}--web"), "{{.Id}}"),
        id,
        "nothing removed while LDAP is down"
    );
    assert_eq!(w.reconciler(&["diff"]).status.code(), Some(2));
}

#[test]
fn converges_after_dockerd_restart() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let _lock = serial();
    let mut w = World::new(&s, 21500);
    let a = w.account("a", &["students"]);
    w.commit(&a, Some(&web("restart", &s.test_image)), &w.mail(&a));
    w.apply(0);
    s.restart_dockerd();
    w.apply(0);
    assert_eq!(
        w.inspect(&format!("{a}--web"), "{{.State.Running}}")
            .as_deref(),
        Some("true")
    );
    assert_eq!(w.reconciler(&["diff"]).status.code(), Some(0));
    answers(&host_port(&w, &a, "web"));
}

#[test]
fn killed_apply_recovers_without_duplicates_or_leaked_ports() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let _lock = serial();
    let mut w = World::new(&s, 21600);
    let accounts: Vec<String> = (0..3)
        .map(|i| w.account(&format!("k{i}"), &["staff"]))
        .collect();
    let many: String = (0..8)
        .map(|i| format!("  - {{ name: c{i}, image: {}, ports: [8080], resources: {{ cpus: 0.1, memory: 16Mi }} }}\n", s.test_image))
        .collect();
    for a in &accounts {
        w.commit(
            a,
            Some(&format!("version: 1\ncontainers:\n{many}")),
            &w.mail(a),
        );
    }
    let mut child = w
        .reconciler_command(&["apply", "--concurrency", "1"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("apply starts");
    wait_for(Duration::from_secs(60), "some containers to exist", || {
        (accounts
            .iter()
            .map(|a| w.containers_of(a).len())
            .sum::<usize>()
            >= 3)
            .then_some(())
    });
    child.kill().expect("kill apply");
    let _ = child.wait();
    w.apply(0);
    let store = berth_reconciler::store::Store::open(&w.state_dir()).expect("store");
    let ports = store.ports("local").expect("ports");
    assert_eq!(ports.len(), 24, "exactly one allocation per declared port");
    let mut published = Vec::new();
    for a in &accounts {
        let names = w.containers_of(a);
        assert_eq!(names.len(), 8, "{a}: {names:?}");
        for n in names {
            assert_eq!(
                w.inspect(&n, "{{.State.Running}}").as_deref(),
                Some("true"),
                "{n}"
            );
            published.push(
                w.inspect(
                    &n,
                    "{{(index (index .HostConfig.PortBindings \"8080/tcp\") 0).HostPort}}",
                )
                .expect("binding"),
            );
        }
    }
    published.sort();
    published.dedup();
    assert_eq!(published.len(), 24, "no two containers share a host port");
    let mut allocated: Vec<String> = ports.values().map(u16::to_string).collect();
    allocated.sort();
    assert_eq!(allocated, published, "store and dockerd agree");
    assert_eq!(w.reconciler(&["diff"]).status.code(), Some(0));
}
