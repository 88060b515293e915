//! The engine in-process: push → gather → decide → assemble → execute →
//! store rows, over a fake Docker endpoint and a directory of fixed
//! entries (`crate::fixtures::InProcess`), with real git repositories. No
//! service runs, so each test takes milliseconds; the end-to-end tests
//! in `tests/` run the same paths against dockerd and slapd.

use super::{Decision, RejectReason};
use crate::fixtures::InProcess;

const WEB: &str =
    "version: 1\ncontainers:\n  - { name: web, image: docker.io/library/busybox:1.36 }\n";

fn two(second: &str) -> String {
    format!("{WEB}  - {{ name: {second}, image: docker.io/library/busybox:1.36 }}\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_accepted_revision_runs_is_recorded_and_then_changes_nothing() {
    let w = InProcess::new("accept");
    w.student("alice");
    let sha = w.commit("alice", WEB);

    let (plan, report) = w.reconcile("alice").await.expect("reconciled");
    assert_eq!(
        plan.decision,
        Decision::Accept {
            revision: sha.clone(),
            commits: 1
        }
    );
    assert_eq!(plan.endpoint.as_deref(), Some("local"));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        w.docker.log(),
        vec!["create_network berth-alice", "create alice--web"]
    );
    let held = w.docker.account("alice");
    assert!(held.network);
    assert_eq!(held.containers.len(), 1);
    assert!(held.containers[0].running);
    assert_eq!(held.containers[0].revision, sha);
    // The store: the accepted revision, and each action audited.
    let accepted = w
        .ctx
        .store
        .accepted("alice")
        .expect("store")
        .expect("accepted");
    assert_eq!(accepted.revision, sha);
    let events: Vec<String> = w
        .ctx
        .store
        .audit_log(Some("alice"), 10)
        .expect("audit")
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert!(events.contains(&"accepted".to_string()), "{events:?}");
    assert_eq!(
        events.iter().filter(|e| *e == "action").count(),
        2,
        "{events:?}"
    );

    // Nothing moved: unchanged, no action.
    let (plan, report) = w.reconcile("alice").await.expect("reconciled");
    assert_eq!(plan.decision, Decision::Unchanged);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert!(report.applied.is_empty());
    assert_eq!(w.docker.log().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_revision_changes_nothing_and_is_audited_once() {
    let w = InProcess::new("refuse");
    w.student("bob");
    let good = w.commit("bob", WEB);
    w.reconcile("bob").await.expect("reconciled");
    let bad = w.commit("bob", "version: 1\ncontainers:\n  - { name: web, image: docker.io/library/busybox:1.36, privileged: true }\n");
    for _ in 0..2 {
        let (plan, report) = w.reconcile("bob").await.expect("reconciled");
        match &plan.decision {
            Decision::Reject { revision, reason } => {
                assert_eq!(revision, &bad);
                assert!(matches!(reason, RejectReason::Invalid(_)), "{reason:?}");
            }
            other => panic!("not refused: {other:?}"),
        }
        assert!(plan.actions.is_empty());
        assert!(report.applied.is_empty());
    }
    assert_eq!(
        w.ctx
            .store
            .accepted("bob")
            .expect("store")
            .map(|a| a.revision),
        Some(good)
    );
    assert_eq!(w.docker.account("bob").containers.len(), 1);
    let rejected = w
        .ctx
        .store
        .audit_log(Some("bob"), 20)
        .expect("audit")
        .into_iter()
        .filter(|e| e.event == "rejected")
        .count();
    assert_eq!(
        rejected, 1,
        "a refusal is audited once, not at every resync"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_action_is_audited_and_the_others_still_run() {
    let w = InProcess::new("fail");
    w.student("carol");
    w.commit("carol", &two("db"));
    w.docker.refuse("carol--web");
    let (_, report) = w.reconcile("carol").await.expect("reconciled");
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(
        report.errors[0].contains("carol--web"),
        "{:?}",
        report.errors
    );
    assert!(
        report.applied.iter().any(|a| a == "create carol--db"),
        "{:?}",
        report.applied
    );
    let id = report.error_audit.expect("the failure's audit entry");
    let entry = w
        .ctx
        .store
        .audit_log(Some("carol"), 20)
        .expect("audit")
        .into_iter()
        .find(|e| e.id == id)
        .expect("entry");
    assert_eq!(entry.event, "action-failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_directory_fails_the_reconcile_as_a_shared_dependency() {
    let w = InProcess::new("ldap-down");
    w.student("dave");
    w.commit("dave", WEB);
    w.ldap.set_down(true);
    let err = w
        .reconcile("dave")
        .await
        .expect_err("the directory is down");
    assert!(err.is_shared_dependency(), "{err}");
    assert!(
        w.docker.log().is_empty(),
        "nothing may change without the directory"
    );
    assert_eq!(w.ctx.store.accepted("dave").expect("store"), None);
    w.ldap.set_down(false);
    w.reconcile("dave").await.expect("back");
    assert_eq!(w.docker.account("dave").containers.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_account_is_stopped_and_keeps_its_containers() {
    let w = InProcess::new("disabled");
    let mut erin = w.student("erin");
    w.commit("erin", WEB);
    w.reconcile("erin").await.expect("reconciled");
    erin.disabled = true;
    w.ldap.put(erin, "pw");
    let (plan, _) = w.reconcile("erin").await.expect("reconciled");
    assert!(plan.disabled);
    assert!(plan.stopped.is_some());
    let held = w.docker.account("erin");
    assert_eq!(held.containers.len(), 1, "stopped, not removed");
    assert!(!held.containers[0].running);
}
