//! The console's pages that read: logging in and out, and the workspace
//! (and its live updates), from the read model; none calls Docker.

use super::{Console, Me, forbidden, render, to_login};
use crate::edges::login::LoginError;
use crate::ops::view::AccountView;
use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(askama::Template)]
#[template(path = "login.html")]
struct LoginPage {
    me: Option<Me>,
    error: Option<String>,
    user: String,
}

pub(super) async fn login_form(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if c.session(&headers).await.is_some() {
        return Redirect::to("/").into_response();
    }
    render(LoginPage {
        me: None,
        error: None,
        user: String::new(),
    })
}

#[derive(serde::Deserialize)]
pub(super) struct Credentials {
    username: String,
    password: String,
}

pub(super) async fn login(
    State(c): State<Arc<Console>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<Credentials>,
) -> Response {
    if !super::same_origin(&headers, false) {
        return forbidden("cross-site login refused");
    }
    let user = form.username.trim().to_string();
    let ctx = &c.ctx;
    // Behind a trusted proxy the peer is the proxy: the client is the
    // address it forwarded, for the throttle and for the audit alike.
    let from = c.logins.proxies.client(client.ip(), &headers);
    let result = c
        .logins
        .attempt(
            &user,
            from,
            c.logins
                .password(&ctx.site, &ctx.directory, &user, &form.password),
        )
        .await;
    let failed = |status: StatusCode, error: String| {
        (
            status,
            render(LoginPage {
                me: None,
                error: Some(error),
                user: user.clone(),
            }),
        )
            .into_response()
    };
    match result {
        Ok(member) => {
            let (id, _) = c.sessions.create(&ctx.store, &user, member.admin).await;
            c.audit(&user, "console-login", &format!("from {from}"));
            // A login is use: it holds dormancy off.
            let who = user.clone();
            c.ctx.store.submit("console activity", move |s| {
                s.touch_activity(&who, crate::store::now())
            });
            (
                [(header::SET_COOKIE, c.sessions.cookie(&id))],
                Redirect::to("/"),
            )
                .into_response()
        }
        Err(e @ LoginError::Refused) => failed(StatusCode::UNAUTHORIZED, e.to_string()),
        Err(e @ LoginError::Throttled(_)) => failed(StatusCode::TOO_MANY_REQUESTS, e.to_string()),
        Err(e) => {
            tracing::warn!(cause = %e, "console login");
            failed(
                StatusCode::SERVICE_UNAVAILABLE,
                "the directory cannot check passwords right now; try again in a minute".into(),
            )
        }
    }
}

#[derive(serde::Deserialize)]
pub(super) struct CsrfForm {
    csrf: Option<String>,
}

pub(super) async fn logout(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = c.posted_session(&headers, form.csrf.as_deref()).await {
        return refused.into_response();
    }
    if let Some(id) = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| c.sessions.id_in(h))
    {
        c.sessions.remove(&c.ctx.store, id).await;
    }
    (
        [(header::SET_COOKIE, c.sessions.cookie(""))],
        Redirect::to("/login"),
    )
        .into_response()
}

/// A published port as a page shows it.
pub(super) struct Port {
    pub text: String,
    pub url: Option<String>,
}

/// One container row.
pub(super) struct Row {
    pub name: String,
    pub short: String,
    pub full: String,
    pub base: String,
    pub state: String,
    pub image: String,
    pub ports: Vec<Port>,
    pub gpu: Option<String>,
    pub ready: Option<String>,
    pub url: Option<String>,
    pub runner: bool,
    pub enter: bool,
    pub docker: bool,
    pub running: bool,
    pub culled: Option<String>,
    pub stops_at: Option<String>,
    pub why: Option<String>,
}

/// What the workspace page shows.
pub(super) struct Workspace {
    pub account: String,
    pub readonly: bool,
    pub csrf: String,
    pub revision: Option<String>,
    pub accepted_at: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub warnings: Vec<String>,
    /// GPU containers: (container, lent or waiting, the sentence).
    pub gpus: Vec<(String, String, String)>,
    pub rows: Vec<Row>,
    pub events_url: String,
    pub fragment_url: String,
}

/// The host students reach a port at: the endpoint's `public_host`, its
/// bind address unless a wildcard, else the host this page was asked on.
fn public_host(c: &Console, endpoint: Option<&str>, bound: &str, headers: &HeaderMap) -> String {
    let ep = endpoint.and_then(|e| {
        c.ctx
            .site
            .backends
            .docker
            .iter()
            .find(|d| d.name.value == e)
    });
    if let Some(h) = ep.and_then(|e| e.public_host.clone()) {
        return h;
    }
    if !bound.is_empty() && bound != "0.0.0.0" && bound != "::" {
        return bound.to_string();
    }
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(|h| h.rsplit_once(':').map(|(h, _)| h).unwrap_or(h).to_string())
        .unwrap_or_else(|| "localhost".into())
}

pub(super) fn workspace_model(
    c: &Console,
    view: Option<&AccountView>,
    account: &str,
    session: &Me,
    headers: &HeaderMap,
) -> Workspace {
    let readonly = session.account != account;
    let http = &c.ctx.site.console.http_ports;
    let rows = view
        .map(|v| {
            v.containers
                .iter()
                .map(|ct| {
                    let docker = ct.backend == "docker";
                    let ports = ct
                        .ports
                        .iter()
                        .map(|p| {
                            // `host_ip:host_port->container_port`
                            let (host, cport) = p.split_once("->").unwrap_or((p.as_str(), ""));
                            let (ip, hport) = host.rsplit_once(':').unwrap_or(("", host));
                            let shown = public_host(c, ct.endpoint.as_deref(), ip, headers);
                            let is_http = cport.parse::<u16>().is_ok_and(|p| http.contains(&p));
                            Port {
                                text: format!("{shown}:{hport} → {cport}"),
                                url: (docker && is_http)
                                    .then(|| format!("http://{shown}:{hport}/")),
                            }
                        })
                        .collect();
                    // Admins read other accounts' pages; entering stays
                    // the account's own.
                    let enter = docker && !ct.runner && ct.state == "running" && !readonly;
                    Row {
                        name: ct.name.clone(),
                        short: ct
                            .container
                            .rsplit('/')
                            .next()
                            .unwrap_or(&ct.container)
                            .to_string(),
                        full: ct.container.clone(),
                        base: format!("/my/containers/{}", ct.container),
                        state: ct.state.clone(),
                        image: ct.image.clone(),
                        ports,
                        gpu: ct.gpu_devices.clone(),
                        ready: ct.ready.clone(),
                        url: ct.url.clone(),
                        runner: ct.runner,
                        enter,
                        docker,
                        running: ct.state == "running",
                        culled: ct.culled.clone(),
                        stops_at: ct.stops_at.clone(),
                        why: ct.why.clone(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Workspace {
        account: account.to_string(),
        readonly,
        csrf: session.csrf.clone(),
        revision: view.and_then(|v| v.revision.clone()),
        accepted_at: view.and_then(|v| v.accepted_at.clone()),
        // Students read their own file's problem or an audit id; admins
        // the whole story.
        last_error: view.and_then(|v| {
            if session.admin {
                v.last_error.clone()
            } else {
                v.last_error_student.clone()
            }
        }),
        last_error_at: view.and_then(|v| v.last_error_at.clone()),
        warnings: view.map(|v| v.warnings.clone()).unwrap_or_default(),
        gpus: view
            .map(|v| {
                v.gpus
                    .iter()
                    .map(|g| {
                        (
                            g.container.clone(),
                            g.state.clone(),
                            crate::ops::lending::line(g),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        rows,
        events_url: "/my/workspace/events".into(),
        fragment_url: if readonly {
            format!("/admin/accounts/{account}?fragment=1")
        } else {
            "/my/workspace/fragment".into()
        },
    }
}

#[derive(askama::Template)]
#[template(path = "workspace.html")]
pub(super) struct WorkspacePage {
    pub me: Option<Me>,
    pub ws: Workspace,
    /// Other students' containers this account was let into.
    pub shared: Vec<SharedRow>,
}

/// A container someone let this account into ("Shared with me").
pub(super) struct SharedRow {
    pub owner: String,
    pub full: String,
    pub state: String,
    pub logs: bool,
    pub terminal: bool,
    pub files: bool,
    pub until: String,
}

/// The grants the session's account holds now ([`berth_core::access::held`]),
/// with each container's state.
async fn shared_with(c: &Console, account: &str) -> Vec<SharedRow> {
    let Some((groups, grants)) = super::containers::grants_read(c, account).await else {
        return vec![];
    };
    let grantable = super::containers::grantable(c);
    let now = crate::store::now();
    let views = c.views.read().await;
    berth_core::access::held(&grants, account, &groups, grantable, now)
        .map(|g| {
            let state = views
                .get(&g.owner)
                .and_then(|v| v.containers.iter().find(|ct| ct.container == g.container))
                .map_or("unknown".to_string(), |ct| ct.state.clone());
            SharedRow {
                logs: g.allow.contains(&berth_spec::Allow::Logs),
                terminal: g.allow.contains(&berth_spec::Allow::Terminal),
                files: g.allow.contains(&berth_spec::Allow::Files),
                until: crate::base::time::rfc3339(g.until),
                owner: g.owner.clone(),
                full: g.container.clone(),
                state,
            }
        })
        .collect()
}

#[derive(askama::Template)]
#[template(path = "workspace_main.html")]
pub(super) struct WorkspaceFragment {
    pub ws: Workspace,
}

pub(super) async fn workspace(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some(s) = c.session(&headers).await else {
        return to_login();
    };
    let me = Me::from(&s);
    let shared = shared_with(&c, &s.account).await;
    let views = c.views.read().await;
    let ws = workspace_model(&c, views.get(&s.account), &s.account, &me, &headers);
    render(WorkspacePage {
        me: Some(me),
        ws,
        shared,
    })
}

pub(super) async fn fragment(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some(s) = c.session(&headers).await else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let me = Me::from(&s);
    let views = c.views.read().await;
    let ws = workspace_model(&c, views.get(&s.account), &s.account, &me, &headers);
    render(WorkspaceFragment { ws })
}

/// Server-sent events: `changed` whenever the account's view changes.
pub(super) async fn events(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some(s) = c.session(&headers).await else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let rx = c.updates.subscribe();
    let account = s.account.clone();
    let stream = futures::stream::unfold((rx, account), |(mut rx, account)| async move {
        loop {
            match rx.recv().await {
                Ok(changed) if changed == account => {
                    let event = Event::default().event("changed").data(changed);
                    return Some((Ok::<_, std::convert::Infallible>(event), (rx, account)));
                }
                Ok(_) => continue,
                // Missed some: tell the page to refresh anyway.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    let event = Event::default().event("changed").data(account.clone());
                    return Some((Ok(event), (rx, account)));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
