//! What GitLab's REST API answers with and is sent, as Berth reads and
//! writes it: commit status states, projects, users and their external
//! identities, hooks, runners (whose token never shows in `Debug`).

use serde::{Deserialize, Serialize};

/// Commit status states GitLab accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CommitState {
    Pending,
    Running,
    Success,
    Failed,
    Canceled,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ProjectInfo {
    pub id: u64,
    pub path_with_namespace: String,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub http_url_to_repo: Option<String>,
    /// Whose project it is: a user's own namespace, or a group.
    #[serde(default)]
    pub namespace: Option<Namespace>,
}

/// A project's namespace as GitLab shows it (`kind` is `user` or `group`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Namespace {
    pub kind: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub full_path: String,
}

/// A push as the project's event list shows it (`GET
/// /projects/:id/events?action=pushed`): who pushed, and where the branch
/// went.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct PushedEvent {
    pub author_id: u64,
    #[serde(default)]
    pub author_username: String,
    #[serde(default)]
    pub push_data: Option<PushData>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct PushData {
    #[serde(default)]
    pub ref_type: String,
    #[serde(default, rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub commit_to: Option<String>,
}

/// The authenticated user who pushed a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pusher {
    pub id: u64,
    pub username: String,
}

/// A project member (`GET /projects/:id/members/all/:user_id`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub access_level: u32,
}

/// A GitLab user as `GET /users/:id` shows it. `identities` (the external
/// logins bound to the user, such as the LDAP DN) is only shown to
/// administrators: without an admin token it is empty.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct User {
    pub id: u64,
    pub username: String,
    #[serde(default)]
    pub identities: Vec<Identity>,
    /// The address GitLab writes as committer of commits made in its web
    /// page (merges), as its admin API shows it.
    #[serde(default)]
    pub commit_email: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Identity {
    pub provider: String,
    pub extern_uid: String,
}

impl User {
    /// The addresses GitLab may put on commits this user makes in its web
    /// page: the configured commit email, and the private no-reply address
    /// `<id>-<username>@users.noreply.<gitlab host>`.
    pub fn web_commit_emails(&self, gitlab_url: &str) -> Vec<String> {
        let host = gitlab_url
            .split("://")
            .nth(1)
            .unwrap_or(gitlab_url)
            .split(['/', ':'])
            .next()
            .unwrap_or_default();
        let mut out: Vec<String> = self.commit_email.iter().cloned().collect();
        out.push(format!(
            "{}-{}@users.noreply.{host}",
            self.id, self.username
        ));
        out
    }

    /// The DN this user logs in with through LDAP provider `provider`.
    pub fn ldap_dn(&self, provider: &str) -> Option<&str> {
        self.identities
            .iter()
            .find(|i| i.provider == provider)
            .map(|i| i.extern_uid.as_str())
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Hook {
    pub id: u64,
    pub url: String,
}

/// A runner created through `POST /user/runners`; the token is a secret.
#[derive(Clone, Deserialize, PartialEq, Eq)]
pub struct NewRunner {
    pub id: u64,
    pub token: String,
}

impl std::fmt::Debug for NewRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewRunner")
            .field("id", &self.id)
            .field("token", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_tokens_never_show_in_debug_output() {
        let r = NewRunner {
            id: 7,
            token: "glrt-secret".into(),
        };
        assert!(!format!("{r:?}").contains("glrt-secret"));
    }
}
