//! The admin's pages: every account (from the read model) and each
//! account's workspace page, read-only, and the audit log with filters.
//! Anyone else gets the 404 of a page that does not exist.

use super::pages::{WorkspaceFragment, WorkspacePage, workspace_model};
use super::{Console, Me, not_found, render};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use std::sync::Arc;

pub(super) struct AdminRow {
    pub account: String,
    pub revision: String,
    pub containers: usize,
    pub not_running: usize,
    pub last_error: String,
}

#[derive(askama::Template)]
#[template(path = "admin.html")]
struct AdminPage {
    me: Option<Me>,
    accounts: Vec<AdminRow>,
}

pub(super) async fn admin(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some(s) = c.session(&headers).await.filter(|s| s.admin) else {
        return not_found(None);
    };
    let views = c.views.read().await;
    let accounts = views
        .values()
        .map(|v| AdminRow {
            account: v.account.clone(),
            revision: v
                .revision
                .as_deref()
                .map(|r| r.chars().take(12).collect())
                .unwrap_or_else(|| "none".into()),
            containers: v.containers.len(),
            not_running: v.containers.iter().filter(|c| c.state != "running").count(),
            last_error: v
                .last_error
                .as_deref()
                .map(|e| e.lines().next().unwrap_or("").chars().take(160).collect())
                .unwrap_or_default(),
        })
        .collect();
    render(AdminPage {
        me: Some(Me::from(&s)),
        accounts,
    })
}

#[derive(serde::Deserialize)]
pub(super) struct AdminAccountQuery {
    fragment: Option<String>,
}

pub(super) async fn admin_account(
    State(c): State<Arc<Console>>,
    Path(account): Path<String>,
    Query(q): Query<AdminAccountQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(s) = c.session(&headers).await.filter(|s| s.admin) else {
        return not_found(None);
    };
    let me = Me::from(&s);
    let views = c.views.read().await;
    let Some(view) = views.get(&account) else {
        return not_found(Some(me));
    };
    let ws = workspace_model(&c, Some(view), &account, &me, &headers);
    if q.fragment.is_some() {
        return render(WorkspaceFragment { ws });
    }
    render(WorkspacePage {
        me: Some(me),
        ws,
        shared: vec![],
    })
}

pub(super) struct AuditRow {
    pub at: String,
    pub account: String,
    pub event: String,
    pub detail: String,
}

#[derive(askama::Template)]
#[template(path = "audit.html")]
struct AuditPage {
    me: Option<Me>,
    account: String,
    event: String,
    since: String,
    entries: Vec<AuditRow>,
}

#[derive(serde::Deserialize)]
pub(super) struct AuditQuery {
    account: Option<String>,
    event: Option<String>,
    since: Option<String>,
}

pub(super) async fn audit(
    State(c): State<Arc<Console>>,
    Query(q): Query<AuditQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(s) = c.session(&headers).await.filter(|s| s.admin) else {
        return not_found(None);
    };
    let account = q.account.unwrap_or_default();
    let event = q.event.unwrap_or_default();
    let since = q.since.unwrap_or_default();
    let only = (!account.is_empty()).then(|| account.clone());
    let log = c
        .ctx
        .store
        .call(move |s| s.audit_log(only.as_deref(), 2000))
        .await
        .unwrap_or_default();
    let entries = log
        .into_iter()
        .filter(|e| event.is_empty() || e.event.contains(event.as_str()))
        .map(|e| AuditRow {
            at: crate::ops::view::rfc3339(e.at),
            account: e.account,
            event: e.event,
            detail: e.detail,
        })
        // RFC 3339 UTC strings order as the times do.
        .filter(|e| since.is_empty() || e.at.as_str() >= since.as_str())
        .take(500)
        .collect();
    render(AuditPage {
        me: Some(Me::from(&s)),
        account,
        event,
        since,
        entries,
    })
}
