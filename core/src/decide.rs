//! The admission decision, pure: from what was gathered (the head and the
//! accepted revision, the directory's entry, the pusher check's answer, the
//! shares other accounts offer) to what happens to the head revision and
//! whether the account may run at all. No IO: every rule is a row of the
//! table tests below. Gathering is the reconciler's `reconcile::gather`; image digests (registry
//! IO) are resolved after a [`Verdict::Candidate`] and reported with
//! [`RejectReason::Image`].

use crate::account::Account;
use crate::admission::{self as identity, Rejection};
use crate::revision::{Revision, WorkspaceFile};
use berth_spec::policy::Shared;
use berth_spec::{Site, Workspace};
use std::collections::BTreeSet;

/// Why a revision's image cannot run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImageRejection {
    #[error("image `{0}` does not exist in the department registry")]
    Missing(String),
    /// The site's scanner said no; its output (trimmed) is the student's to read.
    #[error("image scan refused `{image}`: {output}")]
    Refused { image: String, output: String },
    #[error("image scan of `{image}` could not run `{program}`: {cause}")]
    ScannerFailed {
        image: String,
        program: String,
        cause: String,
    },
    #[error("image scan of `{0}` took longer than 5 minutes")]
    ScanTimeout(String),
}

/// Everything the decision needs, gathered beforehand.
pub struct Inputs<'a> {
    pub site: &'a Site,
    pub account: &'a str,
    /// The directory's entry; `None` when the account does not exist there.
    pub identity: Option<&'a Account>,
    /// The head of the default branch; `None` for a missing or empty repository.
    pub head: Option<&'a Revision>,
    /// The revision accepted last.
    pub accepted: Option<&'a str>,
    /// The revision an authenticated push asks for (`None` for a resync or
    /// an admin's `apply`).
    pub pushed: Option<&'a str>,
    /// Whether only authenticated pushes introduce revisions (GitLab mode).
    pub pushes_only: bool,
    /// The pusher check's answer for `pushed` (GitLab or LDAP IO).
    pub pusher: Result<(), Rejection>,
    /// Addresses GitLab confirmed as the account's own user's web-commit
    /// emails (a merge made in GitLab's page); the committer may be one.
    pub web_emails: &'a [String],
    /// Repositories other accounts share.
    pub shared: &'a Shared,
    /// The account's Docker volumes as last measured; `None` when never
    /// measured (no storage quota can refuse then).
    pub storage: Option<StorageUse<'a>>,
    /// The budgets of the account's groups, as spent this period.
    pub budgets: &'a [crate::budget::GroupBudget],
    /// What the accepted revision holds running (CPUs, GPUs); `None` when
    /// nothing is accepted.
    pub holds: Option<crate::budget::Holds>,
    /// When the decision is made (Unix seconds): dates in the file
    /// (`keep_until`) are bounded from it.
    pub now: i64,
}

/// What the storage quota judges: the account's volumes now and what they
/// held when last measured.
#[derive(Clone, Debug)]
pub struct StorageUse<'a> {
    /// Bytes the account's volumes held, summed over its hosts.
    pub bytes: u64,
    /// When the oldest of those measurements was taken (Unix time).
    pub measured_at: i64,
    /// Backend names of the account's volumes that exist now.
    pub existing: &'a BTreeSet<String>,
}

/// Why a head revision is refused. Each kind has a short bounded label
/// (metrics, logs, audit) and a message the student may read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RejectReason {
    #[error(transparent)]
    Identity(#[from] Rejection),
    #[error(
        "workspace.yaml is missing at this commit; nothing was changed (to remove every container, commit `containers: []`)"
    )]
    FileMissing,
    #[error("workspace.yaml is {0}, not a regular file; nothing was changed")]
    NotAFile(&'static str),
    #[error("workspace.yaml is {0} bytes, far over the limit")]
    TooLarge(u64),
    /// Diagnostics of the file itself (`workspace.yaml:line:col: …`).
    #[error("{0}")]
    Invalid(String),
    /// The file is valid but breaks site policy (registries, shares, quota).
    #[error("{0}")]
    Policy(String),
    /// An image that does not exist, or that the site's scanner refused.
    #[error(transparent)]
    Image(#[from] ImageRejection),
    /// An `images.build` entry that was refused or did not build.
    #[error("{0}")]
    Build(String),
    /// More CPUs or GPUs while a `refuse` budget of the account's groups
    /// is spent.
    #[error("{0}")]
    OverBudget(String),
    /// New volumes while the account's volumes hold more than its quota.
    #[error(
        "storage quota: your volumes hold {used} of the {limit} that group `{group}` allows (measured {measured}); a revision may not add volume{plural} {added} while over it. Delete volumes you no longer need (the console's Volumes page) or ask an admin for more",
        used = berth_spec::quantity::describe_bytes(*used),
        limit = berth_spec::quantity::describe_bytes(*limit),
        plural = if added.len() == 1 { "" } else { "s" },
        added = added.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
    )]
    OverStorage {
        used: u64,
        limit: u64,
        group: String,
        /// When the usage was measured (RFC 3339).
        measured: String,
        /// The declared names of the volumes the revision would add.
        added: Vec<String>,
    },
}

impl RejectReason {
    /// A short, bounded label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            RejectReason::Identity(r) => identity_label(r),
            RejectReason::FileMissing => "file_missing",
            RejectReason::NotAFile(_) => "not_a_file",
            RejectReason::TooLarge(_) => "too_large",
            RejectReason::Invalid(_) => "invalid",
            RejectReason::Policy(_) => "policy",
            RejectReason::Image(_) => "image",
            RejectReason::Build(_) => "build",
            RejectReason::OverStorage { .. } => "storage_quota",
            RejectReason::OverBudget(_) => "budget",
        }
    }
}

fn identity_label(r: &Rejection) -> &'static str {
    match r {
        Rejection::UnknownAccount(_) => "unknown_account",
        Rejection::Disabled(_) => "disabled",
        Rejection::NotAllowed { .. } => "not_allowed",
        Rejection::CommitterMismatch { .. } => "committer",
        Rejection::NoMail(_) => "no_mail",
        Rejection::Pusher { .. } => "pusher",
        Rejection::NoLdapIdentity { .. } => "no_ldap_identity",
    }
}

impl serde::Serialize for RejectReason {
    /// As the message: the JSON output keeps `reason` a string.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What happens to the head revision.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// No repository, or no commit yet: nothing is touched.
    NoRepository,
    /// No `workspace.yaml` and nothing accepted: not managed.
    NoWorkspace,
    /// The head is the accepted revision.
    Unchanged,
    /// Only an authenticated push introduces a revision, and none asked.
    AwaitingPush,
    Reject(RejectReason),
    /// Passed identity, validation and policy; its images come next.
    Candidate(Box<Workspace>),
}

/// The decision for one account.
#[derive(Clone, Debug, PartialEq)]
pub struct Admission {
    pub verdict: Verdict,
    /// Why the account may not run at all (it is stopped), if so.
    pub stopped: Option<Rejection>,
    /// What a candidate adds against the budgets it draws on.
    pub notes: Vec<String>,
}

/// Decides what happens to the head and whether the account may run.
pub fn decide(i: &Inputs<'_>) -> Admission {
    let stopped = identity::standing(i.site, i.account, i.identity).err();
    let mut notes = Vec::new();
    let verdict = match i.head {
        None => Verdict::NoRepository,
        Some(head) if i.accepted.is_none() && head.file == WorkspaceFile::Missing => {
            Verdict::NoWorkspace
        }
        Some(head) if i.accepted == Some(head.sha.as_str()) => Verdict::Unchanged,
        Some(head) if i.pushes_only && i.pushed != Some(head.sha.as_str()) => Verdict::AwaitingPush,
        Some(head) => match check(i, head) {
            Ok((ws, said)) => {
                notes = said;
                Verdict::Candidate(Box::new(ws))
            }
            Err(reason) => Verdict::Reject(reason),
        },
    };
    Admission {
        verdict,
        stopped,
        notes,
    }
}

/// The rules a new head passes, in order: the pusher, the account and the
/// committer, the file, its validity, then site policy.
fn check(i: &Inputs<'_>, head: &Revision) -> Result<(Workspace, Vec<String>), RejectReason> {
    i.pusher.clone()?;
    let web_commit = i
        .web_emails
        .iter()
        .any(|e| e.eq_ignore_ascii_case(&head.committer_email));
    if web_commit {
        identity::standing(i.site, i.account, i.identity)?;
    } else {
        identity::admit(i.site, i.account, i.identity, &head.committer_email)?;
    }
    let account = i
        .identity
        .ok_or_else(|| Rejection::UnknownAccount(i.account.to_string()))?;
    let bytes = match &head.file {
        WorkspaceFile::Missing => return Err(RejectReason::FileMissing),
        WorkspaceFile::NotAFile(what) => return Err(RejectReason::NotAFile(what)),
        WorkspaceFile::TooLarge(n) => return Err(RejectReason::TooLarge(*n)),
        WorkspaceFile::Present(b) => b,
    };
    let describe = |d: berth_spec::Diagnostics| {
        d.iter()
            .map(|d| format!("workspace.yaml:{d}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let ws = berth_spec::parse_workspace(bytes).map_err(|d| RejectReason::Invalid(describe(d)))?;
    berth_spec::policy::check_with(&ws, i.site, &account.name, &account.groups, i.shared)
        .map_err(|d| RejectReason::Policy(describe(d)))?;
    berth_spec::policy::check_dates(&ws, i.site, i.now)
        .map_err(|d| RejectReason::Policy(describe(d)))?;
    storage(i, account, &ws)?;
    let judged = crate::budget::judge(i.budgets, i.holds.unwrap_or_default(), holds(i.site, &ws));
    if let Some(why) = judged.refusal {
        return Err(RejectReason::OverBudget(why));
    }
    Ok((ws, judged.notes))
}

/// The CPUs and GPUs a workspace's running containers hold.
pub fn holds(site: &Site, ws: &Workspace) -> crate::budget::Holds {
    ws.containers
        .iter()
        .filter(|c| c.state() == berth_spec::State::Running)
        .map(|c| berth_spec::policy::requested(site, c))
        .fold(crate::budget::Holds::default(), |h, (cpus, _, gpus)| {
            crate::budget::Holds {
                cpus: h.cpus + cpus,
                gpus: h.gpus + gpus,
            }
        })
}

/// The storage quota: while the account's volumes hold more than its
/// quota, a revision may keep, drop and reuse volumes but add none. It
/// cannot stop data growing inside a volume (Docker's local volumes have
/// no size limit); it stops the account spreading further.
fn storage(i: &Inputs<'_>, account: &Account, ws: &Workspace) -> Result<(), RejectReason> {
    let Some(used) = &i.storage else {
        return Ok(());
    };
    let Some(quota) = berth_spec::policy::effective_quota(i.site, &account.groups) else {
        return Ok(());
    };
    let Some(limit) = quota.storage.filter(|limit| used.bytes > *limit) else {
        return Ok(());
    };
    let added: BTreeSet<String> = ws
        .containers
        .iter()
        .filter(|c| berth_spec::policy::backend_of(i.site, c) == berth_spec::Backend::Docker)
        .flat_map(|c| &c.volumes)
        .map(|v| v.name.value.clone())
        .filter(|v| {
            !used
                .existing
                .contains(&crate::desired::volume_name(&account.name, v))
        })
        .collect();
    if added.is_empty() {
        return Ok(());
    }
    Err(RejectReason::OverStorage {
        used: used.bytes,
        limit,
        group: quota.group,
        measured: crate::time::rfc3339(used.measured_at),
        added: added.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests;
