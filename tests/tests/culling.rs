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

/// The warning before the stop: an idle container is marked "will stop at
/// T" in status, the console and a mail, and stops at T, not before; a
/// container its student keeps (`keep_until`) is neither warned nor
/// stopped.
#[test]
fn an_idle_container_is_warned_and_stopped_at_the_time_told_and_a_kept_one_is_left_alone() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let Some(smtp) = berth_tests::smtp::Smtp::start() else {
        return;
    };
    let mut w = World::new(&s, 26750);
    let warned = w.student("cw", "cw-pw");
    let kept = w.account("ck", &["students"]);
    w.site_overrides.student_quota_extra = ", idle_stop_after: 20s".into();
    w.site_overrides.policy_extra =
        "  idle: { sample_every: 1s, cpu_below: 0.05, network_below: 1Ki, warn_before: 12s }\n"
            .into();
    w.site_overrides.extra = smtp.site_notify("1s", "");
    w.commit(
        &warned,
        Some(&one(&s.test_image, "sleep 3600", "")),
        &w.mail(&warned),
    );
    // Two days from now, within the default keep_max of 7 days.
    let keep_until = jiff::Timestamp::now()
        .as_second()
        .checked_add(2 * 86_400)
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|t| t.to_string())
        .unwrap_or_default();
    w.commit(
        &kept,
        Some(&one(
            &s.test_image,
            "sleep 3600",
            &format!("    keep_until: \"{keep_until}\"\n"),
        )),
        &w.mail(&kept),
    );
    w.apply(0);
    let server = w.serve();
    let running = |a: &str| w.inspect(&format!("{a}--box"), "{{.State.Running}}");
    let field = |a: &str, key: &str| {
        w.status(a)["containers"][0][key]
            .as_str()
            .map(str::to_string)
    };

    let stop_at = wait_for(Duration::from_secs(30), "the warning in status", || {
        field(&warned, "stops_at")
    });
    let cookie = berth_tests::login_cookie(&server.addr, &warned, "cw-pw");
    let (_, page) = berth_tests::console_get(&server.addr, &format!("berth_session={cookie}"), "/");
    assert!(
        page.contains(&format!("will stop at {stop_at}")),
        "the console shows the warning:\n{page}"
    );
    let mail = wait_for(Duration::from_secs(30), "the warning's mail", || {
        smtp.messages()
            .into_iter()
            .find(|m| m.body.contains("will be stopped at"))
    });
    assert!(mail.to.contains(&w.mail(&warned)), "{mail:?}");
    assert!(mail.body.contains(&stop_at), "{}", mail.body);

    let culled = wait_for(Duration::from_secs(30), "the stop", || {
        field(&warned, "culled")
    });
    assert_eq!(running(&warned).as_deref(), Some("false"));
    // `culled` reads `<time> (<why>)`; both times are RFC 3339 UTC, so
    // they compare as text.
    let culled_at = culled.split(' ').next().unwrap_or_default().to_string();
    assert!(
        culled_at >= stop_at,
        "stopped at {culled_at}, before the {stop_at} it was told"
    );
    assert_eq!(
        field(&warned, "stops_at"),
        None,
        "the warning went with the stop"
    );

    assert_eq!(
        running(&kept).as_deref(),
        Some("true"),
        "kept until {keep_until}"
    );
    assert_eq!(
        field(&kept, "stops_at"),
        None,
        "a kept container is not warned"
    );
    let audit = stdout(&w.reconciler(&["audit", "--account", &kept]));
    assert!(!audit.contains("cull"), "{audit}");
    drop(server);
}
