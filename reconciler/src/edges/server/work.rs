//! One queued account's reconcile, as `serve`'s workers run it: observe,
//! evaluate, execute, then tell what happened (metrics, the read model,
//! the commit status) or, when a service Berth needs failed, schedule
//! the retry with backoff and say so once per push.

use super::background::refresh_view;
use super::{Shared, StatusUpdate, lending};
use crate::edges::queue::Work;
use crate::engine::reconcile::{self, AccountPlan, AccountReport, Decision};
use crate::inputs::gitlab::CommitState;
use berth_webhook::SyncRequest;
use std::sync::Arc;
use std::time::Instant;

/// One of the pool: takes the next account off the queue until it closes.
pub(super) async fn worker(shared: Arc<Shared>) {
    while let Some(work) = shared.queue.next().await {
        let account = work.account.clone();
        handle(&shared, work).await;
        shared.queue.done(&account);
    }
}

/// Queues a commit status for the push, if it came with a GitLab project;
/// a full channel drops it rather than hold the worker.
fn status(
    shared: &Shared,
    push: Option<&SyncRequest>,
    state: CommitState,
    description: impl Into<String>,
) {
    if let (Some(tx), Some(p)) = (&shared.statuses, push)
        && let (Some(project), Some(sha)) = (p.project_id, &p.revision)
    {
        let _ = tx.try_send(StatusUpdate {
            project,
            sha: sha.clone(),
            state,
            description: description.into(),
        });
    }
}

#[tracing::instrument(skip(shared, work), fields(account = %work.account, coalesced = work.coalesced))]
pub(super) async fn handle(shared: &Arc<Shared>, work: Work) {
    let started = Instant::now();
    let push = work.push.as_ref();
    status(shared, push, CommitState::Running, "reconciling");
    let ctx = &shared.ctx;
    let faulted = shared
        .store_fault
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .is_some();
    if faulted && let Err(e) = ctx.store.call(|s| s.reopen_if_read_only()).await {
        tracing::warn!(store = %ctx.store.path(), cause = %e, "reopening the state store");
    }
    let observed = ctx.observe_account(&work.account).await;
    for (endpoint, answer) in &observed.docker {
        shared.metrics.set_endpoint_up(endpoint, answer.is_ok());
    }
    if let Some(answer) = &observed.kube {
        shared.metrics.set_endpoint_up("kubernetes", answer.is_ok());
    }
    let refreshed = crate::ops::discovery::refresh(ctx, &work.account).await;
    let evaluated = match refreshed {
        Ok(()) => reconcile::evaluate(ctx, &work.account, &observed, push).await,
        Err(e) => Err(e),
    };
    let outcome = match evaluated {
        Ok(plan) => reconcile::execute(ctx, &plan)
            .await
            .map(|report| (plan, report)),
        Err(e) => Err(e),
    };
    shared.metrics.reconciled(started.elapsed().as_secs_f64());
    let changed = match &outcome {
        Ok((_, report)) => !report.applied.is_empty() || !report.errors.is_empty(),
        Err(_) => false,
    };
    refresh_view(shared, &work.account, observed, changed).await;
    match outcome {
        Ok((plan, report)) => reconciled(shared, &work, started, &plan, &report).await,
        Err(e) => failed(shared, &work, e).await,
    }
}

/// A reconcile that ran: its metrics and log lines, the waiters it frees,
/// and the commit status that tells the student.
async fn reconciled(
    shared: &Arc<Shared>,
    work: &Work,
    started: Instant,
    plan: &AccountPlan,
    report: &AccountReport,
) {
    let push = work.push.as_ref();
    shared.set_store_fault(None);
    shared.metrics.action_failures(report.errors.len() as u64);
    // A dependency is back: whoever waits in backoff goes now.
    for (account, push) in shared.retries.succeeded(&work.account) {
        match push {
            Some(p) => shared.queue.retry(p),
            None => shared.queue.resync(&account),
        }
    }
    for (kind, n) in &report.kinds {
        shared.metrics.actions(kind, *n as u64);
    }
    let actions: Vec<String> = report
        .kinds
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    tracing::info!(
        account = %work.account,
        revision = %plan.revision.as_deref().map(reconcile::short).unwrap_or("-"),
        outcome = %plan.decision.label(),
        actions = %actions.join(","),
        failed = report.errors.len(),
        duration_ms = started.elapsed().as_millis() as u64,
        "reconciled"
    );
    if let Decision::Reject { revision, reason } = &plan.decision {
        tracing::info!(
            account = %work.account,
            revision = %reconcile::short(revision),
            reason = %reason.label(),
            message = %reason,
            "revision rejected"
        );
    }
    for e in &report.errors {
        tracing::warn!(account = %work.account, cause = %e, "backend action failed");
    }
    let (state, text) = match (&plan.decision, report.errors.first()) {
        (Decision::Accept { .. }, None) if !plan.shares.is_empty() || !plan.pins.is_empty() => {
            shared.refresh.notify_one();
            (
                CommitState::Success,
                format!("{} action(s) applied", report.applied.len()),
            )
        }
        (Decision::Reject { reason, .. }, _) => {
            shared.metrics.rejected(reason.label());
            (CommitState::Failed, format!("rejected: {reason}"))
        }
        // The branch moved on since this push: a newer push follows.
        (Decision::AwaitingPush { revision }, _) => (
            CommitState::Canceled,
            format!("superseded by {}", reconcile::short(revision)),
        ),
        // Backend words (addresses, other services' answers) stay
        // in the audit log; the student gets its entry's number.
        (_, Some(_)) => (
            CommitState::Failed,
            format!(
                "{} of {} action(s) failed; an admin can read audit #{} (reconciler audit)",
                report.errors.len(),
                report.errors.len() + report.applied.len(),
                report.error_audit.unwrap_or_default()
            ),
        ),
        _ => (
            CommitState::Success,
            format!("{} action(s) applied", report.applied.len()),
        ),
    };
    // A budget nearly or already spent is told with the push.
    let text = match plan.warnings.iter().find(|w| w.starts_with("budget:")) {
        Some(w) if state == CommitState::Success => format!("{text}; {w}"),
        _ => text,
    };
    // GPU containers waiting in line: their place and estimate.
    let text = if state == CommitState::Success && !plan.gpu_waiting.is_empty() {
        lending::waiting_gpus(shared, &work.account)
            .await
            .map_or(text.clone(), |w| format!("{text}; {w}"))
    } else {
        text
    };
    status(shared, push, state, text);
}

/// A reconcile a service Berth needs stopped (LDAP, dockerd, git, the
/// store): nothing was changed; it is tried again with backoff, keeping
/// the push so its checks still apply.
async fn failed(shared: &Arc<Shared>, work: &Work, e: crate::clients::ReconcileError) {
    let push = work.push.as_ref();
    let ctx = &shared.ctx;
    // Transient (LDAP, dockerd, git): nothing was changed; try again
    // later with backoff, keeping the push so its checks still apply.
    let (attempt, delay) =
        shared
            .retries
            .failed(&work.account, work.push.clone(), e.is_shared_dependency());
    shared.metrics.reconcile_error();
    if let crate::clients::ReconcileError::Store(cause) = &e {
        // Name the file and SQLite's reason; /healthz reports it
        // until a reconcile writes again.
        tracing::error!(account = %work.account, store = %ctx.store.path(), cause = %cause, "the state store cannot be written");
        shared.set_store_fault(Some(format!("state store {}: {cause}", ctx.store.path())));
    }
    tracing::warn!(cause = %e, attempt, retry_in = ?delay, "reconcile failed");
    // The detail (LDAP, dockerd or GitLab addresses and answers) goes
    // to the audit log once per push; the commit status names it.
    let (account, detail) = (work.account.clone(), e.to_string());
    let first_of_push = match (attempt, push) {
        (1, Some(p)) => Some(p.revision.clone()),
        _ => None,
    };
    let audit = ctx
        .store
        .call(move |s| {
            let _ = s.set_last_error(
                &account,
                Some(crate::store::Problem {
                    detail: &detail,
                    student: "a service Berth needs is unavailable; retrying",
                }),
            );
            let revision = first_of_push?;
            s.audit(&account, "reconcile-failed", revision.as_deref(), &detail)
                .ok()
        })
        .await;
    if let Some(id) = audit {
        status(
            shared,
            push,
            CommitState::Running,
            format!("temporarily failing, retrying; an admin can read audit #{id}"),
        );
    }
    let shared = shared.clone();
    let account = work.account.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        // Unless a recovery or a success got there first.
        match shared.retries.due(&account) {
            Some(Some(p)) => shared.queue.retry(p),
            Some(None) => shared.queue.resync(&account),
            None => {}
        }
    });
}
