//! Letting a TA in, pure: the grants a workspace declares (a container,
//! an account or a group, what is allowed, until when), whether a named
//! account may be granted (it exists, is enabled, is in a group the site
//! lets students grant), and whether a grant lets someone do something
//! with a container now. A grant never covers starting or stopping, the
//! owner's images, runner or quota: only logs, a terminal and files.

use crate::account::Account;
use berth_spec::{Allow, Site, Workspace};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Who a grant lets in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "name")]
pub enum Grantee {
    Account(String),
    Group(String),
}

/// One grant, as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub owner: String,
    /// The Docker container's full name (`<owner>--<name>`).
    pub container: String,
    pub grantee: Grantee,
    pub allow: BTreeSet<Allow>,
    /// Unix seconds.
    pub until: i64,
}

/// The grants `ws` of `owner` declares (dates that do not parse were
/// refused by validation and are left out).
pub fn declared(owner: &str, ws: &Workspace) -> Vec<Grant> {
    ws.containers
        .iter()
        .flat_map(|c| c.access.iter().map(move |a| (c, a)))
        .filter_map(|(c, a)| {
            let grantee = match (&a.account, &a.group) {
                (Some(n), None) => Grantee::Account(n.value.clone()),
                (None, Some(g)) => Grantee::Group(g.value.clone()),
                _ => return None,
            };
            Some(Grant {
                owner: owner.to_string(),
                container: berth_spec::names::qualified(owner, &c.name),
                grantee,
                allow: a.allow.iter().map(|x| x.value).collect(),
                until: berth_spec::dates::until(&a.until).ok()?,
            })
        })
        .collect()
}

/// Why `name` (the directory's `entry`) may not be granted access to
/// `owner`'s containers, if it may not.
pub fn grantee_problem(
    site: &Site,
    owner: &str,
    name: &str,
    entry: Option<&Account>,
) -> Option<String> {
    let groups = site
        .access
        .as_ref()
        .map(|a| a.grantable_groups.clone())
        .unwrap_or_default();
    if name == owner {
        return Some(format!("access: `{name}` is you: you need no grant"));
    }
    let Some(a) = entry else {
        return Some(format!(
            "access: account `{name}` does not exist in the directory"
        ));
    };
    if a.disabled {
        return Some(format!("access: account `{name}` is disabled"));
    }
    if !a.groups.iter().any(|g| groups.contains(g)) {
        return Some(format!(
            "access: account `{name}` is in no group this site lets you grant ({})",
            groups.join(", ")
        ));
    }
    None
}

/// The grants `who` (in `groups`) holds at `now`: to them or one of their
/// groups, not ended, on someone else's container — and none at all
/// unless `who` is still in one of the site's `grantable` groups: a TA
/// who left the group loses what was granted.
pub fn held<'a>(
    grants: &'a [Grant],
    who: &'a str,
    groups: &'a [String],
    grantable: &[String],
    now: i64,
) -> impl Iterator<Item = &'a Grant> + 'a {
    let member = groups.iter().any(|g| grantable.contains(g));
    grants.iter().filter(move |g| {
        member
            && g.owner != who
            && now < g.until
            && match &g.grantee {
                Grantee::Account(a) => a == who,
                Grantee::Group(grp) => groups.contains(grp),
            }
    })
}

/// The grant that lets `who` (in `groups`) do `what` with `container` at
/// `now`, if one of those it [`held`] does.
pub fn allowing<'a>(
    grants: &'a [Grant],
    who: &'a str,
    groups: &'a [String],
    grantable: &[String],
    container: &str,
    what: Allow,
    now: i64,
) -> Option<&'a Grant> {
    held(grants, who, groups, grantable, now)
        .find(|g| g.container == container && g.allow.contains(&what))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(grantee: Grantee, allow: &[Allow], until: i64) -> Grant {
        Grant {
            owner: "alice".into(),
            container: "alice--box".into(),
            grantee,
            allow: allow.iter().copied().collect(),
            until,
        }
    }

    #[test]
    fn who_may_do_what_until_when() {
        let grants = vec![
            grant(Grantee::Account("bob".into()), &[Allow::Terminal], 100),
            grant(Grantee::Group("tas".into()), &[Allow::Logs], 200),
        ];
        let tas = ["tas".to_string()];
        let grantable = ["tas".to_string(), "staff".to_string()];
        let staff = ["staff".to_string()];
        // (name, who, groups, container, what, now, allowed)
        type Row<'a> = (&'a str, &'a str, &'a [String], &'a str, Allow, i64, bool);
        #[rustfmt::skip]
        let rows: &[Row] = &[
            ("the account, its grant", "bob", &staff, "alice--box", Allow::Terminal, 99, true),
            ("left every grantable group", "bob", &[], "alice--box", Allow::Terminal, 99, false),
            ("at the end", "bob", &staff, "alice--box", Allow::Terminal, 100, false),
            ("not what was granted", "bob", &staff, "alice--box", Allow::Files, 50, false),
            ("another container", "bob", &staff, "alice--other", Allow::Terminal, 50, false),
            ("someone else", "carol", &staff, "alice--box", Allow::Terminal, 50, false),
            ("a member of the group", "carol", &tas, "alice--box", Allow::Logs, 150, true),
            ("the group's grant is logs only", "carol", &tas, "alice--box", Allow::Terminal, 150, false),
            ("the group's grant ended", "carol", &tas, "alice--box", Allow::Logs, 200, false),
        ];
        let failures: Vec<String> = rows
            .iter()
            .filter_map(|&(name, who, groups, container, what, now, want)| {
                let got =
                    allowing(&grants, who, groups, &grantable, container, what, now).is_some();
                (got != want).then(|| format!("{name}: got {got}, want {want}"))
            })
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn what_is_held_needs_a_grantable_group_and_a_live_grant() {
        let grants = vec![
            grant(Grantee::Account("bob".into()), &[Allow::Terminal], 100),
            grant(Grantee::Group("tas".into()), &[Allow::Logs], 200),
        ];
        let grantable = ["tas".to_string()];
        let held_by = |who: &str, groups: &[String], now: i64| {
            held(&grants, who, groups, &grantable, now)
                .map(|g| g.until)
                .collect::<Vec<_>>()
        };
        assert_eq!(held_by("bob", &grantable, 50), [100, 200]);
        assert_eq!(held_by("bob", &grantable, 150), [200]);
        // Named in a grant, but out of every grantable group: nothing.
        assert!(held_by("bob", &["staff".to_string()], 50).is_empty());
        assert!(
            held_by("alice", &grantable, 50).is_empty(),
            "the owner's own"
        );
    }

    #[test]
    fn only_existing_enabled_members_of_grantable_groups_are_granted() {
        let mut site = crate::fixtures::example_site();
        site.access = Some(berth_spec::site::Access {
            grantable_groups: vec!["tas".into()],
            max: berth_spec::Located::new("30d".into()),
        });
        let ta = Account {
            name: "bob".into(),
            dn: "uid=bob,ou=people,dc=berth,dc=test".into(),
            entry: "uid=bob,ou=people,dc=berth,dc=test".into(),
            mail: None,
            groups: vec!["tas".into()],
            disabled: false,
            posix: None,
        };
        assert_eq!(grantee_problem(&site, "alice", "bob", Some(&ta)), None);
        assert!(
            grantee_problem(&site, "alice", "bob", None)
                .is_some_and(|p| p.contains("does not exist"))
        );
        let student = Account {
            groups: vec!["students".into()],
            ..ta.clone()
        };
        assert!(
            grantee_problem(&site, "alice", "bob", Some(&student))
                .is_some_and(|p| p.contains("(tas)"))
        );
        let off = Account {
            disabled: true,
            ..ta.clone()
        };
        assert!(
            grantee_problem(&site, "alice", "bob", Some(&off))
                .is_some_and(|p| p.contains("disabled"))
        );
        assert!(
            grantee_problem(&site, "alice", "alice", Some(&ta))
                .is_some_and(|p| p.contains("is you"))
        );
    }

    #[test]
    fn declared_grants_name_the_full_container_and_end_of_day() {
        let ws = berth_spec::parse_workspace(
            b"version: 1\ncontainers:\n  - name: box\n    image: nginx:1\n    access:\n      - { group: tas, allow: [logs, files], until: 2026-12-10 }\n",
        )
        .expect("valid");
        let got = declared("alice", &ws);
        assert_eq!(
            got,
            vec![Grant {
                owner: "alice".into(),
                container: berth_spec::names::qualified("alice", "box"),
                grantee: Grantee::Group("tas".into()),
                allow: [Allow::Logs, Allow::Files].into_iter().collect(),
                until: 1_796_947_200,
            }]
        );
    }
}
