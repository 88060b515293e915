//! Smoke test of the harness: each real service the suite relies on is up
//! and behaves (the test image serves HTTP through a published port, LDAP
//! knows alice with her groups and not mallory, the registry answers).

use berth_tests::{Services, http_get, stdout, wait_for};
use std::time::Duration;

#[test]
fn test_image_runs_and_answers_http_on_a_published_port() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let name = "berth-smoke-http";
    s.docker(&["rm", "-f", name]);
    let run = s.docker(&[
        "run",
        "-d",
        "--name",
        name,
        "-p",
        "127.0.0.1::8080",
        &s.test_image,
    ]);
    assert!(
        run.status.success(),
        "docker run: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let addr = stdout(&s.docker(&["port", name, "8080/tcp"]));
    let addr = addr.lines().next().unwrap_or_default().to_string();
    assert!(addr.starts_with("127.0.0.1:"), "published at {addr:?}");
    let (status, body) = wait_for(Duration::from_secs(30), "httpd in the test image", || {
        http_get(&addr, "/").ok()
    });
    s.docker(&["rm", "-f", name]);
    assert!(status.contains("200"), "{status}");
    assert_eq!(body.trim(), "hello from berth");
}

#[test]
fn ldap_finds_alice_with_groups_and_not_mallory() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let alice = s.ldapsearch("(uid=alice)", &["mail", "memberOf"]);
    assert!(alice.contains("mail: alice@berth.test"), "{alice}");
    assert!(
        alice.contains("memberOf: cn=students,ou=groups,dc=berth,dc=test"),
        "{alice}"
    );
    let dave = s.ldapsearch("(uid=dave)", &["memberOf"]);
    assert!(
        dave.contains("cn=disabled,ou=groups"),
        "dave must be disabled: {dave}"
    );
    assert_eq!(s.ldapsearch("(uid=mallory)", &["uid"]).trim(), "");
}

#[test]
fn registry_answers_the_v2_api() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (status, _) = http_get(&s.registry, "/v2/").expect("registry reachable");
    assert!(status.contains("200"), "{status}");
}
