//! Admission (pure): whether an account may run at all ([`standing`]),
//! whether a commit may change its workspace ([`admit`]), and whether a
//! GitLab pusher may push to it, by username or bound through the LDAP
//! identity GitLab knows ([`pusher_bound`]).

use crate::account::Account;
use crate::dn::dn_eq;
use berth_spec::site::Site;

/// Why a revision is not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("account `{0}` does not exist in the directory")]
    UnknownAccount(String),
    #[error("account `{0}` is disabled")]
    Disabled(String),
    #[error("account `{account}` is in none of the allowed groups ({allowed})")]
    NotAllowed { account: String, allowed: String },
    #[error("committer email `{got}` is not the account's directory mail `{want}`")]
    CommitterMismatch { got: String, want: String },
    #[error("account `{0}` has no mail in the directory, so no commit can be verified")]
    NoMail(String),
    #[error("pusher `{pusher}` is neither `{account}` nor an admin")]
    Pusher { pusher: String, account: String },
    #[error(
        "pusher `{pusher}` has no GitLab login through LDAP provider `{provider}`, so the push cannot be bound to a directory account"
    )]
    NoLdapIdentity { pusher: String, provider: String },
}

/// Whether GitLab user `pusher`, whose LDAP login (GitLab's `identities`)
/// is `extern_uid`, may push to `account`: the DN must be the account's own
/// (compared as a DN), or the DN of an enabled admin the pusher's username
/// names. A local GitLab account, or a username reused after the student
/// left, never deploys as the LDAP account.
pub fn pusher_bound(
    site: &Site,
    account: &str,
    target: Option<&Account>,
    pusher: &str,
    extern_uid: Option<&str>,
    pusher_account: Option<&Account>,
) -> Result<(), Rejection> {
    let provider = site
        .gitlab
        .as_ref()
        .map(|g| g.ldap_provider.clone())
        .unwrap_or_default();
    let Some(dn) = extern_uid else {
        return Err(Rejection::NoLdapIdentity {
            pusher: pusher.to_string(),
            provider,
        });
    };
    if target.is_some_and(|t| dn_eq(dn, &t.dn)) {
        return Ok(());
    }
    admin_pusher(
        site,
        account,
        pusher,
        pusher_account.filter(|p| dn_eq(dn, &p.dn)),
    )
}

/// Ok when `pusher_account` is an enabled member of the site's admin group.
fn admin_pusher(
    site: &Site,
    account: &str,
    pusher: &str,
    pusher_account: Option<&Account>,
) -> Result<(), Rejection> {
    let admin = site.ldap.admin_group.as_ref();
    let is_admin =
        pusher_account.is_some_and(|p| !p.disabled && admin.is_some_and(|g| p.groups.contains(g)));
    if is_admin {
        Ok(())
    } else {
        Err(Rejection::Pusher {
            pusher: pusher.to_string(),
            account: account.to_string(),
        })
    }
}

/// Whether GitLab user `pusher` may push to `account`'s workspace: the
/// namespace owner, or a member of the site's admin group.
pub fn pusher_allowed(
    site: &Site,
    account: &str,
    pusher: &str,
    pusher_account: Option<&Account>,
) -> Result<(), Rejection> {
    if pusher == account {
        return Ok(());
    }
    admin_pusher(site, account, pusher, pusher_account)
}

/// Whether `name` may have anything running at all: it exists in the
/// directory, is enabled and is in an allowed group. An account that may
/// not is stopped (containers stopped, runner removed, Kubernetes scaled to
/// zero; volumes and claims kept), with this as the reason.
pub fn standing(site: &Site, name: &str, account: Option<&Account>) -> Result<(), Rejection> {
    let Some(account) = account else {
        return Err(Rejection::UnknownAccount(name.to_string()));
    };
    if account.disabled {
        return Err(Rejection::Disabled(name.to_string()));
    }
    let allowed = &site.ldap.allowed_groups;
    if !account.groups.iter().any(|g| allowed.contains(g)) {
        return Err(Rejection::NotAllowed {
            account: name.to_string(),
            allowed: allowed.join(", "),
        });
    }
    Ok(())
}

/// Whether a commit by `committer_email` may change `account`'s workspace.
pub fn admit(
    site: &Site,
    name: &str,
    account: Option<&Account>,
    committer_email: &str,
) -> Result<(), Rejection> {
    standing(site, name, account)?;
    let Some(account) = account else {
        return Err(Rejection::UnknownAccount(name.to_string()));
    };
    let Some(mail) = &account.mail else {
        return Err(Rejection::NoMail(name.to_string()));
    };
    if !mail.trim().eq_ignore_ascii_case(committer_email.trim()) {
        return Err(Rejection::CommitterMismatch {
            got: committer_email.to_string(),
            want: mail.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> berth_spec::Site {
        crate::fixtures::example_site()
    }

    fn alice() -> Account {
        Account {
            name: "alice".into(),
            dn: "uid=alice,ou=people,dc=berth,dc=test".into(),
            entry: "uid=alice,ou=people,dc=berth,dc=test".into(),
            mail: Some("alice@berth.test".into()),
            groups: vec!["students".into()],
            disabled: false,
            posix: None,
        }
    }

    #[test]
    fn admission_rules() {
        let site = site();
        assert_eq!(
            admit(&site, "alice", Some(&alice()), "Alice@Berth.test"),
            Ok(())
        );
        assert!(matches!(
            admit(&site, "mallory", None, "x"),
            Err(Rejection::UnknownAccount(_))
        ));
        let disabled = Account {
            disabled: true,
            ..alice()
        };
        assert!(matches!(
            admit(&site, "alice", Some(&disabled), "alice@berth.test"),
            Err(Rejection::Disabled(_))
        ));
        let outsider = Account {
            groups: vec!["guests".into()],
            ..alice()
        };
        assert!(matches!(
            admit(&site, "alice", Some(&outsider), "alice@berth.test"),
            Err(Rejection::NotAllowed { .. })
        ));
        assert_eq!(
            admit(&site, "alice", Some(&alice()), "bob@berth.test").map_err(|e| e.to_string()),
            Err("committer email `bob@berth.test` is not the account's directory mail `alice@berth.test`".into())
        );
        let nomail = Account {
            mail: None,
            ..alice()
        };
        assert!(matches!(
            admit(&site, "alice", Some(&nomail), "alice@berth.test"),
            Err(Rejection::NoMail(_))
        ));
    }

    #[test]
    fn a_pusher_is_bound_by_the_dn_gitlab_knows() {
        let site = site();
        let dn = "uid=alice,ou=people,dc=berth,dc=test";
        let ok = |uid: Option<&str>, pusher: Option<&Account>| {
            pusher_bound(&site, "alice", Some(&alice()), "x", uid, pusher)
        };
        assert_eq!(ok(Some(dn), None), Ok(()));
        assert_eq!(
            ok(Some("UID=alice, ou=people,dc=berth,dc=test"), None),
            Ok(())
        );
        // A local GitLab account called `alice`: no LDAP identity at all.
        assert!(matches!(
            ok(None, None),
            Err(Rejection::NoLdapIdentity { .. })
        ));
        // Someone else's DN behind the username `alice`.
        assert!(matches!(
            ok(Some("uid=mallory,ou=people,dc=berth,dc=test"), None),
            Err(Rejection::Pusher { .. })
        ));
        let admin = Account {
            name: "root".into(),
            dn: "uid=root,ou=people,dc=berth,dc=test".into(),
            groups: vec!["admins".into()],
            ..alice()
        };
        assert_eq!(ok(Some(&admin.dn), Some(&admin)), Ok(()));
        // An admin's username with another DN is not that admin.
        assert!(ok(Some("uid=eve,ou=people,dc=berth,dc=test"), Some(&admin)).is_err());
    }

    #[test]
    fn standing_stops_unknown_disabled_and_outside_accounts() {
        let site = site();
        assert_eq!(standing(&site, "alice", Some(&alice())), Ok(()));
        assert!(matches!(
            standing(&site, "gone", None),
            Err(Rejection::UnknownAccount(_))
        ));
        let outsider = Account {
            groups: vec![],
            ..alice()
        };
        assert!(matches!(
            standing(&site, "alice", Some(&outsider)),
            Err(Rejection::NotAllowed { .. })
        ));
    }
}
