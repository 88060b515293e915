//! Act: records a plan's decision and runs its actions on the backends
//! they belong to (Docker, Kubernetes, GitLab), each audited; a failed
//! action does not stop the others of the account.

use super::{AccountPlan, AccountReport, Decision, describe, short};

use crate::clients::{ActionError, Context, Result};
use crate::store::{Store, StoredRunner};
use berth_core::plan::{self, Action};
use std::sync::Arc;

/// Records the plan's decision and runs its actions. Each action is
/// audited; a failed action does not stop the others of the account.
#[tracing::instrument(skip(ctx, plan), fields(account = %plan.account))]
pub async fn execute(ctx: &Arc<Context>, plan: &AccountPlan) -> Result<AccountReport> {
    let store = &ctx.store;
    let account = plan.account.as_str();
    let mut report = AccountReport {
        account: account.into(),
        decision: plan.decision.clone(),
        applied: vec![],
        errors: vec![],
        error_audit: None,
        kinds: Default::default(),
    };
    let rejection = {
        let plan = plan.clone();
        store.call(move |s| record_decision(s, &plan)).await?
    };
    if let Some(endpoint) = &plan.endpoint {
        ctx.backend(endpoint)?;
    }
    if plan.archived && matches!(plan.decision, Decision::Accept { .. }) {
        // Volumes first, byte for byte: no container starts on an empty one.
        if let Err(e) = crate::engine::archive::unarchive(ctx, account).await {
            let line = format!("restore archived volumes: {e}");
            let id = audit(store, plan, "action-failed", line.clone()).await?;
            report.error_audit = Some(id);
            report.errors.push(line);
            return Ok(report);
        }
    }
    // A volume or network that could not be made this account's (one Berth
    // did not create holds its name) is never mounted or joined.
    let mut not_ours: Vec<String> = Vec::new();
    for action in &plan.actions {
        let line = describe(action);
        if let Some(blocked) = needs_one_of(action, &not_ours) {
            let e = ActionError::NotOurs(blocked);
            let id = audit(store, plan, "action-failed", format!("{line}: {e}")).await?;
            report.error_audit.get_or_insert(id);
            report.errors.push(format!("{line}: {e}"));
            continue;
        }
        // Intent first: a process killed mid-action leaves "started,
        // outcome unknown" in the audit log rather than nothing.
        let id = audit(store, plan, "action-started", line.clone()).await?;
        match run_action(ctx, plan, action).await? {
            Ok(()) => {
                finish_audit(store, id, "action", line.clone()).await?;
                *report.kinds.entry(action.kind()).or_default() += 1;
                report.applied.push(line);
            }
            Err(e) => {
                if let Action::CreateVolume { name } | Action::CreateNetwork { name } = action {
                    not_ours.push(name.clone());
                }
                tracing::warn!(cause = %e, "action failed");
                finish_audit(store, id, "action-failed", format!("{line}: {e}")).await?;
                report.error_audit.get_or_insert(id);
                report.errors.push(format!("{line}: {e}"));
            }
        }
    }
    let pulled = match &plan.endpoint {
        Some(endpoint) => ctx
            .backend(endpoint)
            .map(|b| b.take_pulled())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    {
        let (plan, report) = (plan.clone(), report.clone());
        store
            .call(move |s| record_outcome(s, &plan, &report, rejection, &pulled))
            .await?;
    }
    Ok(report)
}

/// Audits `detail` for the plan's account and revision, on the store thread.
async fn audit(
    store: &Store,
    plan: &AccountPlan,
    event: &'static str,
    detail: String,
) -> Result<i64> {
    let (account, revision) = (plan.account.clone(), plan.revision.clone());
    Ok(store
        .call(move |s| s.audit(&account, event, revision.as_deref(), &detail))
        .await?)
}

async fn finish_audit(store: &Store, id: i64, event: &'static str, detail: String) -> Result<()> {
    Ok(store
        .call(move |s| s.finish_audit(id, event, &detail))
        .await?)
}

/// Records the decision (accepted revision, pins, shares, project; or the
/// rejection, audited once) and the account's allocations. Returns the
/// rejection's message.
fn record_decision(store: &Store, plan: &AccountPlan) -> Result<Option<String>> {
    let account = plan.account.as_str();
    let mut rejection = None;
    match &plan.decision {
        Decision::Accept { revision, commits } => {
            // A push is use: it holds dormancy off.
            store.touch_activity(account, crate::store::now())?;
            let repo = plan.repository.as_deref().unwrap_or_default();
            store.accept(
                account,
                repo,
                revision,
                &format!("{commits} new commit(s); identity and policy checks passed"),
            )?;
            store.set_pins(account, revision, &plan.pins)?;
            store.set_shares(account, &plan.shares)?;
            store.set_declared_builds(account, &plan.builds)?;
            store.set_keeps(account, &plan.keeps)?;
            store.set_grants(account, &plan.grants)?;
            // A new revision wakes what the culler stopped.
            store.clear_culled(account, None)?;
            store.clear_notice(account)?;
            if let Some((id, path)) = &plan.project {
                store.set_project(account, *id)?;
                if !path.is_empty() {
                    store.set_project_path(account, path)?;
                }
            }
        }
        Decision::Reject { revision, reason } => {
            let message = format!("revision {} rejected: {reason}", short(revision));
            if store.last_error(account)?.map(|l| l.message) != Some(message.clone()) {
                store.audit(account, "rejected", Some(revision), &reason.to_string())?;
                store.touch_activity(account, crate::store::now())?;
                // A failed build was told as one, with its log's tail.
                if !matches!(reason, berth_core::decide::RejectReason::Build(_)) {
                    store.notify(account, berth_core::notify::Category::PushRefused, &message)?;
                }
            }
            rejection = Some(message);
        }
        Decision::Unchanged
        | Decision::NoRepository
        | Decision::NoWorkspace
        | Decision::AwaitingPush { .. } => {}
    }
    if let Some(endpoint) = &plan.endpoint {
        // Allocations are persisted before any container exists, so a run
        // killed mid-apply leaks nothing and the next run reuses them.
        store.set_placement(account, endpoint)?;
        store.set_account_ports(endpoint, account, &plan.ports)?;
        store.set_account_gpus(endpoint, account, &plan.gpus)?;
    }
    Ok(rejection)
}

/// Records what the actions left behind: images pulled and used, the last
/// error (the admin's detail and the student's text), warnings.
fn record_outcome(
    store: &Store,
    plan: &AccountPlan,
    report: &AccountReport,
    rejection: Option<String>,
    pulled: &[String],
) -> Result<()> {
    let account = plan.account.as_str();
    let last = rejection.clone().or_else(|| report.errors.first().cloned());
    if let Some(endpoint) = &plan.endpoint {
        for image in pulled {
            store.record_pull(endpoint, image)?;
        }
        store.touch_images(endpoint, &plan.images)?;
    }
    // A rejection speaks of the student's own file; a backend failure
    // reaches them as an audit id.
    let student = match (&rejection, report.error_audit) {
        (Some(r), _) => r.clone(),
        (None, Some(id)) => format!(
            "{} of {} action(s) failed; an admin can read audit #{id}",
            report.errors.len(),
            report.errors.len() + report.applied.len()
        ),
        (None, None) => String::new(),
    };
    // A head waiting for its push was not evaluated: whatever was said of
    // it (a refusal of that very head) still stands.
    let evaluated = !matches!(plan.decision, Decision::AwaitingPush { .. });
    if evaluated || last.is_some() {
        store.set_last_error(
            account,
            last.as_deref().map(|detail| crate::store::Problem {
                detail,
                student: &student,
            }),
        )?;
    }
    // Told once, when the account is stopped, not at every resync.
    if let Some(why) = &plan.stopped
        && !store
            .warnings(account)?
            .iter()
            .any(|w| w.starts_with("stopped: "))
    {
        store.notify(
            account,
            berth_core::notify::Category::AccountStopped,
            &format!("your account was stopped ({why}): your containers are stopped and your volumes kept; ask an admin if this is wrong"),
        )?;
    }
    store.set_warnings(account, &plan.warnings)?;
    Ok(())
}

/// Runs one action on the backend it belongs to. The outer error is the
/// store's (fatal for this account); the inner one is the action's.
async fn run_action(
    ctx: &Context,
    plan: &AccountPlan,
    action: &Action,
) -> Result<std::result::Result<(), ActionError>> {
    let account = plan.account.as_str();
    Ok(match action {
        Action::RegisterRunner { .. } | Action::UnregisterRunner { .. } => {
            gitlab_action(ctx, account, action).await
        }
        Action::UpdateRunnerConfig {
            id,
            name,
            hash,
            template,
        } => {
            let Some(runner) = runner_of(ctx, account).await? else {
                return Ok(Err(ActionError::NoRunner));
            };
            let files: Vec<(String, Vec<u8>)> = template
                .iter()
                .map(|(path, t)| {
                    (
                        path.clone(),
                        berth_core::runner::fill_token(t, &runner.token),
                    )
                })
                .collect();
            match docker_of(ctx, plan) {
                Ok(b) => match b.upload(id, name, &files).await {
                    Ok(()) => {
                        set_runner_config(ctx, account, hash.clone()).await?;
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                },
                Err(e) => Err(e),
            }
        }
        Action::KubeApply {
            objects, changes, ..
        } => kube_apply(ctx, account, objects, changes).await,
        Action::KubeDelete {
            kind,
            namespace,
            name,
            ..
        } => match ctx.kube_backend() {
            Ok(k) => k.delete(kind, namespace, name).await.map_err(Into::into),
            Err(e) => Err(e),
        },
        _ => {
            let action = match with_runner_token(ctx, account, action).await? {
                Ok(action) => action,
                Err(e) => return Ok(Err(e)),
            };
            let result = match docker_of(ctx, plan) {
                Ok(b) => b.execute(account, &action).await.map_err(Into::into),
                Err(e) => Err(e),
            };
            // The config a created runner holds is the one it was made with.
            if result.is_ok()
                && let Action::Create { container } | Action::Recreate { container, .. } =
                    action.as_ref()
                && berth_core::runner::is_runner(container)
            {
                let hash = berth_core::runner::config_hash(container);
                set_runner_config(ctx, account, hash).await?;
            }
            result
        }
    })
}

/// The volume or network in `not_ours` that a container action would
/// mount or join, if any.
fn needs_one_of(action: &Action, not_ours: &[String]) -> Option<String> {
    let (Action::Create { container } | Action::Recreate { container, .. }) = action else {
        return None;
    };
    let spec = &container.spec;
    not_ours
        .iter()
        .find(|n| spec.network == **n || spec.volumes.values().any(|v| v == *n))
        .cloned()
}

/// The Docker endpoint of the account.
fn docker_of<'a>(
    ctx: &'a Context,
    plan: &AccountPlan,
) -> std::result::Result<&'a crate::backends::Endpoint, ActionError> {
    let endpoint = plan.endpoint.as_deref().ok_or(ActionError::NoEndpoint)?;
    match ctx.docker.get(endpoint) {
        Some(Ok(b)) => Ok(b),
        Some(Err(e)) => Err(ActionError::Unavailable(e.clone())),
        None => Err(ActionError::NoEndpoint),
    }
}

/// The action with the registered runner token put into the runner
/// container's config (it never enters the plan); other actions as they are.
async fn with_runner_token<'a>(
    ctx: &Context,
    account: &str,
    action: &'a Action,
) -> Result<std::result::Result<std::borrow::Cow<'a, Action>, ActionError>> {
    let (Action::Create { container } | Action::Recreate { container, .. }) = action else {
        return Ok(Ok(std::borrow::Cow::Borrowed(action)));
    };
    if !berth_core::runner::is_runner(container) {
        return Ok(Ok(std::borrow::Cow::Borrowed(action)));
    }
    let Some(runner) = runner_of(ctx, account).await? else {
        return Ok(Err(ActionError::NoRunner));
    };
    let mut real = action.clone();
    if let Action::Create { container } | Action::Recreate { container, .. } = &mut real {
        **container = berth_core::runner::with_token(container, &runner.token);
    }
    Ok(Ok(std::borrow::Cow::Owned(real)))
}

/// Applies Kubernetes objects in order, stopping at the first failure (a
/// workload needs its namespace). An object the plan found missing is
/// first checked not to be someone else's: a forced apply would take it.
async fn kube_apply(
    ctx: &Context,
    account: &str,
    objects: &[berth_core::desired::kube::KubeObject],
    changes: &[plan::Change],
) -> std::result::Result<(), ActionError> {
    let k = ctx.kube_backend()?;
    for o in objects {
        if plan::is_absent(changes, o) {
            k.check_owner(o, account).await?;
        }
        k.apply(o).await?;
    }
    Ok(())
}

/// Registers or deletes the account's GitLab runner; the token goes to the
/// store only.
async fn gitlab_action(
    ctx: &Context,
    account: &str,
    action: &Action,
) -> std::result::Result<(), ActionError> {
    let Some(gl) = &ctx.gitlab else {
        return Err(ActionError::NoGitLab);
    };
    match action {
        Action::RegisterRunner { project, tags } => {
            let created = gl
                .create_runner(*project, &format!("berth {account}"), tags)
                .await?;
            let stored = StoredRunner {
                id: created.id,
                token: created.token,
                tags: tags.clone(),
            };
            let account = account.to_string();
            Ok(ctx
                .store
                .call(move |s| s.set_runner(&account, Some(&stored)))
                .await?)
        }
        Action::UnregisterRunner { id } => {
            gl.delete_runner(*id).await?;
            let account = account.to_string();
            Ok(ctx
                .store
                .call(move |s| s.set_runner(&account, None))
                .await?)
        }
        _ => Ok(()),
    }
}

async fn runner_of(ctx: &Context, account: &str) -> Result<Option<StoredRunner>> {
    let account = account.to_string();
    Ok(ctx.store.call(move |s| s.runner(&account)).await?)
}

async fn set_runner_config(ctx: &Context, account: &str, hash: String) -> Result<()> {
    let account = account.to_string();
    Ok(ctx
        .store
        .call(move |s| s.set_runner_config(&account, &hash))
        .await?)
}
