//! GitLab webhook receiver. Owns the HTTP edge only: it checks the secret,
//! parses and deduplicates events, and emits [`SyncRequest`]s into a channel.
//! It knows nothing of Docker, LDAP or the reconciler.
//!
//! The axum router arrives with the GitLab integration; today this crate
//! holds the request type the reconciler consumes.

/// A request to reconcile one account's repository at a revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    /// The namespace owner of the pushed repository.
    pub account: String,
    /// Repository path within the namespace.
    pub repository: String,
    /// The pushed commit (`after`), if the event named one.
    pub revision: Option<String>,
    /// The authenticated GitLab user who pushed.
    pub pusher: Option<String>,
}
