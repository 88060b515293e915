//! Gather: the IO half of a reconcile's decision. Reads git, LDAP, the
//! store and (for the pusher) GitLab, hands them to the pure
//! [`decide`](berth_core::decide), resolves the images of an accepted candidate
//! (registry), then has the plan built ([`super::assemble`]). Changes nothing.

use super::assemble::{Build, build};
use super::people::{check_pusher, grantee_problems};
use super::pins::{resolve_pins, shared_with, unshared_warnings};
use super::{AccountPlan, Decision};
use crate::clients::{Context, Observed, ReconcileError, Result};
use crate::inputs::identity::Account;
use crate::inputs::source::WorkspaceFile;
use berth_core::decide::{self, RejectReason, Verdict};
use berth_core::plan::{self, Action};
use berth_spec::Workspace;
use berth_spec::policy::share_key;
use berth_webhook::SyncRequest;
use std::sync::Arc;

/// Builds the candidate's images (or, in a diff, names the builds that
/// would run), then pins every image it names to a digest.
async fn built_then_pinned(
    ctx: &Arc<Context>,
    account: &str,
    identity: Option<&Account>,
    revision: &str,
    ws: &Workspace,
    shared: &berth_spec::policy::Shared,
    build: bool,
) -> Result<
    std::result::Result<(std::collections::BTreeMap<String, String>, Vec<String>), RejectReason>,
> {
    let builds =
        match crate::engine::builds::run(ctx, account, identity, revision, ws, shared, build)
            .await?
        {
            Ok(b) => b,
            Err(why) => return Ok(Err(RejectReason::Build(why))),
        };
    Ok(match resolve_pins(ctx, ws).await? {
        Err(why) => Err(RejectReason::Image(why)),
        Ok(pins) => Ok((pins, builds.pending)),
    })
}

/// Computes the plan of one account: gathers what the decision needs (git,
/// LDAP, the store, GitLab for the pusher), decides ([`decide`]), then
/// builds the plan against `observed`. Reads only. `push` is the
/// authenticated push that asks for this reconcile, if any.
#[tracing::instrument(skip(ctx, observed, push), fields(account))]
pub async fn evaluate(
    ctx: &Arc<Context>,
    account: &str,
    observed: &Observed,
    push: Option<&SyncRequest>,
) -> Result<AccountPlan> {
    evaluate_at(ctx, account, observed, push, None).await
}

/// What `revision` (a branch's or a merge request's head) would do were it
/// pushed to the default branch: evaluated exactly as such a push —
/// pusher, identity, validation, policy, quota, image and Dockerfile rules
/// — and planned against `observed`, but never applied: nothing is built,
/// accepted or reserved. The plan's decision says what would happen.
#[tracing::instrument(skip(ctx, observed, push), fields(account))]
pub async fn preview(
    ctx: &Arc<Context>,
    account: &str,
    observed: &Observed,
    push: Option<&SyncRequest>,
    revision: &str,
) -> Result<AccountPlan> {
    evaluate_at(ctx, account, observed, push, Some(revision)).await
}

async fn evaluate_at(
    ctx: &Arc<Context>,
    account: &str,
    observed: &Observed,
    push: Option<&SyncRequest>,
    preview: Option<&str>,
) -> Result<AccountPlan> {
    let site = &ctx.site;
    let name = account.to_string();
    let head = match preview {
        None => ctx.read_source(move |s| s.head(&name)).await?,
        Some(sha) => {
            let rev = sha.to_string();
            let found = ctx.read_source(move |s| s.at(&name, &rev)).await?;
            Some(found.ok_or_else(|| ReconcileError::LostRevision(sha.into()))?)
        }
    };
    let identity = ctx.directory.lookup(account).await?;
    // Read once: admission checks and the unshared-image warnings both use
    // the shares.
    let (accepted, shared, storage) = {
        let account = account.to_string();
        ctx.store
            .call(move |s| -> Result<_> {
                Ok((
                    s.accepted(&account)?.map(|a| a.revision),
                    shared_with(s, &account)?,
                    s.volume_usage(Some(&account))?,
                ))
            })
            .await?
    };
    // A volume exists if a host shows it now or a measurement found it
    // (its host may be unreachable this moment).
    let existing: std::collections::BTreeSet<String> = observed
        .volumes_of(account)
        .into_iter()
        .chain(storage.iter().map(|u| u.volume.clone()))
        .collect();
    let measured = storage.iter().map(|u| u.measured_at).min();
    // A preview is judged as a new push, whatever is accepted now.
    let accepted_now = accepted.clone();
    let accepted = if preview.is_some() { None } else { accepted };
    let pushed = preview.or(push.and_then(|p| p.revision.as_deref()));
    let pushes_only = site.gitlab.is_some() && preview.is_none();
    // The pusher is asked about (GitLab, LDAP) only when its push is what
    // would be accepted.
    let new_head = head
        .as_ref()
        .filter(|h| accepted.as_deref() != Some(h.sha.as_str()))
        .filter(|h| !pushes_only || pushed == Some(h.sha.as_str()));
    let (pusher, web_emails) = match new_head {
        Some(_) => check_pusher(ctx, account, identity.as_ref(), push).await?,
        None => (Ok(()), vec![]),
    };
    let now = crate::store::now();
    let groups = identity
        .as_ref()
        .map(|a| a.groups.clone())
        .unwrap_or_default();
    let budgets = super::budgets::of(ctx, &groups, now).await?;
    // What the account holds now, only when a new head would be judged
    // against a budget (one git read).
    let holds = match (&budgets.is_empty(), new_head, &accepted_now) {
        (false, Some(_), Some(_)) => accepted_workspace_of(ctx, account)
            .await?
            .map(|ws| berth_core::decide::holds(site, &ws)),
        _ => None,
    };
    let admission = decide::decide(&decide::Inputs {
        site,
        account,
        identity: identity.as_ref(),
        head: head.as_ref(),
        accepted: accepted.as_deref(),
        pushed,
        pushes_only,
        pusher,
        web_emails: &web_emails,
        shared: &shared,
        storage: measured.map(|measured_at| decide::StorageUse {
            bytes: storage.iter().filter_map(|u| u.bytes).sum(),
            measured_at,
            existing: &existing,
        }),
        budgets: &budgets,
        holds,
        now,
    });
    let mut plan = AccountPlan::new(account, head.as_ref().map(|h| h.repository.clone()));
    if let Some(why) = &admission.stopped {
        plan.disabled = true;
        plan.stopped = Some(why.to_string());
        plan.warnings.push(format!(
            "stopped: {why}; containers are stopped and volumes kept"
        ));
    }
    plan.warnings.extend(admission.notes.iter().cloned());
    plan.warnings.extend(berth_core::budget::warnings(
        &budgets,
        site.policy.usage.budget_warn_at,
    ));
    let head_sha = head.as_ref().map(|h| h.sha.clone()).unwrap_or_default();
    let mut workspace = None;
    match admission.verdict {
        Verdict::NoRepository => {
            // An archived or deleted repository is still visited: an
            // account that must stop is stopped from what the backends hold.
            if plan.disabled {
                let held = {
                    let account = account.to_string();
                    ctx.store
                        .call(move |s| -> Result<_> {
                            Ok((s.placement(&account)?, s.runner(&account)?))
                        })
                        .await?
                };
                stop_everything(ctx, account, observed, &mut plan, held);
            }
            return Ok(plan);
        }
        Verdict::NoWorkspace => {
            plan.decision = Decision::NoWorkspace;
            return Ok(plan);
        }
        Verdict::Unchanged => {
            plan.decision = Decision::Unchanged;
            plan.revision = Some(head_sha);
        }
        Verdict::AwaitingPush => {
            plan.decision = Decision::AwaitingPush { revision: head_sha };
            plan.revision = accepted.clone();
        }
        Verdict::Reject(reason) => plan.reject(head_sha, reason, accepted.clone()),
        Verdict::Candidate(ws) => {
            // Grantees are the directory's to vouch for, before any build.
            let refused = grantee_problems(ctx, account, &ws).await?;
            if let Some(why) = refused {
                plan.reject(head_sha, RejectReason::Policy(why), accepted.clone());
            } else {
                match built_then_pinned(
                    ctx,
                    account,
                    identity.as_ref(),
                    &head_sha,
                    &ws,
                    &shared,
                    preview.is_none() && ctx.run_builds(),
                )
                .await?
                {
                    Err(why) => plan.reject(head_sha, why, accepted.clone()),
                    Ok((pins, pending)) => {
                        plan.warnings.extend(pending.iter().map(|name| {
                    format!("image `{name}` would be built first; the plan shows the image as it is now")
                }));
                        plan.pins = pins;
                        plan.shares = ws
                            .images
                            .iter()
                            .flat_map(|i| i.share.iter())
                            .filter_map(|s| {
                                let image = berth_spec::ImageRef::parse(&s.image).ok()?;
                                Some((share_key(&image), s.description.clone().unwrap_or_default()))
                            })
                            .collect();
                        plan.grants = berth_core::access::declared(account, &ws);
                        plan.keeps = ws
                            .containers
                            .iter()
                            .filter_map(|c| {
                                let until =
                                    berth_spec::dates::until(c.keep_until.as_ref()?).ok()?;
                                Some((berth_spec::names::qualified(account, &c.name), until))
                            })
                            .collect();
                        let (name, sha, since) =
                            (account.to_string(), head_sha.clone(), accepted_now.clone());
                        let commits = ctx
                            .read_source(move |s| s.commits_since(&name, &sha, since.as_deref()))
                            .await?
                            .len();
                        plan.decision = Decision::Accept {
                            revision: head_sha.clone(),
                            commits,
                        };
                        plan.project = push.and_then(|p| {
                            Some((p.project_id?, p.path.clone().unwrap_or_default()))
                        });
                        plan.revision = Some(head_sha);
                        workspace = Some(*ws);
                    }
                }
            }
        }
    }
    // Archived volumes come back only with an accepted revision (execute
    // restores them first): nothing else may create a container that
    // would mount a new, empty volume in their place.
    plan.archived = {
        let a = account.to_string();
        ctx.store.call(move |s| s.is_archived(&a)).await?
    };
    if plan.archived && !matches!(plan.decision, Decision::Accept { .. }) {
        plan.warnings.push("archived: this workspace was unused, so its volumes are kept in the archive; your next accepted push brings them back (or an admin, with `reconciler unarchive`)".into());
        return Ok(plan);
    }
    let Some(revision) = plan.revision.clone() else {
        return Ok(plan);
    };
    let workspace = match workspace {
        Some(ws) => ws,
        None => {
            accepted_workspace(
                ctx,
                account,
                &revision,
                identity.as_ref(),
                &mut plan.warnings,
            )
            .await?
        }
    };
    if !matches!(plan.decision, Decision::Accept { .. }) {
        let (account, revision) = (account.to_string(), revision.clone());
        plan.pins = ctx.store.call(move |s| s.pins(&account, &revision)).await?;
    }
    plan.warnings.extend(unshared_warnings(
        ctx, account, &workspace, &shared, &plan.pins,
    ));
    // Home directories are checked here, off the store's thread: their
    // file system may hang.
    let homes = super::homes::resolve_all(&ctx.site, account, identity.as_ref(), &workspace).await;
    // Assembling reads and hands out allocations (placement, host ports,
    // GPUs) and reads the runner: on the store's thread, one account at a
    // time, never on an async worker.
    let (ctx, observed, account, preview) = (
        ctx.clone(),
        observed.only(account),
        account.to_string(),
        preview.is_some(),
    );
    ctx.clone()
        .store
        .call(move |_| -> Result<AccountPlan> {
            build(
                &Build {
                    ctx: &ctx,
                    account: &account,
                    workspace: &workspace,
                    identity: identity.as_ref(),
                    observed: &observed,
                    revision: &revision,
                    preview,
                    homes: &homes,
                },
                &mut plan,
            )?;
            Ok(plan)
        })
        .await
}

/// Stops what an account whose workspace cannot be read holds: running
/// Docker containers are stopped (never removed), its runner unregistered,
/// the student's RoleBinding deleted. Deployments keep their replicas until
/// a readable revision lets Berth scale them to zero (a warning says so).
fn stop_everything(
    ctx: &Context,
    account: &str,
    observed: &Observed,
    plan: &mut AccountPlan,
    (placed, runner): (Option<String>, Option<crate::store::StoredRunner>),
) {
    for (endpoint, found) in &observed.docker {
        let Ok(map) = found else { continue };
        let Some(mine) = map.get(account) else {
            continue;
        };
        if placed.as_deref().is_some_and(|p| p != endpoint) || plan.endpoint.is_some() {
            continue;
        }
        plan.endpoint = Some(endpoint.clone());
        plan.actions.extend(plan::stop_all(mine));
    }
    if let Some(runner) = runner {
        plan.actions
            .push(Action::UnregisterRunner { id: runner.id });
    }
    if let (Some(cluster), Some(Ok(map))) = (&ctx.kube, &observed.kube)
        && let Some(live) = map.get(account)
    {
        let ns = cluster.settings.namespace(account);
        plan.actions.extend(plan::revoke_student(&ns, live));
        if live.objects.iter().any(|o| o.kind == "Deployment") {
            plan.warnings.push(
                "kubernetes deployments keep running until a readable revision lets Berth scale them to zero"
                    .into(),
            );
        }
    }
}

/// The workspace of `account`'s accepted revision, if it has one (`drain`
/// asks what GPUs it needs).
pub async fn accepted_workspace_of(ctx: &Arc<Context>, account: &str) -> Result<Option<Workspace>> {
    let name = account.to_string();
    let Some(accepted) = ctx.store.call(move |s| s.accepted(&name)).await? else {
        return Ok(None);
    };
    let mut ignored = Vec::new();
    accepted_workspace(ctx, account, &accepted.revision, None, &mut ignored)
        .await
        .map(Some)
}

/// The workspace of an already accepted revision. It passed policy when
/// accepted; if the site has since tightened policy it keeps running, with
/// a warning, until the student pushes a conforming revision.
async fn accepted_workspace(
    ctx: &Arc<Context>,
    account: &str,
    revision: &str,
    identity: Option<&Account>,
    warnings: &mut Vec<String>,
) -> Result<Workspace> {
    let (name, sha) = (account.to_string(), revision.to_string());
    let rev = ctx
        .read_source(move |s| s.at(&name, &sha))
        .await?
        .ok_or_else(|| ReconcileError::LostRevision(revision.into()))?;
    let bytes = match rev.file {
        WorkspaceFile::Present(b) => b,
        // Accepted before files had to be present; it declared nothing.
        _ => {
            return Ok(Workspace {
                version: 1.into(),
                containers: vec![],
                runner: None,
                images: None,
            });
        }
    };
    let ws = berth_spec::parse_workspace(&bytes)
        .map_err(|_| ReconcileError::LostRevision(revision.into()))?;
    if let Some(account) = identity
        && let Err(d) = berth_spec::policy::check(&ws, &ctx.site, &account.name, &account.groups)
    {
        warnings.push(format!(
            "accepted revision no longer meets site policy: {d}"
        ));
    }
    Ok(ws)
}
