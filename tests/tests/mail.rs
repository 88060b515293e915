//! Mail to students through a real SMTP server (Debian's aiosmtpd): a
//! flood of refused pushes is one digest, sent to the student's directory
//! address with each reason, and audited.

use berth_tests::fixture::World;
use berth_tests::smtp::Smtp;
use berth_tests::{Services, stdout, wait_for};
use std::time::Duration;

#[test]
fn refused_pushes_are_mailed_to_the_student_as_one_digest() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let Some(smtp) = Smtp::start() else {
        return;
    };
    let mut w = World::new(&s, 30500);
    w.site_overrides.extra = smtp.site_notify("1h", "");
    let a = w.account("ma", &["students"]);
    // Three refused pushes while serve is down: they wait in the outbox.
    let mut revisions = Vec::new();
    for i in 0..3 {
        let rev = w.commit(
            &a,
            Some(&format!(
                "version: 1\ncontainers:\n  - {{ name: web{i}, image: \"{}\", privileged: true }}\n",
                s.test_image
            )),
            &w.mail(&a),
        );
        w.apply(0);
        revisions.push(rev);
    }
    let _server = w.serve();
    let mails = wait_for(Duration::from_secs(30), "the digest", || {
        let m = smtp.messages();
        (!m.is_empty()).then_some(m)
    });
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert!(mail.to.contains(&w.mail(&a)), "{mail:?}");
    assert_eq!(
        mail.subject, "[Berth] Pushes refused and 2 more",
        "{mail:?}"
    );
    for rev in &revisions {
        assert!(
            mail.body
                .contains(&format!("revision {} rejected", &rev[..12])),
            "{rev} missing:\n{}",
            mail.body
        );
    }
    let audit = stdout(&w.reconciler(&["audit", "--account", &a]));
    assert!(
        audit.contains("[Berth] Pushes refused and 2 more"),
        "{audit}"
    );
}

/// A student mutes refused pushes on the console's Notifications page (the
/// change audited); a refused push is then not mailed, while the account
/// being stopped by the directory is, muted or not. The admins' chat (an
/// incoming-webhook server standing in for Mattermost) hears of the stop.
#[tokio::test(flavor = "multi_thread")]
async fn a_muted_category_is_not_mailed_stops_always_are_and_admins_chat_hears_of_them() {
    use wiremock::matchers::{method, path};
    let Some(s) = Services::from_env() else {
        return;
    };
    let Some(smtp) = Smtp::start() else {
        return;
    };
    let chat = wiremock::MockServer::start().await;
    wiremock::Mock::given(method("POST"))
        .and(path("/hooks/berth"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&chat)
        .await;
    let mut w = World::new(&s, 30550);
    // The directory's change reaches serve at its next resync.
    w.site_overrides.resync = "2s".into();
    w.site_overrides.extra =
        smtp.site_notify("1s", "  chat: { url_env: BERTH_TEST_CHAT, every: 1s }\n");
    let a = w.student("mm", "mm-pw");
    w.commit(
        &a,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: web, image: \"{}\", command: [\"/bin/busybox\", \"sleep\", \"3600\"] }}\n",
            s.test_image
        )),
        &w.mail(&a),
    );
    w.apply(0);
    w.env.push((
        "BERTH_TEST_CHAT".into(),
        format!("{}/hooks/berth", chat.uri()),
    ));
    let server = w.serve_with(&["--watch", &w.repos_dir().display().to_string()]);
    let cookie = berth_tests::login_cookie(&server.addr, &a, "mm-pw");
    let auth = format!("berth_session={cookie}");
    let (code, page) = berth_tests::console_get(&server.addr, &auth, "/my/notifications");
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains(&w.mail(&a)),
        "the address mail goes to:\n{page}"
    );
    assert!(
        page.contains("id=\"tell-account-stopped\" checked disabled"),
        "a stop cannot be muted:\n{page}"
    );
    // Everything told but refused pushes.
    let mut form = format!("csrf={}", berth_tests::csrf_of(&page));
    for c in [
        "build-failed",
        "cull-warning",
        "culled",
        "gpu-ending",
        "gpu-lent",
        "host-drained",
    ] {
        form.push_str(&format!("&tell={c}"));
    }
    // The form's bound (16 KiB): at it, saved; one byte over, refused.
    let padded = |len: usize| {
        let pad = "&pad=";
        format!("{form}{pad}{}", "a".repeat(len - form.len() - pad.len()))
    };
    let (code, page) = berth_tests::console_post(
        &server.addr,
        &auth,
        "/my/notifications",
        &padded(16 * 1024 + 1),
    );
    assert_eq!(code, 413, "{page}");
    let audit = stdout(&w.reconciler(&["audit", "--account", &a]));
    assert!(
        !audit.contains("muted push-refused"),
        "saved though refused: {audit}"
    );
    let (code, _) =
        berth_tests::console_post(&server.addr, &auth, "/my/notifications", &padded(16 * 1024));
    assert_eq!(code, 303);
    let (_, page) = berth_tests::console_get(&server.addr, &auth, "/my/notifications");
    assert!(
        page.contains("name=\"tell\" value=\"push-refused\">"),
        "saved unticked:\n{page}"
    );
    let audit = stdout(&w.reconciler(&["audit", "--account", &a]));
    assert!(audit.contains("muted push-refused"), "{audit}");

    // A refused push (muted), then the directory stops the account.
    let refused = w.commit(
        &a,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: web, image: \"{}\", privileged: true }}\n",
            s.test_image
        )),
        &w.mail(&a),
    );
    wait_for(Duration::from_secs(60), "the refusal", || {
        w.status(&a)["last_error"]
            .as_str()
            .filter(|e| e.contains(&refused[..12]))
            .map(|_| ())
    });
    w.set_group(&a, "students", false);
    let mail = wait_for(Duration::from_secs(60), "the stop's mail", || {
        smtp.messages()
            .into_iter()
            .find(|m| m.body.contains("Your account was stopped"))
    });
    assert!(mail.to.contains(&w.mail(&a)), "{mail:?}");
    assert!(
        smtp.messages()
            .iter()
            .all(|m| !m.body.contains("Pushes refused")),
        "a muted refusal was mailed: {:?}",
        smtp.messages()
    );
    let posts = wait_for(Duration::from_secs(30), "the chat's post", || {
        let got: Vec<String> = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(chat.received_requests())
        })
        .unwrap_or_default()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).to_string())
        .collect();
        (!got.is_empty()).then_some(got)
    });
    let post: serde_json::Value = serde_json::from_str(&posts[0]).expect("JSON");
    let text = post["text"].as_str().unwrap_or_default();
    assert!(
        text.contains(&format!("- {a} · Your account was stopped")),
        "{text}"
    );
    assert!(
        !text.contains("Pushes refused"),
        "not a category the admins chose: {text}"
    );
    drop(server);
}
