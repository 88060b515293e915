//! A thin typed GitLab REST client (reqwest + serde), for the handful of
//! endpoints Berth uses: commit statuses, group projects (paginated), file
//! existence, project hooks, and runners. Token from an environment
//! variable; retries with backoff on 429 and 5xx, honouring `Retry-After`.
//! Written against the GitLab REST API v4 as documented for GitLab 17/18.

use std::time::Duration;

mod resources;

pub use resources::{
    CommitState, Hook, Identity, Member, Namespace, NewRunner, ProjectInfo, PushData, PushedEvent,
    Pusher, User,
};

#[derive(Debug, thiserror::Error)]
pub enum GitLabError {
    #[error("GitLab token variable {0} is not set")]
    MissingToken(String),
    #[error(
        "GitLab at {base} unreachable ({method} {path}): {}; check {setting}",
        crate::base::hint::cause(source)
    )]
    Unreachable {
        base: String,
        setting: String,
        method: &'static str,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GitLab request {method} {path}: {}", crate::base::hint::cause(source))]
    Http {
        method: &'static str,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GitLab answered {status} to {method} {path}: {body}{}", token_hint(*status, token_env))]
    Status {
        method: &'static str,
        path: String,
        status: u16,
        body: String,
        token_env: String,
    },
}

pub type Result<T, E = GitLabError> = std::result::Result<T, E>;

/// What to check when GitLab refuses Berth's token.
fn token_hint(status: u16, token_env: &str) -> String {
    match status {
        401 => format!("; the token in {token_env} is not valid (`gitlab.token_env`)"),
        403 => {
            format!("; the token in {token_env} lacks the `api` scope or access to this project")
        }
        _ => String::new(),
    }
}

#[derive(Clone)]
pub struct GitLab {
    http: reqwest::Client,
    base: String,
    token: String,
    /// Where `base` came from and which variable holds the token, for
    /// errors that tell the admin what to check.
    url_setting: String,
    token_env: String,
    max_attempts: u32,
    base_delay: Duration,
}

const MAX_PAGES: u32 = 1000;

impl GitLab {
    /// A client for `url` (e.g. `https://gitlab.example`) with the token
    /// read from the environment variable `token_env`.
    pub fn from_env(url: &berth_spec::Located<String>, token_env: &str) -> Result<GitLab> {
        let token = std::env::var(token_env)
            .map_err(|_| GitLabError::MissingToken(token_env.to_string()))?;
        Ok(GitLab::configured(url, token_env, token))
    }

    /// The client of the site's `gitlab.url`, whose errors name that
    /// setting and the variable `token_env` the token came from.
    pub fn configured(url: &berth_spec::Located<String>, token_env: &str, token: String) -> GitLab {
        let mut gitlab = GitLab::new(url, token);
        gitlab.url_setting = url.setting("gitlab.url");
        gitlab.token_env = token_env.to_string();
        gitlab
    }

    pub fn new(url: &str, token: String) -> GitLab {
        crate::base::tls::install_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        GitLab {
            http,
            base: format!("{}/api/v4", url.trim_end_matches('/')),
            token,
            url_setting: "`gitlab.url`".into(),
            token_env: "the token variable".into(),
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
        }
    }

    /// Shorter backoff, for tests against a mock server.
    pub fn with_backoff(mut self, attempts: u32, base: Duration) -> Self {
        self.max_attempts = attempts.max(1);
        self.base_delay = base;
        self
    }

    async fn send(
        &self,
        method: reqwest::Method,
        label: &'static str,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<reqwest::Response> {
        let url = format!("{}{path}", self.base);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header("PRIVATE-TOKEN", &self.token)
                .query(query);
            if let Some(b) = body {
                req = req.json(b);
            }
            let result = req.send().await;
            let retry_after = match &result {
                Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => Some(
                    r.headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(Duration::from_secs),
                ),
                Err(e) if e.is_connect() || e.is_timeout() => Some(None),
                _ => None,
            };
            match (retry_after, attempt < self.max_attempts) {
                (Some(wait), true) => {
                    let backoff = self.base_delay * 2u32.saturating_pow(attempt - 1);
                    tokio::time::sleep(wait.unwrap_or(backoff).min(Duration::from_secs(60))).await;
                }
                _ => {
                    let resp = result.map_err(|source| {
                        if source.is_connect() || source.is_timeout() {
                            GitLabError::Unreachable {
                                base: self.base.trim_end_matches("/api/v4").to_string(),
                                setting: self.url_setting.clone(),
                                method: label,
                                path: path.to_string(),
                                source,
                            }
                        } else {
                            GitLabError::Http {
                                method: label,
                                path: path.to_string(),
                                source,
                            }
                        }
                    })?;
                    if resp.status().is_success() {
                        return Ok(resp);
                    }
                    let status = resp.status().as_u16();
                    let body = resp
                        .text()
                        .await
                        .unwrap_or_default()
                        .chars()
                        .take(300)
                        .collect();
                    return Err(GitLabError::Status {
                        method: label,
                        path: path.to_string(),
                        status,
                        body,
                        token_env: self.token_env.clone(),
                    });
                }
            }
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        resp: reqwest::Response,
        label: &'static str,
        path: &str,
    ) -> Result<T> {
        resp.json().await.map_err(|source| GitLabError::Http {
            method: label,
            path: path.to_string(),
            source,
        })
    }

    /// `POST /projects/:id/statuses/:sha` with `name: berth`.
    pub async fn set_status(
        &self,
        project: u64,
        sha: &str,
        state: CommitState,
        description: &str,
    ) -> Result<()> {
        self.set_named_status(project, sha, "berth", state, description)
            .await
    }

    /// `POST /projects/:id/statuses/:sha` with `name`.
    pub async fn set_named_status(
        &self,
        project: u64,
        sha: &str,
        name: &str,
        state: CommitState,
        description: &str,
    ) -> Result<()> {
        let path = format!("/projects/{project}/statuses/{sha}");
        // GitLab caps descriptions at 255 characters.
        let description: String = description.chars().take(255).collect();
        let body = serde_json::json!({ "state": state, "name": name, "description": description });
        self.send(reqwest::Method::POST, "POST", &path, &[], Some(&body))
            .await
            .map(drop)
    }

    /// Berth's note on merge request `iid`: edits note `known` in place
    /// (`PUT …/notes/:id`), or creates one (`POST …/notes`) when there is
    /// none yet or it was deleted; returns the note's id.
    pub async fn upsert_mr_note(
        &self,
        project: u64,
        iid: u64,
        known: Option<u64>,
        body: &str,
    ) -> Result<u64> {
        #[derive(serde::Deserialize)]
        struct Note {
            id: u64,
        }
        let notes = format!("/projects/{project}/merge_requests/{iid}/notes");
        let payload = serde_json::json!({ "body": body });
        if let Some(id) = known {
            let path = format!("{notes}/{id}");
            match self
                .send(reqwest::Method::PUT, "PUT", &path, &[], Some(&payload))
                .await
            {
                Ok(_) => return Ok(id),
                Err(GitLabError::Status { status: 404, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let resp = self
            .send(reqwest::Method::POST, "POST", &notes, &[], Some(&payload))
            .await?;
        let note: Note = self.json(resp, "POST", &notes).await?;
        Ok(note.id)
    }

    /// `GET /users/:id`.
    pub async fn user(&self, id: u64) -> Result<User> {
        let path = format!("/users/{id}");
        let resp = self
            .send(reqwest::Method::GET, "GET", &path, &[], None)
            .await?;
        self.json(resp, "GET", &path).await
    }

    /// The id of the user named `username`, if any (`GET /users?username=`).
    pub async fn user_id(&self, username: &str) -> Result<Option<u64>> {
        let path = "/users".to_string();
        let resp = self
            .send(
                reqwest::Method::GET,
                "GET",
                &path,
                &[("username", username.to_string())],
                None,
            )
            .await?;
        let users: Vec<User> = self.json(resp, "GET", &path).await?;
        Ok(users
            .into_iter()
            .find(|u| u.username == username)
            .map(|u| u.id))
    }

    /// The user's access level in the project, inherited ones included
    /// (`GET /projects/:id/members/all/:user_id`); `None` when not a member.
    pub async fn member_access(&self, project: u64, user: u64) -> Result<Option<u32>> {
        let path = format!("/projects/{project}/members/all/{user}");
        match self
            .send(reqwest::Method::GET, "GET", &path, &[], None)
            .await
        {
            Ok(resp) => {
                let member: Member = self.json(resp, "GET", &path).await?;
                Ok(Some(member.access_level))
            }
            Err(GitLabError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Who pushed `sha` to `branch`: the newest push event of the project
    /// (`GET /projects/:id/events?action=pushed`, one page of 100) that
    /// moved the branch there. `None` when GitLab lists no such push (yet).
    pub async fn pusher_of(&self, project: u64, branch: &str, sha: &str) -> Result<Option<Pusher>> {
        let path = format!("/projects/{project}/events");
        let query = [
            ("action", "pushed".to_string()),
            ("per_page", "100".to_string()),
        ];
        let resp = self
            .send(reqwest::Method::GET, "GET", &path, &query, None)
            .await?;
        let events: Vec<PushedEvent> = self.json(resp, "GET", &path).await?;
        Ok(events.into_iter().find_map(|e| {
            let d = e.push_data.as_ref()?;
            (d.ref_type == "branch" && d.git_ref == branch && d.commit_to.as_deref() == Some(sha))
                .then(|| Pusher {
                    id: e.author_id,
                    username: e.author_username.clone(),
                })
        }))
    }

    /// Projects of a group and its subgroups, every page.
    pub async fn group_projects(&self, group: &str) -> Result<Vec<ProjectInfo>> {
        let path = format!("/groups/{}/projects", encode(group));
        let mut out = Vec::new();
        let mut page = 1;
        while page <= MAX_PAGES {
            let query = [
                ("include_subgroups", "true".to_string()),
                ("per_page", "100".to_string()),
                ("page", page.to_string()),
                ("archived", "false".to_string()),
            ];
            let resp = self
                .send(reqwest::Method::GET, "GET", &path, &query, None)
                .await?;
            let next = resp
                .headers()
                .get("x-next-page")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u32>().ok());
            let batch: Vec<ProjectInfo> = self.json(resp, "GET", &path).await?;
            let empty = batch.is_empty();
            out.extend(batch);
            match next {
                Some(n) if n > page && !empty => page = n,
                _ => break,
            }
        }
        Ok(out)
    }

    /// Whether `file` exists at `git_ref` (`HEAD /projects/:id/repository/files/:path`).
    pub async fn has_file(&self, project: u64, file: &str, git_ref: &str) -> Result<bool> {
        let path = format!("/projects/{project}/repository/files/{}", encode(file));
        match self
            .send(
                reqwest::Method::HEAD,
                "HEAD",
                &path,
                &[("ref", git_ref.to_string())],
                None,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(GitLabError::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates or updates the project's Berth webhook (push events only).
    pub async fn ensure_hook(&self, project: u64, url: &str, secret: &str) -> Result<u64> {
        let path = format!("/projects/{project}/hooks");
        let hooks: Vec<Hook> = {
            let resp = self
                .send(
                    reqwest::Method::GET,
                    "GET",
                    &path,
                    &[("per_page", "100".to_string())],
                    None,
                )
                .await?;
            self.json(resp, "GET", &path).await?
        };
        let body = serde_json::json!({
            "url": url,
            "token": secret,
            "push_events": true,
            "push_events_branch_filter": "",
            "tag_push_events": false,
            "merge_requests_events": true,
            "issues_events": false,
            "note_events": false,
            "pipeline_events": false,
            "job_events": false,
            "enable_ssl_verification": true,
        });
        match hooks.iter().find(|h| h.url == url) {
            Some(h) => {
                let p = format!("{path}/{}", h.id);
                self.send(reqwest::Method::PUT, "PUT", &p, &[], Some(&body))
                    .await?;
                Ok(h.id)
            }
            None => {
                let resp = self
                    .send(reqwest::Method::POST, "POST", &path, &[], Some(&body))
                    .await?;
                let hook: Hook = self.json(resp, "POST", &path).await?;
                Ok(hook.id)
            }
        }
    }

    /// `POST /user/runners` for a project runner with `tags`.
    pub async fn create_runner(
        &self,
        project: u64,
        description: &str,
        tags: &[String],
    ) -> Result<NewRunner> {
        let body = serde_json::json!({
            "runner_type": "project_type",
            "project_id": project,
            "description": description,
            "tag_list": tags.join(","),
            "run_untagged": tags.is_empty(),
            "locked": true,
        });
        let resp = self
            .send(
                reqwest::Method::POST,
                "POST",
                "/user/runners",
                &[],
                Some(&body),
            )
            .await?;
        self.json(resp, "POST", "/user/runners").await
    }

    /// `DELETE /runners/:id`; an already deleted runner is fine.
    pub async fn delete_runner(&self, id: u64) -> Result<()> {
        match self
            .send(
                reqwest::Method::DELETE,
                "DELETE",
                &format!("/runners/{id}"),
                &[],
                None,
            )
            .await
        {
            Ok(_) | Err(GitLabError::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Percent-encodes a path segment (`a/b` → `a%2Fb`), as GitLab wants for
/// namespaced ids and file paths.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode("students/2026"), "students%2F2026");
        assert_eq!(encode("workspace.yaml"), "workspace.yaml");
    }

    /// GitLab's event list, newest first: a tag push and another branch's
    /// push to the same commit do not name the pusher of `main`.
    #[tokio::test]
    async fn the_pusher_of_a_commit_is_read_from_the_push_events() {
        use wiremock::matchers::{method, path, query_param};
        let server = wiremock::MockServer::start().await;
        let sha = "a".repeat(40);
        let event = |author: &str, id: u64, ref_type: &str, git_ref: &str, to: &str| {
            serde_json::json!({
                "action_name": "pushed to", "author_id": id, "author_username": author,
                "push_data": {"ref_type": ref_type, "ref": git_ref, "commit_to": to}
            })
        };
        wiremock::Mock::given(method("GET"))
            .and(path("/api/v4/projects/9/events"))
            .and(query_param("action", "pushed"))
            .respond_with(
                wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!([
                    event("mallory", 3, "tag", "main", &sha),
                    event("mallory", 3, "branch", "other", &sha),
                    event("alice", 1, "branch", "main", &sha),
                    event("bob", 2, "branch", "main", &"b".repeat(40)),
                ])),
            )
            .mount(&server)
            .await;
        let gl = GitLab::new(&server.uri(), "t".into());
        assert_eq!(
            gl.pusher_of(9, "main", &sha).await.expect("events"),
            Some(Pusher {
                id: 1,
                username: "alice".into()
            })
        );
        assert_eq!(
            gl.pusher_of(9, "main", &"c".repeat(40))
                .await
                .expect("events"),
            None
        );
    }
}
