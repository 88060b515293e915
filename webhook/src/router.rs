//! The HTTP surface: `POST /hooks/gitlab`. Health and metrics are the
//! reconciler's (it owns what they report).
//! The secret is checked first, in constant time, before the body is read;
//! then size, JSON, event kind, branch and duplicate checks, and finally a
//! `SyncRequest` handed to the sink. Every answer is immediate: the work
//! happens behind the sink.

use crate::dedupe::Dedupe;
use crate::event::{self, Event};
use crate::observe::{Observer, Outcome};
use crate::{SyncRequest, SyncSink};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use berth_spec::site::Repositories;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Webhook settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// The shared secret GitLab sends as `X-Gitlab-Token`.
    pub secret: String,
    /// Largest body accepted; larger ones get 413.
    pub max_body: usize,
    /// How many delivery ids are remembered for deduplication.
    pub dedupe_capacity: usize,
    /// Which project paths are workspaces, and whose
    /// ([`Repositories::account_of`]); pushes to any other project are
    /// answered 200 and ignored.
    pub repositories: Repositories,
}

impl Config {
    /// Workspaces are `<account>/workspace` until [`Config::repositories`]
    /// says otherwise.
    pub fn new(secret: impl Into<String>) -> Self {
        Config {
            secret: secret.into(),
            max_body: 2 * 1024 * 1024,
            dedupe_capacity: 65_536,
            repositories: Repositories::Local {
                root: String::new(),
                repository: "workspace".into(),
            },
        }
    }
}

struct AppState {
    config: Config,
    sink: Arc<dyn SyncSink>,
    observer: Arc<dyn Observer>,
    dedupe: Dedupe,
}

/// The router; mount it in any axum server.
pub fn router(config: Config, sink: Arc<dyn SyncSink>, observer: Arc<dyn Observer>) -> Router {
    let dedupe = Dedupe::new(config.dedupe_capacity);
    let state = Arc::new(AppState {
        config,
        sink,
        observer,
        dedupe,
    });
    Router::new()
        .route("/hooks/gitlab", post(hook))
        .with_state(state)
}

fn answer(status: StatusCode, body: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{{\"status\":\"{body}\"}}\n"),
    )
        .into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn authorized(headers: &HeaderMap, secret: &str) -> bool {
    match headers.get("x-gitlab-token") {
        // An empty configured secret never authenticates anything.
        Some(token) if !secret.is_empty() => token.as_bytes().ct_eq(secret.as_bytes()).into(),
        _ => false,
    }
}

async fn hook(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let m = |outcome| st.observer.delivery(outcome);
    let (parts, body) = req.into_parts();
    if !authorized(&parts.headers, &st.config.secret) {
        m(Outcome::Unauthorized);
        return answer(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let declared = header(&parts.headers, "content-length").and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > st.config.max_body) {
        m(Outcome::TooLarge);
        return answer(StatusCode::PAYLOAD_TOO_LARGE, "too large");
    }
    let bytes = match axum::body::to_bytes(Body::new(body), st.config.max_body).await {
        Ok(b) => b,
        Err(_) => {
            m(Outcome::TooLarge);
            return answer(StatusCode::PAYLOAD_TOO_LARGE, "too large");
        }
    };
    let kind = header(&parts.headers, "x-gitlab-event").unwrap_or("");
    let event = match event::parse(kind, &bytes) {
        Ok(e) => e,
        Err(_) => {
            m(Outcome::Malformed);
            return answer(StatusCode::BAD_REQUEST, "malformed");
        }
    };
    let id = header(&parts.headers, "x-gitlab-event-uuid")
        .or_else(|| header(&parts.headers, "idempotency-key"));
    if let Some(id) = id
        && !st.dedupe.first_time(id)
    {
        m(Outcome::Duplicate);
        tracing::debug!(delivery = id, "duplicate delivery ignored");
        return answer(StatusCode::OK, "duplicate");
    }
    let push = match event {
        Event::Push(p) => p,
        Event::MergeRequest(mr) => return merge_request(&st, mr, id, &m),
        Event::Ignored(why) => {
            m(Outcome::Ignored);
            tracing::debug!(kind, why, "event ignored");
            return answer(StatusCode::OK, "ignored");
        }
    };
    // Not a workspace of this site: no LDAP lookup, no clone, no retry.
    let path = push.project.path_with_namespace.as_str();
    let Some(namespace) = st.config.repositories.account_of(path) else {
        m(Outcome::NotAWorkspace);
        tracing::debug!(
            project = path,
            "push to a project that is no workspace ignored"
        );
        return answer(StatusCode::OK, "ignored");
    };
    let repository = st.config.repositories.repository();
    if !push.to_default_branch() {
        // Another branch: a preview of what it would do, applied never.
        let Some(branch) = push.branch().filter(|_| !push.deletes_branch()) else {
            m(Outcome::Ignored);
            return answer(StatusCode::OK, "ignored");
        };
        st.sink.submit(SyncRequest {
            account: namespace.to_string(),
            repository: repository.to_string(),
            project_id: Some(push.project_id),
            path: Some(path.to_string()),
            revision: Some(
                push.checkout_sha
                    .clone()
                    .unwrap_or_else(|| push.after.clone()),
            ),
            pusher: Some(push.user_username.clone()),
            pusher_id: Some(push.user_id),
            delivery: id.map(str::to_string),
            preview: Some(crate::Preview {
                git_ref: branch.to_string(),
                merge_request: None,
            }),
        });
        m(Outcome::Queued);
        return answer(StatusCode::ACCEPTED, "preview queued");
    }
    // A deleted default branch is not a revision: resync the account so
    // status reflects it, without asking for any revision.
    let revision = (!push.deletes_branch()).then(|| {
        push.checkout_sha
            .clone()
            .unwrap_or_else(|| push.after.clone())
    });
    st.sink.submit(SyncRequest {
        account: namespace.to_string(),
        repository: repository.to_string(),
        project_id: Some(push.project_id),
        path: Some(path.to_string()),
        revision,
        pusher: Some(push.user_username.clone()),
        pusher_id: Some(push.user_id),
        delivery: id.map(str::to_string),
        preview: None,
    });
    m(Outcome::Queued);
    answer(StatusCode::ACCEPTED, "queued")
}

/// A merge request into a workspace's default branch: queue its preview.
fn merge_request(
    st: &AppState,
    mr: crate::event::MergeRequestEvent,
    id: Option<&str>,
    m: &dyn Fn(Outcome),
) -> Response {
    let path = mr.project.path_with_namespace.as_str();
    let Some(namespace) = st.config.repositories.account_of(path) else {
        m(Outcome::NotAWorkspace);
        return answer(StatusCode::OK, "ignored");
    };
    if !mr.wants_preview() {
        m(Outcome::Ignored);
        return answer(StatusCode::OK, "ignored");
    }
    st.sink.submit(SyncRequest {
        account: namespace.to_string(),
        repository: st.config.repositories.repository().to_string(),
        project_id: Some(mr.project.id),
        path: Some(path.to_string()),
        revision: Some(mr.object_attributes.last_commit.id.clone()),
        pusher: Some(mr.user.username.clone()),
        pusher_id: mr.user.id,
        delivery: id.map(str::to_string),
        preview: Some(crate::Preview {
            git_ref: mr.head_ref(),
            merge_request: Some(mr.object_attributes.iid),
        }),
    });
    m(Outcome::Queued);
    answer(StatusCode::ACCEPTED, "preview queued")
}
