//! GitLab as the tests see it: push events as GitLab documents them, users
//! with their LDAP identities (`GET /users/:id` on the mock), and the
//! commit statuses Berth posted.

use crate::fixture::World;

/// A push event as GitLab documents it, for `<account>/workspace`.
pub fn push_event(account: &str, revision: &str, pusher: &str) -> String {
    serde_json::json!({
        "object_kind": "push",
        "event_name": "push",
        "before": "0000000000000000000000000000000000000001",
        "after": revision,
        "ref": "refs/heads/main",
        "checkout_sha": revision,
        "user_id": user_id(pusher),
        "user_name": pusher,
        "user_username": pusher,
        "user_email": "",
        "project_id": 1000,
        "project": {
            "id": 1000,
            "name": "workspace",
            "path_with_namespace": format!("{account}/workspace"),
            "default_branch": "main",
        },
        "commits": [],
        "total_commits_count": 1,
    })
    .to_string()
}

/// GitLab user ids handed out to pushers, so the mock's `GET /users/:id`
/// answers with the right LDAP identity.
static USERS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// The GitLab user id of `username` in test push events (stable per run).
pub fn user_id(username: &str) -> u64 {
    let mut users = USERS.lock().unwrap_or_else(|p| p.into_inner());
    let index = match users.iter().position(|u| u == username) {
        Some(i) => i,
        None => {
            users.push(username.to_string());
            users.len() - 1
        }
    };
    1000 + index as u64
}

/// Answers `GET /api/v4/users/:id` as GitLab does for an admin token: the
/// user, with an `ldapmain` identity whose `extern_uid` is its directory DN.
/// Users listed in `local_only` are local GitLab accounts without one.
pub struct GitLabUsers {
    pub ldap_base: String,
    pub local_only: Vec<String>,
}

impl wiremock::Respond for GitLabUsers {
    fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let id: Option<u64> = request
            .url
            .path()
            .rsplit('/')
            .next()
            .and_then(|id| id.parse().ok());
        let users = USERS.lock().unwrap_or_else(|p| p.into_inner());
        let Some(name) = id
            .and_then(|id| id.checked_sub(1000))
            .and_then(|i| users.get(i as usize))
        else {
            return wiremock::ResponseTemplate::new(404)
                .set_body_json(serde_json::json!({"message": "404 User Not Found"}));
        };
        let identities = if self.local_only.contains(name) {
            serde_json::json!([])
        } else {
            serde_json::json!([{
                "provider": "ldapmain",
                "extern_uid": format!("uid={name},ou=people,{}", self.ldap_base),
                "saml_provider_id": null
            }])
        };
        wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "id": id,
            "username": name,
            "name": name,
            "state": "active",
            "identities": identities,
        }))
    }
}

impl World {
    /// Points the site at the GitLab mock `gl` and serves its users with
    /// their LDAP identities.
    pub async fn use_gitlab(&mut self, gl: &wiremock::MockServer) {
        self.site_overrides.gitlab = Some(gl.uri());
        wiremock::Mock::given(wiremock::matchers::method("GET"))
            .and(wiremock::matchers::path_regex(r"^/api/v4/users/\d+$"))
            .respond_with(GitLabUsers {
                ldap_base: self.services.ldap_base.clone(),
                local_only: vec![],
            })
            .with_priority(1)
            .mount(gl)
            .await;
    }
}

/// (state, description) of every commit status the GitLab mock got for
/// `sha`, in order.
pub async fn statuses(gl: &wiremock::MockServer, sha: &str) -> Vec<(String, String)> {
    gl.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path().ends_with(sha))
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        .map(|v| {
            (
                v["state"].as_str().unwrap_or_default().to_string(),
                v["description"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Waits (30 s at most) until a `state` status for `sha` arrived; returns
/// every status for `sha` so far.
pub async fn wait_status(
    gl: &wiremock::MockServer,
    sha: &str,
    state: &str,
) -> Vec<(String, String)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let got = statuses(gl, sha).await;
        if got.iter().any(|(s, _)| s == state) {
            return got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no `{state}` status for {sha}: {got:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A GitLab mock that accepts commit statuses (201), for tests that only
/// read what Berth posted.
pub async fn statuses_mock() -> wiremock::MockServer {
    let gl = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path_regex(r"/statuses/"))
        .respond_with(
            wiremock::ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 1})),
        )
        .mount(&gl)
        .await;
    gl
}

/// [`statuses_mock`] that also registers one project runner (`id`,
/// `token`), for tests whose account enables its runner.
pub async fn runner_mock(id: u64, token: &str) -> wiremock::MockServer {
    let gl = statuses_mock().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/api/v4/user/runners"))
        .respond_with(
            wiremock::ResponseTemplate::new(201)
                .set_body_json(serde_json::json!({"id": id, "token": token})),
        )
        .mount(&gl)
        .await;
    gl
}

impl World {
    /// Enables `account`'s runner through an authenticated push to `server`
    /// and waits until its container runs; returns the container's name.
    pub fn start_runner(&self, server: &crate::server::Server, account: &str) -> String {
        let rev = self.commit(
            account,
            Some("version: 1\nrunner:\n  enabled: true\n  tags: [docker]\n"),
            &self.mail(account),
        );
        let uuid = format!("runner-{rev}");
        assert_eq!(
            server.push(
                account,
                &rev,
                account,
                &uuid,
                crate::fixture::WEBHOOK_SECRET
            ),
            202
        );
        let runner = format!("{account}.runner");
        crate::wait_for(
            std::time::Duration::from_secs(30),
            "the runner container to run",
            || {
                (self.inspect(&runner, "{{.State.Running}}").as_deref() == Some("true"))
                    .then_some(())
            },
        );
        runner
    }
}

/// The project event list as `GET /projects/:id/events?action=pushed`
/// answers it, newest first: the pushes a test recorded, with who pushed.
#[derive(Clone, Default)]
pub struct PushEvents(std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>);

impl PushEvents {
    /// Records that `pusher` pushed `branch` to `sha`.
    pub fn record(&self, sha: &str, branch: &str, pusher: &str) {
        let event = serde_json::json!({
            "id": 1,
            "project_id": 1000,
            "action_name": "pushed to",
            "target_type": null,
            "author_id": user_id(pusher),
            "author": { "id": user_id(pusher), "username": pusher, "name": pusher },
            "author_username": pusher,
            "push_data": {
                "commit_count": 1,
                "action": "pushed",
                "ref_type": "branch",
                "commit_from": null,
                "commit_to": sha,
                "ref": branch,
                "commit_title": "change"
            }
        });
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(0, event);
    }
}

impl wiremock::Respond for PushEvents {
    fn respond(&self, _: &wiremock::Request) -> wiremock::ResponseTemplate {
        let events = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        wiremock::ResponseTemplate::new(200).set_body_json(events)
    }
}
