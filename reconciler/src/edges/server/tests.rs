//! `serve`'s error policy (`work`) in-process, over the engine's fakes
//! (`crate::fixtures::InProcess`): what a failing reconcile tells GitLab,
//! how it waits, and that a dependency every account shares being back
//! sends the waiting accounts' pushes round again at once.

use super::*;
use crate::edges::queue::Work;
use crate::fixtures::InProcess;
use futures::FutureExt;
use work::handle;

fn shared(w: &InProcess) -> (Arc<Shared>, mpsc::Receiver<StatusUpdate>) {
    let metrics = Arc::new(Metrics::default());
    let (tx, rx) = mpsc::channel(64);
    let shared = Arc::new(Shared {
        ctx: w.ctx.clone(),
        queue: Queue::with_settle(metrics.clone(), Duration::ZERO),
        metrics,
        statuses: Some(tx),
        retries: retry::Retries::default(),
        catalogue: Default::default(),
        admin_token: None,
        refresh: tokio::sync::Notify::new(),
        views: Default::default(),
        updates: tokio::sync::broadcast::channel(16).0,
        store_fault: std::sync::RwLock::new(None),
        tokens: None,
        logins: Arc::new(crate::edges::login::Logins::new(&w.ctx.site)),
    });
    (shared, rx)
}

fn push(account: &str, sha: &str) -> SyncRequest {
    SyncRequest {
        account: account.into(),
        repository: "workspace".into(),
        project_id: Some(7),
        path: None,
        revision: Some(sha.into()),
        pusher: Some(account.into()),
        pusher_id: None,
        delivery: None,
        preview: None,
    }
}

/// Takes the next work from the queue, which must be there already.
fn queued(shared: &Shared) -> Work {
    shared
        .queue
        .next()
        .now_or_never()
        .flatten()
        .expect("work waiting in the queue")
}

async fn run(shared: &Arc<Shared>, work: Work) {
    let account = work.account.clone();
    handle(shared, work).await;
    shared.queue.done(&account);
}

fn statuses(rx: &mut mpsc::Receiver<StatusUpdate>, sha: &str) -> Vec<(CommitState, String)> {
    let mut out = Vec::new();
    while let Ok(u) = rx.try_recv() {
        if u.sha == sha {
            out.push((u.state, u.description));
        }
    }
    out
}

const WEB: &str =
    "version: 1\ncontainers:\n  - { name: web, image: docker.io/library/busybox:1.36 }\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_push_failing_on_the_directory_is_retried_at_once_when_another_succeeds() {
    let w = InProcess::new("serve-retry");
    w.student("alice");
    w.student("bob");
    let a = w.commit("alice", WEB);
    let b = w.commit("bob", WEB);
    let (shared, mut rx) = shared(&w);

    w.ldap.set_down(true);
    shared.queue.submit(push("alice", &a));
    run(&shared, queued(&shared)).await;
    let told = statuses(&mut rx, &a);
    assert!(
        told.iter().any(|(s, d)| *s == CommitState::Running
            && d.starts_with("temporarily failing, retrying; an admin can read audit #")),
        "{told:?}"
    );
    assert!(
        w.docker.log().is_empty(),
        "nothing changed without the directory"
    );
    assert!(
        shared.retries.due("alice").is_some(),
        "alice waits in backoff"
    );

    // The directory is back: bob's success proves it, and alice's push
    // (with its revision, so its checks still apply) goes round now, not
    // after her backoff.
    w.ldap.set_down(false);
    shared.queue.submit(push("bob", &b));
    run(&shared, queued(&shared)).await;
    let again = queued(&shared);
    assert_eq!(again.account, "alice");
    assert_eq!(
        again.push.as_ref().and_then(|p| p.revision.as_deref()),
        Some(a.as_str())
    );
    run(&shared, again).await;
    assert_eq!(
        w.ctx
            .store
            .accepted("alice")
            .expect("store")
            .map(|x| x.revision),
        Some(a.clone())
    );
    assert!(
        shared.retries.due("alice").is_none(),
        "her count is cleared"
    );
    assert!(
        statuses(&mut rx, &a)
            .iter()
            .any(|(s, d)| *s == CommitState::Success && d == "2 action(s) applied")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_action_reaches_the_student_as_an_audit_id_not_the_backends_words() {
    let w = InProcess::new("serve-action");
    w.student("carol");
    let sha = w.commit("carol", WEB);
    w.docker.refuse("carol--web");
    let (shared, mut rx) = shared(&w);
    shared.queue.submit(push("carol", &sha));
    run(&shared, queued(&shared)).await;
    let told = statuses(&mut rx, &sha);
    let (state, text) = told.last().expect("a final status");
    assert_eq!(*state, CommitState::Failed, "{told:?}");
    assert!(
        text.starts_with("1 of 2 action(s) failed; an admin can read audit #"),
        "{text}"
    );
    assert!(
        !text.contains("Berth did not create"),
        "the backend's words: {text}"
    );
    // A failed action is the student's business, not an outage: no retry.
    assert!(shared.retries.due("carol").is_none());
}
