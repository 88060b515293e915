//! One account's reconcile: gather → decide → act.
//!
//! - [`gather`] reads git, LDAP, the store and GitLab (IO) into the inputs
//!   of the pure [`decide`], which says what happens to the head revision
//!   and whether the account may run; [`assemble`] turns the decided revision
//!   into an [`AccountPlan`] against observed backend state. Together they
//!   are [`evaluate`]: `diff` and `apply --dry-run`, changing nothing.
//!   [`people`] checks who the revision names (pusher, grantees).
//! - [`execute`] records the decision and runs the plan's actions.
//!
//! A rejected revision changes nothing: the last accepted one keeps running.

mod assemble;
pub mod budgets;
mod execute;
mod gather;
mod homes;
pub mod lending;
mod people;
pub mod pins;

pub use berth_core::decide::RejectReason;
pub use execute::execute;
pub use gather::{accepted_workspace_of, evaluate, preview};

use crate::store::{GpuKey, PortKey};
use berth_core::plan::Action;
use serde::Serialize;
use std::collections::BTreeMap;

/// What happens to the revision at the head of the repository.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// The head is the accepted revision.
    Unchanged,
    /// The head will be (or was) accepted.
    Accept { revision: String, commits: usize },
    /// The head is refused; the last accepted revision stays.
    Reject {
        revision: String,
        reason: RejectReason,
    },
    /// No repository or no commit yet: nothing is touched.
    NoRepository,
    /// The head has no `workspace.yaml` and no revision was ever accepted:
    /// the account is not managed (nothing is reported as failed).
    NoWorkspace,
    /// With GitLab configured, only an authenticated push introduces a
    /// revision; this head has not come with one (yet).
    AwaitingPush { revision: String },
}

/// Everything `execute` needs, computed without side effects.
#[derive(Clone, Debug, Serialize)]
pub struct AccountPlan {
    pub account: String,
    pub repository: Option<String>,
    pub endpoint: Option<String>,
    pub decision: Decision,
    /// The revision desired state comes from (after the decision).
    pub revision: Option<String>,
    pub disabled: bool,
    /// Why the account is stopped (unknown in the directory, disabled, in
    /// no allowed group); `None` while it may run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    pub actions: Vec<Action>,
    #[serde(skip)]
    pub ports: BTreeMap<PortKey, u16>,
    /// GPU ids given to the account's GPU containers on its host.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub gpus: BTreeMap<GpuKey, Vec<String>>,
    /// GPU containers waiting for cards (kept stopped).
    pub gpu_waiting: std::collections::BTreeSet<String>,
    /// Department-registry images of the revision, pinned: share key → digest.
    pub pins: BTreeMap<String, String>,
    /// What an accepted revision shares (share key → description).
    #[serde(skip)]
    pub shares: BTreeMap<String, String>,
    /// Names the accepted revision builds (`images.build`).
    pub builds: Vec<String>,
    /// The accepted revision's `keep_until` by Docker container name
    /// (Unix seconds).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub keeps: BTreeMap<String, i64>,
    /// The account's volumes are archived (dormancy): an accepted revision
    /// brings them back before its actions; any other plan does nothing.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
    /// Access the accepted revision grants to its containers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<berth_core::access::Grant>,
    /// Images of the desired containers (for image GC bookkeeping).
    #[serde(skip)]
    pub images: Vec<String>,
    /// The pushed project's id and path, recorded once the push is
    /// accepted (never from a push that was not).
    #[serde(skip)]
    pub project: Option<(u64, String)>,
    pub warnings: Vec<String>,
}

impl Decision {
    /// A short, bounded label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Unchanged => "unchanged",
            Decision::Accept { .. } => "accepted",
            Decision::Reject { .. } => "rejected",
            Decision::NoRepository => "no_repository",
            Decision::NoWorkspace => "no_workspace",
            Decision::AwaitingPush { .. } => "awaiting_push",
        }
    }
}

impl AccountPlan {
    /// A plan that changes nothing yet.
    pub fn new(account: &str, repository: Option<String>) -> AccountPlan {
        AccountPlan {
            account: account.into(),
            repository,
            endpoint: None,
            decision: Decision::NoRepository,
            revision: None,
            disabled: false,
            stopped: None,
            actions: vec![],
            ports: BTreeMap::new(),
            gpus: BTreeMap::new(),
            gpu_waiting: Default::default(),
            pins: BTreeMap::new(),
            shares: BTreeMap::new(),
            keeps: BTreeMap::new(),
            archived: false,
            grants: vec![],
            builds: vec![],
            images: vec![],
            project: None,
            warnings: vec![],
        }
    }

    /// The head is refused; the accepted revision (if any) stays.
    fn reject(&mut self, revision: String, reason: RejectReason, accepted: Option<String>) {
        self.decision = Decision::Reject { revision, reason };
        self.revision = accepted;
    }
}

/// Outcome of executing one plan.
#[derive(Clone, Debug, Serialize)]
pub struct AccountReport {
    pub account: String,
    pub decision: Decision,
    pub applied: Vec<String>,
    pub errors: Vec<String>,
    /// The audit entry of the first failed action: what a student is shown
    /// instead of the backend's words (internal addresses, other services'
    /// answers stay in the audit log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_audit: Option<i64>,
    /// Applied actions by kind (`create`, `recreate`, …), for metrics and
    /// the reconcile's log line.
    #[serde(skip)]
    pub kinds: BTreeMap<&'static str, usize>,
}

/// One line for logs and the audit: `create alice--web`.
pub fn describe(action: &Action) -> String {
    format!("{} {}", action.kind(), action.target())
}

pub fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

#[cfg(test)]
mod tests;
