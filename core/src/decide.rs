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
mod tests {
    use super::*;

    const HEAD: &str = "2222222222222222222222222222222222222222";
    const OLD: &str = "1111111111111111111111111111111111111111";
    const MAIL: &str = "alice@berth.test";
    const WEB: &str = "version: 1\ncontainers:\n  - { name: web, image: nginx:1 }\n";

    fn alice() -> Account {
        Account {
            name: "alice".into(),
            dn: "uid=alice,ou=people,dc=berth,dc=test".into(),
            entry: "uid=alice,ou=people,dc=berth,dc=test".into(),
            mail: Some(MAIL.into()),
            groups: vec!["students".into()],
            disabled: false,
            posix: None,
        }
    }

    fn head(file: WorkspaceFile, committer: &str) -> Revision {
        Revision {
            repository: "alice/workspace".into(),
            sha: HEAD.into(),
            committer_email: committer.into(),
            summary: "change".into(),
            file,
        }
    }

    fn yaml(text: &str) -> WorkspaceFile {
        WorkspaceFile::Present(text.as_bytes().to_vec())
    }

    /// One row: the account's entry, the head, what was accepted, who asks.
    struct Row {
        name: &'static str,
        identity: Option<Account>,
        head: Option<Revision>,
        accepted: Option<&'static str>,
        pushed: Option<&'static str>,
        pushes_only: bool,
        pusher: Result<(), Rejection>,
        web_emails: Vec<String>,
        /// Bytes the account's volumes held when measured (only
        /// `berth-alice--data` exists).
        storage: Option<u64>,
        /// Budgets of alice's groups.
        budgets: Vec<crate::budget::GroupBudget>,
        /// The verdict's kind: a variant name, or `reject:<label>`.
        want: &'static str,
        stopped: Option<&'static str>,
    }

    fn row(name: &'static str) -> Row {
        Row {
            name,
            identity: Some(alice()),
            head: Some(head(yaml(WEB), MAIL)),
            accepted: Some(OLD),
            pushed: None,
            pushes_only: false,
            pusher: Ok(()),
            web_emails: vec![],
            storage: None,
            budgets: vec![],
            want: "candidate",
            stopped: None,
        }
    }

    fn spent_budget(refuse: bool) -> Vec<crate::budget::GroupBudget> {
        vec![crate::budget::GroupBudget {
            group: "students".into(),
            period: "week",
            ends: "2026-12-07T00:00:00Z".into(),
            cpu: Some(crate::budget::Spent {
                used: 5.0,
                limit: 5.0,
            }),
            gpu: None,
            refuse,
        }]
    }

    /// A workspace whose container mounts the volume `volume`.
    fn with_volume(volume: &str) -> Option<Revision> {
        Some(head(
            yaml(&format!(
                "version: 1\ncontainers:\n  - {{ name: web, image: nginx:1, volumes: [{{ name: {volume}, path: /v }}] }}\n"
            )),
            MAIL,
        ))
    }

    fn kind(v: &Verdict) -> String {
        match v {
            Verdict::NoRepository => "no_repository".into(),
            Verdict::NoWorkspace => "no_workspace".into(),
            Verdict::Unchanged => "unchanged".into(),
            Verdict::AwaitingPush => "awaiting_push".into(),
            Verdict::Reject(r) => format!("reject:{}", r.label()),
            Verdict::Candidate(_) => "candidate".into(),
        }
    }

    #[test]
    fn every_rule_is_a_row() {
        let disabled = Account {
            disabled: true,
            ..alice()
        };
        let outsider = Account {
            groups: vec!["guests".into()],
            ..alice()
        };
        let rows = vec![
            // File state × what was accepted.
            row("a valid new head is a candidate"),
            Row {
                head: None,
                want: "no_repository",
                ..row("no repository")
            },
            Row {
                head: Some(head(WorkspaceFile::Missing, MAIL)),
                accepted: None,
                want: "no_workspace",
                ..row("never accepted, no file: not managed")
            },
            Row {
                head: Some(head(WorkspaceFile::Missing, MAIL)),
                want: "reject:file_missing",
                ..row("an accepted account's file vanished")
            },
            Row {
                head: Some(head(WorkspaceFile::NotAFile("a symlink"), MAIL)),
                want: "reject:not_a_file",
                ..row("a symlink is never followed")
            },
            Row {
                head: Some(head(WorkspaceFile::TooLarge(5 << 20), MAIL)),
                want: "reject:too_large",
                ..row("a 5 MB file")
            },
            Row {
                head: Some(head(yaml("version: 1\nbogus: 1\n"), MAIL)),
                want: "reject:invalid",
                ..row("an unknown field")
            },
            Row {
                head: Some(head(
                    yaml("version: 1\ncontainers:\n  - { name: web, image: quay.io/x/y }\n"),
                    MAIL,
                )),
                want: "reject:policy",
                ..row("a forbidden registry")
            },
            Row {
                accepted: Some(HEAD),
                want: "unchanged",
                ..row("the head is the accepted revision")
            },
            // Identity.
            Row {
                identity: None,
                want: "reject:unknown_account",
                stopped: Some("unknown_account"),
                ..row("unknown in the directory")
            },
            Row {
                identity: Some(disabled.clone()),
                want: "reject:disabled",
                stopped: Some("disabled"),
                ..row("disabled")
            },
            Row {
                identity: Some(disabled),
                accepted: Some(HEAD),
                want: "unchanged",
                stopped: Some("disabled"),
                ..row("disabled, nothing new: still stopped")
            },
            Row {
                identity: Some(outsider),
                want: "reject:not_allowed",
                stopped: Some("not_allowed"),
                ..row("in no allowed group")
            },
            Row {
                head: Some(head(yaml(WEB), "mallory@evil.example")),
                want: "reject:committer",
                ..row("someone else's commit")
            },
            Row {
                head: Some(head(yaml(WEB), "42-alice@users.noreply.gitlab.example")),
                web_emails: vec!["42-alice@users.noreply.gitlab.example".into()],
                want: "candidate",
                ..row("a merge in GitLab's page, GitLab vouching for the address")
            },
            Row {
                head: Some(head(yaml(WEB), "42-alice@users.noreply.gitlab.example")),
                want: "reject:committer",
                ..row("a no-reply address nobody vouched for")
            },
            Row {
                pusher: Err(Rejection::Pusher {
                    pusher: "bob".into(),
                    account: "alice".into(),
                }),
                pushed: Some(HEAD),
                want: "reject:pusher",
                ..row("another student's push")
            },
            Row {
                pusher: Err(Rejection::NoLdapIdentity {
                    pusher: "alice".into(),
                    provider: "ldapmain".into(),
                }),
                pushed: Some(HEAD),
                pushes_only: true,
                want: "reject:no_ldap_identity",
                ..row("a local GitLab account named alice")
            },
            // Push state (GitLab mode).
            Row {
                pushes_only: true,
                want: "awaiting_push",
                ..row("a head no push asked for")
            },
            Row {
                pushes_only: true,
                pushed: Some(OLD),
                want: "awaiting_push",
                ..row("a push for an older revision")
            },
            Row {
                pushes_only: true,
                pushed: Some(HEAD),
                want: "candidate",
                ..row("the pushed head")
            },
            // Storage: the students' quota is 10Gi.
            Row {
                head: with_volume("scratch"),
                storage: Some(11 << 30),
                want: "reject:storage_quota",
                ..row("over the storage quota, a new volume")
            },
            Row {
                head: with_volume("data"),
                storage: Some(11 << 30),
                want: "candidate",
                ..row("over the storage quota, a volume that exists")
            },
            Row {
                head: with_volume("scratch"),
                storage: Some(10 << 30),
                want: "candidate",
                ..row("at the storage quota exactly, a new volume")
            },
            Row {
                head: with_volume("scratch"),
                want: "candidate",
                ..row("never measured, a new volume")
            },
            // Budgets: a container's default CPUs, added with nothing accepted.
            Row {
                budgets: spent_budget(true),
                want: "reject:budget",
                ..row("a spent refuse budget, CPUs added")
            },
            Row {
                budgets: spent_budget(false),
                want: "candidate",
                ..row("a spent warn budget, CPUs added")
            },
        ];
        let existing = BTreeSet::from(["berth-alice--data".to_string()]);
        let site = crate::fixtures::example_site();
        let shared = Shared::new();
        let mut failures = Vec::new();
        for r in &rows {
            let got = decide(&Inputs {
                site: &site,
                account: "alice",
                identity: r.identity.as_ref(),
                head: r.head.as_ref(),
                accepted: r.accepted,
                pushed: r.pushed,
                pushes_only: r.pushes_only,
                pusher: r.pusher.clone(),
                web_emails: &r.web_emails,
                shared: &shared,
                storage: r.storage.map(|bytes| StorageUse {
                    bytes,
                    measured_at: 0,
                    existing: &existing,
                }),
                budgets: &r.budgets,
                holds: None,
                now: 1_796_256_000,
            });
            let stopped = got.stopped.as_ref().map(|s| identity_label(s).to_string());
            if kind(&got.verdict) != r.want || stopped.as_deref() != r.stopped {
                failures.push(format!(
                    "{}: got {} (stopped {stopped:?}), want {} (stopped {:?})",
                    r.name,
                    kind(&got.verdict),
                    r.want,
                    r.stopped
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn a_missing_image_is_counted_as_an_image_not_an_unknown_account() {
        // The server once matched "does not exist" in the message.
        let reason = RejectReason::Image(ImageRejection::Missing("r/alice/x:1".into()));
        assert_eq!(reason.label(), "image");
        assert_eq!(
            RejectReason::Identity(Rejection::UnknownAccount("bob".into())).label(),
            "unknown_account"
        );
    }

    #[test]
    fn a_storage_refusal_gives_the_numbers() {
        let reason = RejectReason::OverStorage {
            used: 3 << 29,
            limit: 1 << 30,
            group: "students".into(),
            measured: "2026-12-03T05:00:00Z".into(),
            added: vec!["scratch".into()],
        };
        assert_eq!(
            reason.to_string(),
            "storage quota: your volumes hold 1.5 GiB of the 1.0 GiB that group `students` allows (measured 2026-12-03T05:00:00Z); a revision may not add volume `scratch` while over it. Delete volumes you no longer need (the console's Volumes page) or ask an admin for more"
        );
    }

    #[test]
    fn reasons_serialize_as_their_message() {
        let json = serde_json::to_string(&RejectReason::TooLarge(5)).expect("json");
        assert_eq!(json, "\"workspace.yaml is 5 bytes, far over the limit\"");
    }
}
