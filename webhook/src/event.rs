//! GitLab webhook events as Berth needs them: push events delivered as
//! `Push Hook` (project hooks) or `System Hook` (instance-wide hooks with
//! `object_kind: push`). Only the fields Berth reads are typed; everything
//! else is ignored, so GitLab adding fields never breaks parsing.

use serde::Deserialize;

/// The `after` of a push that deleted the branch.
pub const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct PushEvent {
    #[serde(default)]
    pub object_kind: String,
    pub after: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub checkout_sha: Option<String>,
    pub user_id: u64,
    pub user_username: String,
    pub project_id: u64,
    pub project: Project,
    #[serde(default)]
    pub total_commits_count: u64,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Project {
    pub path_with_namespace: String,
    #[serde(default)]
    pub default_branch: Option<String>,
}

/// A merge request hook (`object_kind: merge_request`), as Berth reads it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct MergeRequestEvent {
    pub user: User,
    pub project: MergeRequestProject,
    pub object_attributes: MergeRequest,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct User {
    #[serde(default)]
    pub id: Option<u64>,
    pub username: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct MergeRequestProject {
    pub id: u64,
    pub path_with_namespace: String,
    #[serde(default)]
    pub default_branch: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct MergeRequest {
    pub iid: u64,
    pub target_branch: String,
    #[serde(default)]
    pub source_project_id: Option<u64>,
    #[serde(default)]
    pub target_project_id: Option<u64>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    pub last_commit: LastCommit,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct LastCommit {
    pub id: String,
}

impl MergeRequestEvent {
    /// Opened, reopened or updated, into the default branch: a preview.
    pub fn wants_preview(&self) -> bool {
        let default = self.project.default_branch.as_deref().unwrap_or("main");
        let action_ok = matches!(
            self.object_attributes.action.as_deref(),
            None | Some("open" | "reopen" | "update")
        );
        let open = self
            .object_attributes
            .state
            .as_deref()
            .is_none_or(|s| s == "opened");
        action_ok && open && self.object_attributes.target_branch == default
    }

    /// The ref holding the merge request's head in the target project
    /// (works for merge requests from forks too).
    pub fn head_ref(&self) -> String {
        format!("refs/merge-requests/{}/head", self.object_attributes.iid)
    }
}

/// What a delivery turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Push(PushEvent),
    MergeRequest(MergeRequestEvent),
    /// Authenticated and well-formed, but not something Berth acts on.
    Ignored(&'static str),
}

#[derive(Debug, thiserror::Error)]
#[error("malformed event: {0}")]
pub struct Malformed(#[from] serde_json::Error);

/// Parses a delivery from its `X-Gitlab-Event` header and body.
pub fn parse(kind: &str, body: &[u8]) -> Result<Event, Malformed> {
    match kind {
        "Push Hook" => Ok(Event::Push(serde_json::from_slice(body)?)),
        "Merge Request Hook" => Ok(Event::MergeRequest(serde_json::from_slice(body)?)),
        "System Hook" => {
            #[derive(Deserialize)]
            struct Kind {
                #[serde(default)]
                object_kind: Option<String>,
                #[serde(default)]
                event_name: Option<String>,
            }
            let k: Kind = serde_json::from_slice(body)?;
            let is_push =
                k.object_kind.as_deref() == Some("push") || k.event_name.as_deref() == Some("push");
            if is_push {
                Ok(Event::Push(serde_json::from_slice(body)?))
            } else if k.object_kind.as_deref() == Some("merge_request") {
                Ok(Event::MergeRequest(serde_json::from_slice(body)?))
            } else {
                Ok(Event::Ignored("system event other than push"))
            }
        }
        _ => {
            // Still must be JSON: a garbage body is a 400 whatever the kind.
            serde_json::from_slice::<serde::de::IgnoredAny>(body)?;
            Ok(Event::Ignored("event kind Berth does not act on"))
        }
    }
}

impl PushEvent {
    /// The branch name if `ref` is a branch.
    pub fn branch(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/heads/")
    }

    /// Whether the push went to the project's default branch (`main` when
    /// GitLab does not say).
    pub fn to_default_branch(&self) -> bool {
        let default = self.project.default_branch.as_deref().unwrap_or("main");
        self.branch() == Some(default)
    }

    pub fn deletes_branch(&self) -> bool {
        self.after == ZERO_SHA
    }
}
