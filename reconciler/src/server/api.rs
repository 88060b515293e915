//! The HTTP API beside the webhook: `GET /healthz`, `GET /metrics`,
//! `GET /images` (the shared catalogue to
//! anyone, all of it to the admin credential) and the read model,
//! `GET /api/v1/accounts` and `GET /api/v1/accounts/{account}` (admin
//! credential; the same JSON as `reconciler status --output json`). Every
//! answer comes from memory: no request costs a Docker, Kubernetes or
//! registry call.

use super::Shared;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

pub(super) fn routes(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .route("/images", get(serve_catalogue))
        .route("/api/v1/accounts", get(accounts))
        .route("/api/v1/accounts/{account}", get(one_account))
        .with_state(shared)
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
        axum::Json(serde_json::json!({ "shared": crate::images::shared_view(&entries) }))
    }
}

/// Whether the request carries the admin token as `Authorization: Bearer`,
/// compared in constant time. No configured token admits nobody.
pub(crate) fn is_admin(headers: &HeaderMap, token: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
    let Some(token) = token else { return false };
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| bool::from(given.trim().as_bytes().ct_eq(token.as_bytes())))
}

/// `GET /healthz`: 200 `ok`, or 503 naming what is broken (the state store
/// file and SQLite's reason), so a supervisor notices.
async fn health(State(shared): State<Arc<Shared>>) -> Response {
    let fault = shared
        .store_fault
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    match fault {
        None => "ok\n".into_response(),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
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

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(serde_json::json!({ "error": "the admin token is required" })),
    )
        .into_response()
}

/// `GET /api/v1/accounts`: every account's view.
async fn accounts(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !is_admin(&headers, shared.admin_token.as_deref()) {
        return unauthorized();
    }
    let views = shared.views.read().await;
    let list: Vec<_> = views.values().collect();
    axum::Json(serde_json::json!({ "accounts": list })).into_response()
}

/// `GET /api/v1/accounts/{account}`: one account's view, 404 when unknown.
async fn one_account(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !is_admin(&headers, shared.admin_token.as_deref()) {
        return unauthorized();
    }
    match shared.views.read().await.get(&account) {
        Some(v) => axum::Json(serde_json::json!({ "accounts": [v] })).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({ "error": "no such account" })),
        )
            .into_response(),
    }
}
