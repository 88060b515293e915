//! Idle culling on the real dockerd, with times scaled down to seconds: an
//! idle container is stopped (not removed) and stays stopped through
//! `apply` until a new revision; busy and exempt ones keep running.

use berth_tests::fixture::World;
use berth_tests::{Services, stdout, wait_for};
use std::time::Duration;

fn one(image: &str, command: &str, extra: &str) -> String {
    format!(
        "version: 1\ncontainers:\n  - name: box\n    image: \"{image}\"\n    command: [\"/bin/busybox\", \"sh\", \"-c\", \"{command}\"]\n    resources: {{ cpus: 0.2, memory: 32Mi }}\n{extra}"
    )
}

#[test]
fn idle_containers_are_stopped_and_stay_stopped_until_a_new_revision() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 26700);
    let idle = w.account("ci", &["students"]);
    let busy = w.account("cb", &["students"]);
    let exempt = w.account("ce", &["students"]);
    w.site_overrides.student_quota_extra = ", idle_stop_after: 3s".into();
    w.site_overrides.policy_extra = format!(
        "  idle: {{ sample_every: 1s, cpu_below: 0.05, network_below: 1Ki, exempt: [{exempt}] }}\n"
    );
    w.commit(
        &idle,
        Some(&one(&s.test_image, "sleep 3600", "")),
        &w.mail(&idle),
    );
    w.commit(
        &exempt,
        Some(&one(&s.test_image, "sleep 3600", "")),
        &w.mail(&exempt),
    );
    w.commit(
        &busy,
        Some(&one(&s.test_image, "while :; do :; done", "")),
        &w.mail(&busy),
    );
    w.apply(0);
    let server = w.serve();
    let running = |a: &str| w.inspect(&format!("{a}--box"), "{{.State.Running}}");

    wait_for(
        Duration::from_secs(30),
        "the idle container to be culled",
        || (running(&idle).as_deref() == Some("false")).then_some(()),
    );
    assert!(
        w.inspect(&format!("{idle}--box"), "{{.Id}}").is_some(),
        "stopped, not removed"
    );
    assert_eq!(
        running(&busy).as_deref(),
        Some("true"),
        "a busy container is not idle"
    );
    assert_eq!(
        running(&exempt).as_deref(),
        Some("true"),
        "exempt accounts are never culled"
    );
    let status = w.status(&idle);
    assert!(
        status.to_string().contains("idle for"),
        "status says why: {status}"
    );
    let audit = stdout(&w.reconciler(&["audit", "--account", &idle]));
    assert!(audit.contains("culled"), "{audit}");
    drop(server);

    // `state: running` in git does not fight the culler...
    w.apply(0);
    assert_eq!(
        running(&idle).as_deref(),
        Some("false"),
        "apply restarted a culled container"
    );
    // ... until a new revision.
    w.commit(
        &idle,
        Some(&one(&s.test_image, "sleep 3601", "")),
        &w.mail(&idle),
    );
    w.apply(0);
    assert_eq!(running(&idle).as_deref(), Some("true"));
    assert!(!w.status(&idle).to_string().contains("idle for"));
}
