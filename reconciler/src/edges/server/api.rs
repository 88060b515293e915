//! The HTTP API beside the webhook: `GET /healthz`, `GET /metrics`,
//! `GET /images` (the shared catalogue to
//! anyone, all of it to the admin credential) and the read model,
//! `GET /api/v1/accounts` and `GET /api/v1/accounts/{account}` (admin
//! credential; the same JSON as `reconciler status --output json`), and
//! the audit log: `GET /api/v1/audit` (newest first, like `reconciler
//! audit --output json`) and `GET /api/v1/audit/events`, a server-sent
//! event stream of each line as it is written (admin credential), and
//! `GET /api/v1/usage` (the report of `reconciler usage`). Every
//! answer comes from memory or the state store: no request costs a
//! Docker, Kubernetes or registry call.

use super::Shared;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

pub(super) fn routes(shared: Arc<Shared>) -> axum::Router {
    // Everything under /api/v1 is the admin's: one gate for all of it, so
    // an endpoint added later cannot forget the check.
    let admin = axum::Router::new()
        .route("/api/v1/accounts", get(accounts))
        .route("/api/v1/accounts/{account}", get(one_account))
        .route("/api/v1/audit", get(audit_log))
        .route("/api/v1/audit/events", get(audit_events))
        .route("/api/v1/usage", get(usage))
        .route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            require_admin,
        ));
    axum::Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .route("/images", get(serve_catalogue))
        .merge(admin)
        .with_state(shared)
}

/// 401 for any request to the admin API without the admin token.
async fn require_admin(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !is_admin(request.headers(), shared.admin_token.as_deref()) {
        return (
            [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
            error(StatusCode::UNAUTHORIZED, "the admin token is required"),
        )
            .into_response();
    }
    next.run(request).await
}

#[derive(serde::Deserialize)]
struct UsageQuery {
    from: Option<String>,
    to: Option<String>,
    by: Option<crate::ops::usage::By>,
}

/// `GET /api/v1/usage?from=&to=&by=account|group|course`: the JSON of
/// `reconciler usage --output json`.
async fn usage(State(shared): State<Arc<Shared>>, Query(q): Query<UsageQuery>) -> Response {
    let (from, to) = match crate::ops::usage::range(
        q.from.as_deref(),
        q.to.as_deref(),
        jiff::Timestamp::now(),
    ) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let by = q.by.unwrap_or(crate::ops::usage::By::Account);
    match crate::ops::usage::report(&shared.ctx, from, to, by).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// An API error: the status and `{"error": message}`.
fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// `GET /images`: the shared catalogue (repositories, tags, descriptions,
/// how many accounts use each; never who) to anyone; every image with its
/// owner and users only to the admin credential.
async fn serve_catalogue(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> axum::Json<serde_json::Value> {
    let entries = shared.catalogue.read().await;
    if is_admin(&headers, shared.admin_token.as_deref()) {
        axum::Json(serde_json::json!({ "images": *entries }))
    } else {
        axum::Json(serde_json::json!({ "shared": crate::ops::catalogue::shared_view(&entries) }))
    }
}

/// Whether the request carries the admin token as `Authorization: Bearer`,
/// compared in constant time. No configured token admits nobody.
pub(crate) fn is_admin(headers: &HeaderMap, token: Option<&str>) -> bool {
    let Some(token) = token else { return false };
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| crate::base::secret::same(given.trim(), token))
}

/// `GET /healthz`: 200 `ok`, or 503 saying what is broken so a supervisor
/// notices. Anyone may ask, so only the admin token is told the details
/// (the state store's file and SQLite's reason).
async fn health(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let fault = shared
        .store_fault
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    match fault {
        None => "ok\n".into_response(),
        Some(why) if is_admin(&headers, shared.admin_token.as_deref()) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response()
        }
        Some(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the state store cannot be written (details with the admin token, or in `reconciler status`)\n",
        )
            .into_response(),
    }
}

/// `GET /metrics`: the OpenMetrics text exposition.
async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.render(),
    )
        .into_response()
}

/// `GET /api/v1/accounts`: every account's view.
async fn accounts(State(shared): State<Arc<Shared>>) -> Response {
    let views = shared.views.read().await;
    let list: Vec<_> = views.values().collect();
    axum::Json(serde_json::json!({ "accounts": list })).into_response()
}

/// `GET /api/v1/accounts/{account}`: one account's view, 404 when unknown.
async fn one_account(State(shared): State<Arc<Shared>>, Path(account): Path<String>) -> Response {
    match shared.views.read().await.get(&account) {
        Some(v) => axum::Json(serde_json::json!({ "accounts": [v] })).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such account"),
    }
}

#[derive(Debug, serde::Deserialize)]
struct AuditQuery {
    account: Option<String>,
    #[serde(default = "default_audit_limit")]
    limit: usize,
    /// Stream lines written after this id (as `Last-Event-ID` does).
    after: Option<i64>,
}

fn default_audit_limit() -> usize {
    50
}

/// Most lines one `GET /api/v1/audit` returns.
const MAX_AUDIT_LIMIT: usize = 10_000;

fn store_error(e: crate::store::StoreError) -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("state store: {e}"),
    )
}

/// `GET /api/v1/audit?account=A&limit=N`: the newest `limit` lines.
async fn audit_log(State(shared): State<Arc<Shared>>, Query(q): Query<AuditQuery>) -> Response {
    let limit = q.limit.min(MAX_AUDIT_LIMIT);
    let account = q.account.clone();
    match shared
        .ctx
        .store
        .call(move |s| s.audit_log(account.as_deref(), limit))
        .await
    {
        Ok(entries) => axum::Json(serde_json::json!({ "entries": entries })).into_response(),
        Err(e) => store_error(e),
    }
}

/// How often the event stream looks for new lines. The store is polled,
/// not signalled, because other processes write it too (`reconciler
/// apply`, `drain`, `wake` run beside `serve`).
const AUDIT_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// `GET /api/v1/audit/events?account=A`: `text/event-stream`, one `audit`
/// event per line written from now on (or after `Last-Event-ID` /
/// `?after=`), its `id` the line's id and its data the line's JSON; an
/// `action-started` line is sent again, same id, when the action ends.
async fn audit_events(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<AuditQuery>,
    headers: HeaderMap,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(q.after);
    let account = q.account.clone();
    let cursor = match shared
        .ctx
        .store
        .call(move |store| match resume {
            Some(after) => crate::store::AuditCursor::resume(store, account, after),
            None => crate::store::AuditCursor::from_now(store, account),
        })
        .await
    {
        Ok(c) => c,
        Err(e) => return store_error(e),
    };
    let pending: std::collections::VecDeque<crate::store::AuditEntry> = Default::default();
    let stream = futures::stream::unfold(
        (shared, cursor, pending),
        |(shared, mut cursor, mut pending)| async move {
            loop {
                if let Some(entry) = pending.pop_front() {
                    let event = Event::default()
                        .event("audit")
                        .id(entry.id.to_string())
                        .json_data(&entry);
                    return Some((event, (shared, cursor, pending)));
                }
                tokio::time::sleep(AUDIT_POLL).await;
                let (back, polled) = shared
                    .ctx
                    .store
                    .call(move |s| {
                        let polled = cursor.poll(s);
                        (cursor, polled)
                    })
                    .await;
                cursor = back;
                match polled {
                    Ok(new) => pending.extend(new),
                    // A store that cannot be read now may be readable at the
                    // next poll; /healthz reports the fault meanwhile.
                    Err(e) => tracing::warn!(cause = %e, "audit event stream: reading the store"),
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
