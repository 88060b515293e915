//! Logs of the account's Docker containers and Kubernetes workloads: the
//! last lines, then following, as server-sent events, until the page goes
//! away (the backend's stream is dropped with it).

use super::containers::{Use, audit_use, denied, owned};
use super::framing::{Framer, MAX_LINE};
use super::{Console, Me, Session, render, to_login, too_many};
use crate::backends::docker::ByteStream;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use std::sync::Arc;

#[derive(askama::Template)]
#[template(path = "logs.html")]
struct LogsPage {
    me: Option<Me>,
    name: String,
    tail: u32,
    stream: String,
    initial: String,
}

const TAIL: u32 = 200;

/// Which of the account's workloads a log page is about.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Docker,
    Kubernetes,
}

impl Kind {
    fn base(self, name: &str) -> String {
        match self {
            Kind::Docker => format!("/my/containers/{name}"),
            Kind::Kubernetes => format!("/my/workloads/{name}"),
        }
    }
}

/// The log stream of the account's container or Deployment `name`.
async fn log_stream(
    c: &Console,
    s: &Session,
    kind: Kind,
    name: &str,
    follow: bool,
) -> Option<ByteStream> {
    match kind {
        Kind::Docker => {
            let (backend, container) = owned(c, s, name, Use::Logs).await?;
            // The owner's own reading is not audited; a grantee's is, in
            // both logs (the page once, not its live stream).
            if container.account != s.account && !follow {
                audit_use(c, s, &container, "console-logs", &format!("read `{name}`"));
            }
            Some(backend.logs_owned(&container, TAIL, follow))
        }
        Kind::Kubernetes => {
            let cluster = c.ctx.kube.as_ref()?;
            let namespace = cluster.settings.namespace(&s.account);
            let observed = {
                let views = c.views.read().await;
                views.get(&s.account)?.containers.iter().any(|ct| {
                    ct.backend == "kubernetes" && ct.container == format!("{namespace}/{name}")
                })
            };
            if !observed {
                return None;
            }
            let backend = cluster.backend.as_ref().ok()?;
            match backend
                .workload_logs(&s.account, &namespace, name, i64::from(TAIL), follow)
                .await
            {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(cause = %e, workload = name, "console: Kubernetes logs");
                    None
                }
            }
        }
    }
}

async fn logs_page_for(c: Arc<Console>, kind: Kind, name: String, headers: HeaderMap) -> Response {
    let Some(s) = c.session(&headers).await else {
        return to_login();
    };
    // Ownership is checked by opening the stream (closed at once).
    if log_stream(&c, &s, kind, &name, false).await.is_none() {
        return denied(&c, &s, &name, "logs");
    }
    render(LogsPage {
        me: Some(Me::from(&s)),
        stream: format!("{}/logs/stream", kind.base(&name)),
        name,
        tail: TAIL,
        initial: String::new(),
    })
}

pub(super) async fn logs_page(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    logs_page_for(c, Kind::Docker, name, headers).await
}

pub(super) async fn workload_logs_page(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    logs_page_for(c, Kind::Kubernetes, name, headers).await
}

#[derive(serde::Deserialize)]
pub(super) struct FollowQuery {
    follow: Option<bool>,
}

/// Server-sent events, one per log line: the last lines, then following
/// (unless `follow=false`) until the page goes away; the backend's stream
/// is dropped with it.
async fn logs_stream_for(
    c: Arc<Console>,
    kind: Kind,
    name: String,
    follow: bool,
    headers: HeaderMap,
) -> Response {
    let Some(s) = c.session(&headers).await else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let Some(slot) = c.log_streams.take(&s.account) else {
        return too_many(c.log_streams.max(), "log streams");
    };
    let Some(chunks) = log_stream(&c, &s, kind, &name, follow).await else {
        return denied(&c, &s, &name, "logs");
    };
    // The stream ends with the account's good standing.
    let lost = Box::pin(c.clone().standing_lost(s.account.clone()));
    let (console, account) = (c.clone(), s.account.clone());
    let failed = move |e: &std::io::Error| console.failure(&account, "the log stream", e);
    let lines = chunks
        .take_until(lost)
        .scan(Framer::new(MAX_LINE), move |framer, chunk| {
            // The place is given back when the page goes and the stream
            // (and this closure with it) is dropped.
            let _held = &slot;
            let out = match chunk {
                Ok(bytes) => framer.push(&bytes),
                Err(e) => vec![format!("[berth: {}]", failed(&e))],
            };
            futures::future::ready(Some(out))
        })
        .flat_map(futures::stream::iter)
        .map(|line| Ok::<_, std::convert::Infallible>(Event::default().data(line)));
    Sse::new(lines)
        .keep_alive(KeepAlive::default())
        .into_response()
}

pub(super) async fn logs_stream(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    Query(q): Query<FollowQuery>,
    headers: HeaderMap,
) -> Response {
    logs_stream_for(c, Kind::Docker, name, q.follow.unwrap_or(true), headers).await
}

pub(super) async fn workload_logs_stream(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    Query(q): Query<FollowQuery>,
    headers: HeaderMap,
) -> Response {
    logs_stream_for(c, Kind::Kubernetes, name, q.follow.unwrap_or(true), headers).await
}
