//! The preview queue of `serve`: branch pushes and merge requests wait here,
//! one entry per account and ref (a newer push replaces an older one not yet
//! started), and one worker of their own plans them, so a preview never
//! delays a default-branch push. Each is planned with
//! [`crate::engine::reconcile::preview`] against the account's current observed
//! state and published to GitLab ([`crate::ops::preview::publish`]), after the
//! ref it plans was fetched into the account's mirror in GitLab mode.

use crate::clients::Context;
use berth_webhook::SyncRequest;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub(super) struct Previews {
    pending: Mutex<BTreeMap<(String, String), SyncRequest>>,
    wake: tokio::sync::Notify,
}

/// Previews waiting at most: a flood of branch pushes cannot grow memory.
const MAX_PENDING: usize = 10_000;

impl Previews {
    pub(super) fn submit(&self, request: SyncRequest) {
        let Some(p) = &request.preview else { return };
        let key = (request.account.clone(), p.git_ref.clone());
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() >= MAX_PENDING && !pending.contains_key(&key) {
            tracing::warn!(account = %request.account, "preview queue full; preview dropped");
            return;
        }
        pending.insert(key, request);
        drop(pending);
        self.wake.notify_one();
    }

    fn take(&self) -> Option<SyncRequest> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let key = pending.keys().next().cloned()?;
        pending.remove(&key)
    }
}

/// Plans and publishes previews until `stop`.
pub(super) async fn worker(
    ctx: Arc<Context>,
    previews: Arc<Previews>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        while let Some(request) = previews.take() {
            run(&ctx, &request).await;
        }
        tokio::select! {
            _ = previews.wake.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn run(ctx: &Arc<Context>, request: &SyncRequest) {
    let (Some(sha), Some(preview)) = (&request.revision, &request.preview) else {
        return;
    };
    let started = std::time::Instant::now();
    let account = &request.account;
    let observed = ctx.observe_account(account).await;
    // In GitLab mode the mirror has not seen this ref yet: a branch pushed
    // a moment ago, or a merge request's head (which only
    // `refs/merge-requests/` holds when it comes from a fork).
    let plan = match crate::ops::discovery::refresh_ref(ctx, account, &preview.git_ref).await {
        Ok(()) => {
            crate::engine::reconcile::preview(ctx, account, &observed, Some(request), sha).await
        }
        Err(e) => Err(e),
    };
    // A pusher who may not push to the account gets no preview at all.
    if let Ok(p) = &plan
        && let crate::engine::reconcile::Decision::Reject {
            reason:
                crate::engine::reconcile::RejectReason::Identity(
                    crate::inputs::identity::Rejection::Pusher { .. }
                    | crate::inputs::identity::Rejection::NoLdapIdentity { .. },
                ),
            ..
        } = &p.decision
    {
        tracing::info!(%account, git_ref = %preview.git_ref, "preview refused: the pusher may not push here");
        return;
    }
    // Berth's own failure (an unreachable directory or GitLab, a site
    // problem) names addresses and files: the student is shown an audit id.
    let rendered = match plan {
        Err(e) => {
            let detail = e.to_string();
            let (a, rev, d) = (account.clone(), sha.clone(), detail.clone());
            let id = ctx
                .store
                .call(move |s| s.audit(&a, "preview-failed", Some(&rev), &d))
                .await
                .ok();
            tracing::warn!(%account, cause = %detail, "preview failed");
            crate::ops::preview::unavailable(id)
        }
        plan => crate::ops::preview::render(account, plan),
    };
    tracing::info!(
        %account,
        git_ref = %preview.git_ref,
        outcome = %rendered.description,
        ms = started.elapsed().as_millis() as u64,
        "preview"
    );
    let (Some(gitlab), Some(project)) = (&ctx.gitlab, request.project_id) else {
        return;
    };
    if let Err(e) = crate::ops::preview::publish(
        gitlab,
        &ctx.store,
        project,
        sha,
        preview.merge_request,
        &rendered,
    )
    .await
    {
        tracing::warn!(%account, cause = %e, "publishing a preview");
    }
}
