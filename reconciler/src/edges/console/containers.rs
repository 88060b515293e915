//! The console's access to a container, and start/stop/restart. Every
//! handler that touches a container (here, in `logs`, `terminal` and
//! `files`) first finds it among the session account's observed ones and
//! then asks the backend, whose
//! [`owned`](crate::backends::docker::DockerBackend::owned) checks the
//! `berth.owner` label again; a container that is missing or someone
//! else's gets the same 404, and the attempt is audited.

use super::{Console, FollowUp, Me, Session, not_found, to_login};
use crate::backends::docker::{DockerBackend, Owned, Purpose};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use std::sync::Arc;

/// What the console does with a container. The owner may do all of it;
/// someone the owner let in (`access` in its workspace) what the grant
/// allows, never starting or stopping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Use {
    Logs,
    Terminal,
    Files,
    Operate,
}

impl Use {
    fn purpose(self) -> Purpose {
        match self {
            Use::Logs | Use::Operate => Purpose::Operate,
            Use::Terminal | Use::Files => Purpose::Enter,
        }
    }

    fn allow(self) -> Option<berth_spec::Allow> {
        match self {
            Use::Logs => Some(berth_spec::Allow::Logs),
            Use::Terminal => Some(berth_spec::Allow::Terminal),
            Use::Files => Some(berth_spec::Allow::Files),
            Use::Operate => None,
        }
    }
}

/// Whose container `name` is for this session and use: the session's own
/// account, or an owner whose live grant lets the session's account in.
async fn owner_for(c: &Console, s: &Session, name: &str, use_: Use) -> Option<String> {
    let own = c
        .views
        .read()
        .await
        .get(&s.account)
        .is_some_and(|v| v.containers.iter().any(|ct| ct.container == name));
    if own {
        return Some(s.account.clone());
    }
    let what = use_.allow()?;
    let (groups, grants) = grants_read(c, &s.account).await?;
    let grantable = grantable(c);
    berth_core::access::allowing(
        &grants,
        &s.account,
        &groups,
        grantable,
        name,
        what,
        crate::store::now(),
    )
    .map(|g| g.owner.clone())
}

/// The site's grantable groups (none without `access`).
pub(super) fn grantable(c: &Console) -> &[String] {
    c.ctx
        .site
        .access
        .as_ref()
        .map(|a| a.grantable_groups.as_slice())
        .unwrap_or_default()
}

/// `account`'s groups in the directory, and the live grants the store
/// has to it or them; what of it `account` holds is
/// [`berth_core::access::held`]'s to say.
pub(super) async fn grants_read(
    c: &Console,
    account: &str,
) -> Option<(Vec<String>, Vec<berth_core::access::Grant>)> {
    let groups = c.ctx.directory.groups(account).await.ok()?;
    let (who, now, asked) = (account.to_string(), crate::store::now(), groups.clone());
    let grants = c
        .ctx
        .store
        .call(move |st| st.grants_to(&who, &asked, now))
        .await
        .ok()?;
    Some((groups, grants))
}

/// The container `name` the session may use as `use_` (its own, or one
/// granted to it), through the same ownership check either way: the
/// owner's label on the container itself, and never the runner for a
/// terminal or files.
pub(super) async fn owned<'a>(
    c: &'a Console,
    s: &Session,
    name: &str,
    use_: Use,
) -> Option<(&'a DockerBackend, Owned)> {
    let owner = owner_for(c, s, name, use_).await?;
    let endpoint = {
        let views = c.views.read().await;
        views
            .get(&owner)?
            .containers
            .iter()
            .find(|ct| ct.backend == "docker" && ct.container == name)?
            .endpoint
            .clone()?
    };
    let backend = c.ctx.dockerd(&endpoint)?;
    match backend.owned(&owner, name, use_.purpose()).await {
        Ok(Some(o)) => Some((backend, o)),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(cause = %e, container = name, "console: inspecting a container");
            None
        }
    }
}

/// Resolves when a grant that let the session use `name` has ended (its
/// date passed, or the entry left the owner's workspace); never for the
/// owner. Looked at as often as the account's standing.
pub(super) async fn access_ended(c: std::sync::Arc<Console>, s: Session, name: String, use_: Use) {
    let mut every = tokio::time::interval(super::STANDING_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match owner_for(&c, &s, &name, use_).await {
            Some(owner) if owner == s.account => std::future::pending::<()>().await,
            Some(_) => {}
            None => return,
        }
    }
}

/// Audits what the session did with `container`: in its own log and,
/// when the container is someone else's (a grant), in the owner's too.
pub(super) fn audit_use(c: &Console, s: &Session, container: &Owned, event: &str, detail: &str) {
    c.audit(&s.account, event, detail);
    if container.account != s.account {
        c.audit(
            &container.account,
            event,
            &format!("{detail} (by `{}`, granted access)", s.account),
        );
    }
}

/// The answer to a container the session may not have, audited.
pub(super) fn denied(c: &Console, s: &Session, name: &str, what: &str) -> Response {
    c.audit(
        &s.account,
        "console-denied",
        &format!("{what} of `{name}`: not one of the account's containers"),
    );
    not_found(Some(Me::from(s)))
}

/// The session and its account's container `name` for `purpose`, or the
/// answer to give instead: the login page, or the audited 404.
pub(super) async fn session_and_container<'a>(
    c: &'a Console,
    headers: &HeaderMap,
    name: &str,
    use_: Use,
    what: &str,
) -> Result<(Session, &'a DockerBackend, Owned), Response> {
    let Some(s) = c.session(headers).await else {
        return Err(to_login());
    };
    match owned(c, &s, name, use_).await {
        Some((backend, container)) => Ok((s, backend, container)),
        None => Err(denied(c, &s, name, what)),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct OpForm {
    csrf: Option<String>,
}

/// Why starting `name` would spend more of a `refuse` budget that is
/// spent (every container holds CPUs; one with GPUs, GPUs), if it would.
async fn spent_budget(c: &Console, s: &Session, name: &str) -> Option<String> {
    let gpus = c
        .views
        .read()
        .await
        .get(&s.account)?
        .containers
        .iter()
        .any(|ct| ct.container == name && ct.gpu_devices.is_some());
    let groups = c.ctx.directory.lookup(&s.account).await.ok()??.groups;
    let budgets = crate::engine::reconcile::budgets::of(&c.ctx, &groups, crate::store::now())
        .await
        .ok()?;
    budgets.iter().filter(|b| b.refuse).find_map(|b| {
        [("CPU", b.cpu, true), ("GPU", b.gpu, gpus)]
            .into_iter()
            .find_map(|(what, spent, holds)| {
                let spent = spent.filter(|s| holds && s.used >= s.limit)?;
                Some(format!(
                    "budget: group `{}` has used {:.3} of its {} {what}-hours this {}; containers that hold {what}s start again when it ends ({})",
                    b.group, spent.used, spent.limit, b.period, b.ends
                ))
            })
    })
}

/// Whether the account's container `name` asks for GPUs.
async fn holds_gpus(c: &Console, s: &Session, name: &str) -> bool {
    c.views.read().await.get(&s.account).is_some_and(|v| {
        v.containers
            .iter()
            .any(|ct| ct.container == name && ct.gpus.is_some_and(|n| n > 0))
    })
}

/// `start`, `stop` or `restart`: until the next reconcile says otherwise.
pub(super) async fn operate(
    State(c): State<Arc<Console>>,
    Path((name, op)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<OpForm>,
) -> Response {
    let s = match c.posted_session(&headers, form.csrf.as_deref()).await {
        Ok(s) => s,
        Err(refused) => return refused.into_response(),
    };
    if !matches!(op.as_str(), "start" | "stop" | "restart") {
        return not_found(Some(Me::from(&s)));
    }
    let Some((backend, container)) = owned(&c, &s, &name, Use::Operate).await else {
        return denied(&c, &s, &name, &op);
    };
    if op == "start"
        && !container.running
        && let Some(why) = spent_budget(&c, &s, &name).await
    {
        c.audit(
            &s.account,
            "console-denied",
            &format!("start of `{name}`: {why}"),
        );
        return (StatusCode::CONFLICT, format!("{why}\n")).into_response();
    }
    if op != "stop" {
        // Started by the student: no longer culled.
        let (account, name) = (s.account.clone(), container.name.clone());
        let _ = c
            .ctx
            .store
            .call(move |st| st.clear_culled(&account, Some(&name)))
            .await;
    }
    // A GPU container starts through lending: its cards are lent (or it
    // waits in line) by a reconcile, never taken by a bare start.
    if op != "stop" && holds_gpus(&c, &s, &name).await {
        c.audit(
            &s.account,
            &format!("console-{op}"),
            &format!("`{name}`: asks for its GPUs"),
        );
        if op == "restart" && container.running {
            let _ = backend.restart_owned(&container).await;
        } else {
            let _ = c.refresh.try_send(FollowUp::Reconcile(s.account.clone()));
        }
        return Redirect::to("/").into_response();
    }
    if op == "stop" && holds_gpus(&c, &s, &name).await {
        // Stopped by its owner: the cards go back now.
        let prefix = berth_spec::names::qualified(&s.account, "");
        let key = berth_core::desired::GpuKey {
            account: s.account.clone(),
            container: name.strip_prefix(&prefix).unwrap_or(&name).to_string(),
        };
        let _ = c
            .ctx
            .store
            .call(move |st| st.gpu_end(&key, crate::store::now_ms()))
            .await;
    }
    let result = match op.as_str() {
        "start" => backend.start_owned(&container).await,
        "stop" => backend.stop_owned(&container).await,
        _ => backend.restart_owned(&container).await,
    };
    match result {
        Ok(()) => {
            c.audit(&s.account, &format!("console-{op}"), &format!("`{name}`"));
            let _ = c.refresh.try_send(FollowUp::View(s.account.clone()));
            Redirect::to("/").into_response()
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("{}\n", c.failure(&s.account, &op, &e)),
        )
            .into_response(),
    }
}
