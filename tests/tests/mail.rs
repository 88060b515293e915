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
    w.site_overrides.extra = format!(
        "notify:\n  smtp: {{ host: 127.0.0.1, port: {}, security: none, from: \"Berth <berth@berth.test>\" }}\n  every: 1h\n",
        smtp.port
    );
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
