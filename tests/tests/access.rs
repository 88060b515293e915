//! A student lets a TA in (`access` in workspace.yaml), in a real headless
//! Chromium against `serve` with real dockerd, slapd and git: the TA sees
//! the container under "Shared with me", opens its terminal, is refused
//! what was not granted and what is another's, is audited in both logs;
//! at the date the open terminal closes and the page is a 404; removing
//! the entry ends the rest. A grant to an account outside the grantable
//! groups refuses the push.

use berth_tests::browser::Browser;
use berth_tests::fixture::World;
use berth_tests::{Services, console_get, console_post, csrf_of, login_cookie, stdout, wait_for};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn workspace(image: &str, access: &str) -> String {
    format!(
        "version: 1\ncontainers:\n  - name: box\n    image: \"{image}\"\n    command: [\"/bin/busybox\", \"sleep\", \"3600\"]\n{access}"
    )
}

/// An RFC 3339 instant `secs` from now.
fn in_secs(secs: i64) -> String {
    jiff::Timestamp::now()
        .as_second()
        .checked_add(secs)
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ta_opens_a_granted_terminal_until_the_date_and_no_further() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 31200);
    let student = w.student("xa", "xa-pw");
    let other = w.student("xo", "xo-pw");
    let ta = w.account("xt", &["staff"]);
    w.set_password(&ta, "xt-pw");
    // groupOfNames needs a member: a second TA stays when the first leaves.
    let ta2 = w.account("xu", &["staff"]);
    let tas = w.group("tas", &[&ta, &ta2]);
    w.site_overrides.extra = format!(
        "console: {{ shell: [\"/bin/busybox\", \"sh\"] }}\naccess: {{ grantable_groups: [{tas}], max: 30d }}\n"
    );
    let image = s.test_image.clone();
    // The grant to a student (not in a grantable group) is refused first.
    w.commit(
        &student,
        Some(&workspace(
            &image,
            &format!("    access:\n      - {{ account: {other}, allow: [terminal], until: 2026-12-31 }}\n"),
        )),
        &w.mail(&student),
    );
    w.apply(0);
    let refused = w.status(&student)["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        refused.contains(&format!(
            "account `{other}` is in no group this site lets you grant ({tas})"
        )),
        "{refused}"
    );
    // The terminal until a minute from now; logs for a day, to the group
    // and to the TA by name (which still needs the group).
    let (until, day) = (in_secs(60), in_secs(86_400));
    w.commit(
        &student,
        Some(&workspace(
            &image,
            &format!(
                "    access:\n      - {{ account: {ta}, allow: [terminal], until: \"{until}\" }}\n      - {{ group: {tas}, allow: [logs], until: \"{day}\" }}\n      - {{ account: {ta}, allow: [logs], until: \"{day}\" }}\n"
            ),
        )),
        &w.mail(&student),
    );
    w.commit(
        &other,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: secret, image: \"{image}\", command: [\"/bin/busybox\", \"sleep\", \"3600\"] }}\n"
        )),
        &w.mail(&other),
    );
    w.apply(0);
    let target = format!("{student}--box");
    w.wait_running(&target);
    let server = w.serve_with(&["--watch", &w.repos_dir().display().to_string()]);

    // What was not granted, and what is another's: 404, as for any
    // container not one's own.
    let auth = format!("berth_session={}", login_cookie(&server.addr, &ta, "xt-pw"));
    wait_for(WAIT, "the grant in the TA's console", || {
        console_get(&server.addr, &auth, "/")
            .1
            .contains(&format!("/my/containers/{target}/terminal"))
            .then_some(())
    });
    let (home, page) = console_get(&server.addr, &auth, "/");
    assert_eq!(home, 200);
    let csrf = csrf_of(&page);
    for path in [
        format!("/my/containers/{target}/files"),
        format!("/my/containers/{other}--secret/terminal"),
        format!("/my/containers/{other}--secret/logs"),
    ] {
        assert_eq!(console_get(&server.addr, &auth, &path).0, 404, "{path}");
    }
    let (code, _) = console_post(
        &server.addr,
        &auth,
        &format!("/my/containers/{target}/stop"),
        &format!("csrf={csrf}"),
    );
    assert_eq!(code, 404, "a grant never stops the owner's container");
    assert_eq!(
        w.inspect(&target, "{{.State.Running}}").as_deref(),
        Some("true")
    );

    // The TA, in the browser: "Shared with me", then the terminal.
    let Some(b) = Browser::start(&format!("http://{}", server.addr)).await else {
        return;
    };
    b.log_in(&ta, "xt-pw", WAIT).await;
    let home = b.wait_text("Shared with me", WAIT).await;
    assert!(home.contains(&target), "{home}");
    b.goto(&format!("/my/containers/{target}/terminal")).await;
    b.wait_text("connected", WAIT).await;
    b.fill(".xterm-helper-textarea", "echo gr\"\"anted\n").await;
    b.wait_terminal_line("granted", "no `granted` in the terminal", WAIT)
        .await;
    b.goto(&format!("/my/containers/{target}/logs")).await;
    b.wait_text(&target, WAIT).await;
    // The Notifications page, in the browser too: a box unticked stays so.
    b.goto("/my/notifications").await;
    b.wait_text("Tell me about", WAIT).await;
    b.click("#tell-gpu-lent").await;
    b.click("#notifications button").await;
    b.wait_text("Tell me about", WAIT).await;
    assert_eq!(
        b.eval("return document.querySelector('#tell-gpu-lent').checked")
            .await,
        serde_json::json!(false)
    );
    assert_eq!(
        b.eval("return document.querySelector('#tell-account-stopped').disabled")
            .await,
        serde_json::json!(true),
        "a stop cannot be muted"
    );
    b.goto(&format!("/my/containers/{target}/terminal")).await;
    b.wait_text("connected", WAIT).await;

    // Both logs say who did what.
    let owner_log = stdout(&w.reconciler(&["audit", "--account", &student]));
    assert!(
        owner_log.contains(&format!("opened in `{target}` (by `{ta}`, granted access)")),
        "{owner_log}"
    );
    let ta_log = stdout(&w.reconciler(&["audit", "--account", &ta]));
    assert!(
        ta_log.contains(&format!("opened in `{target}`")),
        "{ta_log}"
    );

    // At the date: the open terminal closes, the page is a 404; logs,
    // granted for longer, still open.
    b.wait_terminal_line(
        "[berth: closed: the access you were granted has ended]",
        "the terminal stayed open after the date",
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(
        console_get(
            &server.addr,
            &auth,
            &format!("/my/containers/{target}/terminal")
        )
        .0,
        404
    );
    assert_eq!(
        console_get(
            &server.addr,
            &auth,
            &format!("/my/containers/{target}/logs")
        )
        .0,
        200
    );
    b.close().await;

    // A TA who leaves the grantable group loses what was granted; back in
    // it, has it again.
    let logs = format!("/my/containers/{target}/logs");
    w.set_group(&ta, &tas, false);
    wait_for(WAIT, "the logs closed to a TA out of the group", || {
        (console_get(&server.addr, &auth, &logs).0 == 404).then_some(())
    });
    // ... and no longer sees the container listed as shared with them.
    let (_, home) = console_get(&server.addr, &auth, "/");
    assert!(
        !home.contains(&target),
        "still listed out of the group: {home}"
    );
    w.set_group(&ta, &tas, true);
    wait_for(WAIT, "the logs open again", || {
        (console_get(&server.addr, &auth, &logs).0 == 200).then_some(())
    });
    let (_, home) = console_get(&server.addr, &auth, "/");
    assert!(home.contains(&target), "listed again: {home}");

    // The entry removed: its access ends with the accepted push.
    w.commit(&student, Some(&workspace(&image, "")), &w.mail(&student));
    wait_for(WAIT, "the logs closed to the TA", || {
        (console_get(
            &server.addr,
            &auth,
            &format!("/my/containers/{target}/logs"),
        )
        .0 == 404)
            .then_some(())
    });
    drop(server);
}
