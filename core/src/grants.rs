//! Who may do what in the registry (pure): the scopes a client asks for
//! (`repository:alice/tools:pull,push`) and the part of them a requester is
//! granted. The unit of sharing is the repository: a grant names one
//! repository and never a tag.

use serde::Serialize;

/// Who is asking, once authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requester {
    /// Berth's own identity: pull, push and delete everywhere, the catalogue.
    Berth,
    /// A directory account in good standing (by password, personal token
    /// or its runner's CI credential).
    Account { name: String, admin: bool },
}

impl Requester {
    /// The token's `sub`.
    pub fn subject(&self) -> &str {
        match self {
            Requester::Berth => "berth",
            Requester::Account { name, .. } => name,
        }
    }
}

/// One entry of the token's `access` claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// Parses `scope` query values (each may hold several, space-separated).
/// A malformed scope is dropped: it can grant nothing.
pub fn parse_scopes<'a>(raw: impl IntoIterator<Item = &'a str>) -> Vec<Access> {
    raw.into_iter()
        .flat_map(str::split_whitespace)
        .filter_map(|scope| {
            let (kind, rest) = scope.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            Some(Access {
                kind: kind.to_string(),
                name: name.to_string(),
                actions: actions
                    .split(',')
                    .filter(|a| !a.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// A repository name as the distribution registry accepts it: lowercase
/// path components of `[a-z0-9]` joined by `.`, `_`, `-`, no empty or
/// dot-only component.
fn valid_repository(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.split('/').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
        })
}

/// The actions `requester` may take on the repository `name`.
fn allowed(
    requester: &Requester,
    name: &str,
    shared: &dyn Fn(&str) -> bool,
) -> &'static [&'static str] {
    match requester {
        Requester::Berth => &["pull", "push", "delete", "*"],
        Requester::Account {
            name: account,
            admin,
        } => {
            let own = name
                .split_once('/')
                .is_some_and(|(namespace, _)| namespace == account);
            if own {
                // `delete` only while nothing accepted runs it: the token
                // service takes it away again where something does.
                &["pull", "push", "delete"]
            } else if *admin || shared(name) {
                &["pull"]
            } else {
                &[]
            }
        }
    }
}

/// What of `scopes` `requester` gets: each requested action it may take,
/// entries that keep no action left out. `shared` says whether a
/// repository (`owner/name`, no host) is shared by its owner.
pub fn grant(
    requester: &Requester,
    scopes: &[Access],
    shared: &dyn Fn(&str) -> bool,
) -> Vec<Access> {
    let mut out: Vec<Access> = Vec::new();
    for scope in scopes {
        let may: &[&str] = match scope.kind.as_str() {
            "repository" if valid_repository(&scope.name) => {
                allowed(requester, &scope.name, shared)
            }
            "registry" if scope.name == "catalog" && *requester == Requester::Berth => &["*"],
            _ => &[],
        };
        let mut actions: Vec<String> = scope
            .actions
            .iter()
            .filter(|a| may.contains(&a.as_str()))
            .cloned()
            .collect();
        actions.sort();
        actions.dedup();
        if actions.is_empty() {
            continue;
        }
        match out
            .iter_mut()
            .find(|a| a.kind == scope.kind && a.name == scope.name)
        {
            Some(entry) => {
                entry.actions.extend(actions);
                entry.actions.sort();
                entry.actions.dedup();
            }
            None => out.push(Access {
                kind: scope.kind.clone(),
                name: scope.name.clone(),
                actions,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn student(name: &str) -> Requester {
        Requester::Account {
            name: name.into(),
            admin: false,
        }
    }

    fn ask(scopes: &[&str], who: &Requester) -> Vec<(String, String, Vec<String>)> {
        let shared = |repo: &str| repo == "bob/shared";
        grant(who, &parse_scopes(scopes.iter().copied()), &shared)
            .into_iter()
            .map(|a| (a.kind, a.name, a.actions))
            .collect()
    }

    fn one(kind: &str, name: &str, actions: &[&str]) -> (String, String, Vec<String>) {
        (
            kind.into(),
            name.into(),
            actions.iter().map(|a| a.to_string()).collect(),
        )
    }

    #[test]
    fn a_student_pushes_only_in_her_namespace_and_pulls_what_is_shared() {
        let alice = student("alice");
        assert_eq!(
            ask(&["repository:alice/x:pull,push"], &alice),
            vec![one("repository", "alice/x", &["pull", "push"])]
        );
        assert_eq!(
            ask(&["repository:alice/deep/x:push"], &alice),
            vec![one("repository", "alice/deep/x", &["push"])]
        );
        assert!(ask(&["repository:bob/x:pull,push"], &alice).is_empty());
        assert_eq!(
            ask(&["repository:bob/shared:pull,push"], &alice),
            vec![one("repository", "bob/shared", &["pull"])]
        );
        // She may delete in her namespace (the token service withdraws it
        // while something accepted runs the repository), never elsewhere;
        // the catalogue is Berth's, and a bare name has no owner.
        assert_eq!(
            ask(&["repository:alice/x:delete,pull"], &alice),
            vec![one("repository", "alice/x", &["delete", "pull"])]
        );
        assert_eq!(
            ask(&["repository:bob/shared:delete,pull"], &alice),
            vec![one("repository", "bob/shared", &["pull"])]
        );
        assert!(ask(&["registry:catalog:*"], &alice).is_empty());
        assert!(ask(&["repository:alice:push"], &alice).is_empty());
    }

    #[test]
    fn names_that_look_like_someone_elses_get_nothing() {
        let alice = student("alice");
        for scope in [
            "repository:alice/../bob/x:push",
            "repository:alice//x:push",
            "repository:Alice/x:push",
            "repository:alice-x/y:push",
            "repository:alicex/y:push",
            "repository:alice/x:*",
            "repository(plugin):alice/x:push",
            "nonsense",
        ] {
            assert!(ask(&[scope], &alice).is_empty(), "{scope}");
        }
    }

    #[test]
    fn admins_pull_everywhere_and_berth_does_everything() {
        let admin = Requester::Account {
            name: "root".into(),
            admin: true,
        };
        assert_eq!(
            ask(&["repository:bob/x:pull,push"], &admin),
            vec![one("repository", "bob/x", &["pull"])]
        );
        assert_eq!(
            ask(
                &["repository:bob/x:pull,push,delete registry:catalog:*"],
                &Requester::Berth
            ),
            vec![
                one("repository", "bob/x", &["delete", "pull", "push"]),
                one("registry", "catalog", &["*"]),
            ]
        );
    }

    #[test]
    fn repeated_scopes_merge_into_one_entry() {
        assert_eq!(
            ask(
                &["repository:alice/x:pull", "repository:alice/x:push,pull"],
                &student("alice")
            ),
            vec![one("repository", "alice/x", &["pull", "push"])]
        );
    }
}
