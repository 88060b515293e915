//! Recreating a changed container with the least downtime, on the real
//! dockerd: the replacement is created (and its image pulled) while the old
//! one still runs, then swapped in keeping its host port; a replacement
//! left behind by a crash is resolved by the next reconcile.

use berth_tests::fixture::World;
use berth_tests::{Services, stdout};

fn web(image: &str, greeting: &str) -> String {
    format!(
        "version: 1\ncontainers:\n  - {{ name: web, image: \"{image}\", ports: [8080], env: {{ GREETING: {greeting} }} }}\n"
    )
}

fn unix_now(s: &Services) -> String {
    // dockerd's clock, as `docker events --since` reads it.
    stdout(&s.docker(&["info", "-f", "{{.SystemTime}}"]))
}

#[test]
fn the_replacement_exists_before_the_old_container_goes_and_keeps_its_port() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 26500);
    let a = w.account("ra", &["students"]);
    let name = format!("{a}--web");
    w.commit(&a, Some(&web(&s.test_image, "one")), &w.mail(&a));
    w.apply(0);
    let port = |w: &World| {
        w.inspect(
            &name,
            "{{(index (index .NetworkSettings.Ports \"8080/tcp\") 0).HostPort}}",
        )
        .unwrap_or_default()
    };
    let old_id = w.inspect(&name, "{{.Id}}").unwrap_or_default();
    let old_port = port(&w);
    let since = unix_now(&s);

    w.commit(&a, Some(&web(&s.test_image, "two")), &w.mail(&a));
    w.apply(0);
    let until = unix_now(&s);
    let new_id = w.inspect(&name, "{{.Id}}").unwrap_or_default();
    assert_ne!(new_id, old_id, "recreated");
    assert_eq!(
        w.inspect(&name, "{{.State.Running}}").as_deref(),
        Some("true")
    );
    assert_eq!(port(&w), old_port, "the host port is kept");
    let env = w.inspect(&name, "{{json .Config.Env}}").unwrap_or_default();
    assert!(env.contains("GREETING=two"), "{env}");
    // The new process may not have bound its port the moment it started.
    let status = berth_tests::wait_for(
        std::time::Duration::from_secs(30),
        "the replacement to answer on the kept port",
        || berth_tests::http_get(&format!("127.0.0.1:{old_port}"), "/").ok(),
    )
    .0;
    assert!(status.contains("200"), "{status}");

    // The order dockerd saw: the replacement was created before the old
    // container was destroyed.
    let events = stdout(&s.docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=container",
        "--format",
        "{{.Action}} {{.Actor.ID}}",
    ]));
    let at = |what: &str| events.lines().position(|l| l == what);
    let created =
        at(&format!("create {new_id}")).unwrap_or_else(|| panic!("no create in\n{events}"));
    let destroyed =
        at(&format!("destroy {old_id}")).unwrap_or_else(|| panic!("no destroy in\n{events}"));
    let started = at(&format!("start {new_id}")).unwrap_or_else(|| panic!("no start in\n{events}"));
    assert!(created < destroyed && destroyed < started, "{events}");
    assert!(
        stdout(&s.docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("name={name}.berth-next"),
            "-q"
        ]))
        .is_empty(),
        "no replacement is left behind"
    );
}

#[test]
fn a_replacement_left_by_a_crash_is_resolved_by_the_next_reconcile() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 26600);
    let a = w.account("rb", &["students"]);
    let name = format!("{a}--web");
    w.commit(&a, Some(&web(&s.test_image, "one")), &w.mail(&a));
    w.apply(0);
    let id = w.inspect(&name, "{{.Id}}").unwrap_or_default();
    // What a crash between "create the replacement" and "remove the old"
    // leaves: a second container of the account under the temporary name.
    let temp = format!("{name}.berth-next");
    let out = s.docker(&[
        "create",
        "--name",
        &temp,
        "--label",
        &format!("berth.owner={a}"),
        "--label",
        "berth.name=web",
        &s.test_image,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    w.apply(0);
    assert_eq!(w.inspect(&temp, "{{.Id}}"), None, "the leftover is removed");
    assert_eq!(
        w.inspect(&name, "{{.Id}}").as_deref(),
        Some(id.as_str()),
        "the real one is untouched"
    );
    assert_eq!(
        w.inspect(&name, "{{.State.Running}}").as_deref(),
        Some("true")
    );
}
