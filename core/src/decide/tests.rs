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
