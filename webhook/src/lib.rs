//! GitLab webhook receiver. Owns the HTTP edge only: it checks the secret,
//! parses and deduplicates events, and hands [`SyncRequest`]s to a
//! [`SyncSink`]. It knows nothing of Docker, LDAP or the reconciler.
//!
//! # Layout
//! - [`router`]: the axum routes and the order of checks.
//! - [`event`]: push event payloads (project and system hooks).
//! - [`dedupe`]: bounded memory of delivery ids.
//! - [`observe`]: what became of each delivery, told to an observer.

/// Bounded memory of delivery ids.
pub mod dedupe;
/// GitLab push payloads.
pub mod event;
/// Delivery outcomes and their observer.
pub mod observe;
/// The HTTP routes.
pub mod router;

pub use observe::{Counts, Observer, Outcome};
pub use router::{Config, router};

/// A request to reconcile one account's repository, from an authenticated
/// push to its default branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    /// The namespace owner of the pushed repository.
    pub account: String,
    /// Repository path within the namespace.
    pub repository: String,
    /// GitLab's project id (for commit statuses).
    pub project_id: Option<u64>,
    /// GitLab's project path (`students/alice/workspace`).
    pub path: Option<String>,
    /// The pushed commit; `None` when the push deleted the branch.
    pub revision: Option<String>,
    /// The authenticated GitLab user who pushed.
    pub pusher: Option<String>,
    pub pusher_id: Option<u64>,
    /// The delivery id, for logs.
    pub delivery: Option<String>,
    /// Not for applying: a branch push or a merge request to preview.
    pub preview: Option<Preview>,
}

/// What a preview is of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preview {
    /// The branch (`feature`) or ref (`refs/merge-requests/7/head`).
    pub git_ref: String,
    /// The merge request's iid, whose note shows the plan.
    pub merge_request: Option<u64>,
}

/// Where accepted requests go. Implementations must not block: the webhook
/// answers GitLab within milliseconds (the reconciler's coalescing queue
/// keeps one pending request per account, so memory stays bounded under a
/// flood). A plain channel sender works too.
pub trait SyncSink: Send + Sync + 'static {
    fn submit(&self, request: SyncRequest);
}

impl SyncSink for tokio::sync::mpsc::UnboundedSender<SyncRequest> {
    fn submit(&self, request: SyncRequest) {
        let _ = self.send(request);
    }
}
