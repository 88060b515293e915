//! The student console, served by `reconciler serve` under `/`: log in
//! with the department account, see the workspace (live), read logs, open
//! a terminal, move files, start and stop containers, browse and download
//! images, manage registry tokens, see, download and delete their volumes,
//! see their usage,
//! download a kubeconfig; admins see every account, every volume, usage
//! and the audit log.
//!
//! It sits on the read model ([`crate::ops::view`], kept current by `serve`)
//! and on the narrow console operations of the Docker backend
//! ([`crate::backends::docker::Owned`]), whose ownership check is inside
//! them: a container is the session's when dockerd's `berth.owner` label
//! says so, never because a URL names it. Status pages never call Docker.
//! Pages are askama templates (checked at compile time); the JavaScript and
//! xterm.js are embedded.

mod admin;
mod assets;
mod chart;
mod containers;
mod downloads;
mod files;
mod framing;
mod gpus;
mod images;
mod logs;
mod notifications;
mod pages;
pub mod session;
mod slots;
mod terminal;
mod usage;
mod volumes;

pub use crate::store::Session;

use crate::clients::Context;
use crate::edges::login::Logins;
use crate::ops::catalogue::CatalogEntry;
use crate::ops::view::AccountView;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use session::Sessions;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{RwLock, broadcast};

/// Each account's view, as `serve` keeps it.
pub type Views = Arc<RwLock<BTreeMap<String, AccountView>>>;

/// What `serve` does for an account after a console action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FollowUp {
    /// Observe it again.
    View(String),
    /// Reconcile it (a GPU container's start goes through lending).
    Reconcile(String),
}

pub struct Console {
    pub ctx: Arc<Context>,
    pub views: Views,
    /// The image catalogue as last read.
    pub catalogue: Arc<RwLock<Vec<CatalogEntry>>>,
    /// Names of accounts whose view just changed.
    pub updates: broadcast::Sender<String>,
    pub logins: Arc<Logins>,
    /// Asks `serve` to observe an account again (after start/stop), or
    /// to reconcile it.
    pub refresh: tokio::sync::mpsc::Sender<FollowUp>,
    sessions: Sessions,
    /// Log streams and terminals open, per account.
    log_streams: Arc<slots::Slots>,
    terminals: Arc<slots::Slots>,
    /// Uploads in progress, per account: each holds a temporary file of
    /// up to `max_upload`.
    uploads: Arc<slots::Slots>,
    /// Volume downloads in progress, per account.
    volume_downloads: Arc<slots::Slots>,
}

impl Console {
    pub fn new(
        ctx: Arc<Context>,
        views: Views,
        catalogue: Arc<RwLock<Vec<CatalogEntry>>>,
        updates: broadcast::Sender<String>,
        logins: Arc<Logins>,
        refresh: tokio::sync::mpsc::Sender<FollowUp>,
    ) -> Console {
        let sessions = Sessions::new(&ctx.site);
        let console = &ctx.site.console;
        let log_streams = slots::Slots::new(console.max_log_streams as usize);
        let terminals = slots::Slots::new(console.max_terminals as usize);
        Console {
            log_streams,
            terminals,
            uploads: slots::Slots::new(UPLOADS_AT_ONCE),
            volume_downloads: slots::Slots::new(volumes::DOWNLOADS_AT_ONCE),
            ctx,
            views,
            catalogue,
            updates,
            logins,
            refresh,
            sessions,
        }
    }

    /// The request's live session, while its account is in good standing.
    /// The directory is asked again at every request (through its cache,
    /// `ldap.cache_ttl`): an account disabled, deleted or out of every
    /// allowed group loses its sessions, and an admin out of the admin
    /// group loses the admin pages, as registry tokens and CI credentials
    /// already did. A directory that does not answer (a timeout, an
    /// outage) leaves the session as it was: what the directory last said
    /// stands, and nobody is logged out by an LDAP blip; new logins need
    /// the directory anyway.
    async fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let cookie = headers.get(header::COOKIE)?.to_str().ok()?;
        let id = self.sessions.id_in(cookie)?;
        let mut s = self.sessions.get(&self.ctx.store, id).await?;
        match self
            .logins
            .member(&self.ctx.site, &self.ctx.directory, &s.account)
            .await
        {
            Ok(member) => {
                s.admin = member.admin;
                Some(s)
            }
            Err(crate::edges::login::LoginError::Refused) => {
                self.sessions.remove(&self.ctx.store, id).await;
                self.audit(
                    &s.account,
                    "console-session-ended",
                    "the account is no longer in good standing in the directory",
                );
                None
            }
            Err(e) => {
                tracing::warn!(account = %s.account, cause = %e, "console: the directory did not answer; the session stands as it was");
                Some(s)
            }
        }
    }

    /// Resolves once `account` is no longer in good standing, asked every
    /// [`STANDING_EVERY`]: what a session opened (a terminal, a log
    /// stream) ends with it. A directory that does not answer leaves it
    /// open: work in progress is not cut for an LDAP blip.
    async fn standing_lost(self: Arc<Self>, account: String) {
        let mut every = tokio::time::interval(STANDING_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(crate::edges::login::LoginError::Refused) = self
                .logins
                .member(&self.ctx.site, &self.ctx.directory, &account)
                .await
            {
                self.audit(
                    &account,
                    "console-session-ended",
                    "an open terminal or log stream: the account is no longer in good standing",
                );
                return;
            }
        }
    }

    /// The session of a state-changing request (a form post) whose CSRF
    /// token is right; otherwise why not, which answers as the login page
    /// or 403.
    async fn posted_session(
        &self,
        headers: &HeaderMap,
        csrf: Option<&str>,
    ) -> Result<Session, Refused> {
        let s = self.session(headers).await.ok_or(Refused::NoSession)?;
        if !csrf_ok(&s, headers, csrf) {
            return Err(Refused::Csrf);
        }
        Ok(s)
    }

    /// A failure of Docker, the registry or Kubernetes as a student sees
    /// it: what failed and an audit id. The error itself names hosts,
    /// endpoints and ids that are the site's business: it goes to the log
    /// and to the account's audit (`console-error`), for an admin.
    ///
    /// The one console write that runs on the caller's thread: the page
    /// needs the entry's number now, and it happens only when something
    /// already failed.
    fn failure(&self, account: &str, what: &str, e: &dyn std::fmt::Display) -> String {
        tracing::warn!(account, cause = %e, "console: {what} failed");
        let detail = format!("{what}: {e}");
        match self
            .ctx
            .store
            .audit(account, "console-error", None, &detail)
        {
            Ok(id) => format!("{what} failed; an admin can read audit #{id}"),
            Err(_) => format!("{what} failed; an admin can find why in Berth's log"),
        }
    }

    /// Audits a console event on the store's thread, in order, without
    /// waiting for it.
    fn audit(&self, account: &str, event: &str, detail: &str) {
        let (account, event, detail) = (account.to_string(), event.to_string(), detail.to_string());
        self.ctx.store.submit("console audit", move |s| {
            s.audit(&account, &event, None, &detail).map(drop)
        });
    }
}

/// How often an open terminal or log stream asks whether its account is
/// still in good standing.
const STANDING_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Uploads one account may have in progress at once.
const UPLOADS_AT_ONCE: usize = 2;

/// Room in an upload's request beyond the file for the form's other
/// fields and the multipart framing.
const UPLOAD_OVERHEAD: usize = 64 * 1024;

pub fn routes(console: Arc<Console>) -> axum::Router {
    use axum::routing::{get, post};
    // axum refuses bodies over 2 MiB unless told otherwise, which made
    // every upload past that a 400 whatever `console.max_upload` said.
    let upload_limit = axum::extract::DefaultBodyLimit::max(
        usize::try_from(
            console
                .ctx
                .site
                .console
                .max_upload
                .bytes()
                .unwrap_or(100 << 20),
        )
        .unwrap_or(usize::MAX)
        .saturating_add(UPLOAD_OVERHEAD),
    );
    axum::Router::new()
        .route("/", get(pages::workspace))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/my/workspace/fragment", get(pages::fragment))
        .route("/my/workspace/events", get(pages::events))
        .route("/my/containers/{name}/logs", get(logs::logs_page))
        .route("/my/containers/{name}/logs/stream", get(logs::logs_stream))
        .route("/my/workloads/{name}/logs", get(logs::workload_logs_page))
        .route(
            "/my/workloads/{name}/logs/stream",
            get(logs::workload_logs_stream),
        )
        .route(
            "/my/containers/{name}/terminal",
            get(terminal::terminal_page),
        )
        .route(
            "/my/containers/{name}/terminal/ws",
            get(terminal::terminal_ws),
        )
        .route(
            "/my/containers/{name}/files",
            get(files::files_page).post(axum::handler::Handler::layer(files::upload, upload_limit)),
        )
        .route("/my/containers/{name}/download", get(files::download))
        .route("/my/containers/{name}/{op}", post(containers::operate))
        .route("/my/gpus/{name}/extend", post(gpus::extend))
        .route("/my/images", get(images::page))
        .route("/my/images/archive", get(images::archive))
        .route("/my/tokens", post(images::create_token))
        .route("/my/tokens/revoke", post(images::revoke_token))
        .route("/my/images/delete", post(images::delete_image))
        .route("/my/usage", get(usage::mine))
        .route("/my/volumes", get(volumes::page))
        .route("/my/volumes/{name}/download", get(volumes::download))
        .route("/my/volumes/{name}/delete", post(volumes::delete))
        .route("/my/downloads", get(downloads::downloads))
        .route(
            "/my/notifications",
            get(notifications::page).post(axum::handler::Handler::layer(
                notifications::save,
                axum::extract::DefaultBodyLimit::max(notifications::FORM_LIMIT),
            )),
        )
        .route("/my/downloads/{file}", get(downloads::download_file))
        .route("/admin", get(admin::admin))
        .route("/admin/accounts/{account}", get(admin::admin_account))
        .route("/admin/audit", get(admin::audit))
        .route("/admin/volumes", get(volumes::admin_page))
        .route("/admin/usage", get(usage::admin))
        .route("/gpus", get(gpus::page))
        .route("/gpus/book", post(gpus::book))
        .route("/static/{*path}", get(assets::serve))
        .with_state(console)
}

/// Who is logged in, as pages show it.
#[derive(Clone, Debug)]
pub struct Me {
    pub account: String,
    pub admin: bool,
    pub csrf: String,
}

impl From<&Session> for Me {
    fn from(s: &Session) -> Me {
        Me {
            account: s.account.clone(),
            admin: s.admin,
            csrf: s.csrf.clone(),
        }
    }
}

fn render(t: impl askama::Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a console page");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Why a form post is refused before its handler looks at it.
enum Refused {
    NoSession,
    Csrf,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::NoSession => to_login(),
            Refused::Csrf => forbidden("missing or wrong CSRF token"),
        }
    }
}

fn to_login() -> Response {
    Redirect::to("/login").into_response()
}

#[derive(askama::Template)]
#[template(path = "not_found.html")]
struct NotFound {
    me: Option<Me>,
}

/// The one answer for a container that is missing *or* someone else's.
fn not_found(me: Option<Me>) -> Response {
    (StatusCode::NOT_FOUND, render(NotFound { me })).into_response()
}

/// A state-changing request must come from a page of this site: the
/// session's CSRF token, and no foreign `Origin`.
fn csrf_ok(session: &Session, headers: &HeaderMap, token: Option<&str>) -> bool {
    let given = token
        .map(str::to_string)
        .or_else(|| {
            headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    same_origin(headers, false) && crate::base::secret::same(&given, &session.csrf)
}

/// Whether `Origin` (required when `strict`) names the host asked.
fn same_origin(headers: &HeaderMap, strict: bool) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return !strict;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    !host.is_empty() && origin_host == host
}

/// 429 for one more of something an account may have only `max` of.
fn too_many(max: usize, what: &str) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        format!("you have {max} {what} open, the most one account may; close one first\n"),
    )
        .into_response()
}

fn forbidden(why: &str) -> Response {
    (StatusCode::FORBIDDEN, format!("{why}\n")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    fn session() -> Session {
        Session {
            account: "alice".into(),
            admin: false,
            csrf: "tok".into(),
            created: 0,
            seen: 0,
        }
    }

    #[test]
    fn a_state_change_needs_the_token_and_this_origin() {
        let s = session();
        let host = [("host", "berth.test")];
        assert!(csrf_ok(&s, &headers(&host), Some("tok")));
        assert!(!csrf_ok(&s, &headers(&host), None));
        assert!(!csrf_ok(&s, &headers(&host), Some("other")));
        assert!(csrf_ok(
            &s,
            &headers(&[("host", "berth.test"), ("x-csrf-token", "tok")]),
            None
        ));
        assert!(!csrf_ok(
            &s,
            &headers(&[("host", "berth.test"), ("origin", "http://evil.test")]),
            Some("tok")
        ));
        assert!(same_origin(
            &headers(&[
                ("host", "berth.test:8080"),
                ("origin", "http://berth.test:8080")
            ]),
            true
        ));
        assert!(
            !same_origin(&headers(&host), true),
            "a WebSocket must say where it comes from"
        );
    }
}
