//! Which accounts exist, and fresh copies of their repositories. Local
//! mode lists `<root>/<account>/<repository>.git`; GitLab mode lists the
//! projects named `<account>/<repository>` in the configured groups that
//! hold a `workspace.yaml`, and fetches each into its local mirror. Either
//! way the accounts the store knows and the owners of Berth-labelled
//! objects are added: an archived project or a deleted repository never
//! takes an account out of the resync.

use crate::clients::{Context, Observed, ReconcileError};
use berth_spec::site::Repositories;
use futures::StreamExt;

/// Accounts to reconcile (just `only` when given), with their mirrors
/// fetched in GitLab mode. `observed` names the owners of labelled objects.
pub async fn accounts(
    ctx: &Context,
    only: Option<&str>,
    observed: &Observed,
) -> Result<Vec<String>, ReconcileError> {
    let all = list(ctx, only, observed).await?;
    fetch_all(ctx, &all).await;
    Ok(all)
}

/// Accounts to reconcile, without fetching anything.
pub async fn list(
    ctx: &Context,
    only: Option<&str>,
    observed: &Observed,
) -> Result<Vec<String>, ReconcileError> {
    let mut all = match &ctx.site.repositories {
        Repositories::Local { .. } => ctx.source.accounts()?,
        Repositories::Gitlab { groups, .. } => match only {
            Some(one) => vec![one.to_string()],
            None => gitlab_accounts(ctx, groups).await?,
        },
    };
    if let Some(only) = only {
        all.retain(|a| a == only);
        if all.is_empty() {
            all.push(only.to_string());
        }
        return Ok(all);
    }
    all.extend(ctx.store.call(|s| s.known_accounts()).await?);
    all.extend(labelled_owners(observed));
    // Only names Berth could manage: a hand-made label is not an account.
    all.retain(|a| {
        berth_spec::names::dns_label_problem(a, berth_spec::names::MAX_ACCOUNT).is_none()
    });
    all.sort();
    all.dedup();
    Ok(all)
}

/// Owners of Berth-labelled objects on every reachable backend.
fn labelled_owners(observed: &Observed) -> Vec<String> {
    let docker = observed
        .docker
        .values()
        .filter_map(|r| r.as_ref().ok())
        .flat_map(|m| m.keys().cloned());
    let kube = observed
        .kube
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .flat_map(|m| m.keys().cloned());
    docker.chain(kube).collect()
}

async fn fetch_all(ctx: &Context, all: &[String]) {
    if ctx.mirrors.is_some() {
        let fetched: Vec<_> = futures::stream::iter(all.iter().cloned())
            .map(|a| async move { (a.clone(), refresh(ctx, &a).await) })
            .buffer_unordered(8)
            .collect()
            .await;
        for (account, result) in fetched {
            if let Err(e) = result {
                // The last fetched copy stays usable: an unreachable GitLab
                // delays changes, it never removes anything.
                tracing::warn!(account, cause = %e, "fetch failed; using the cached mirror");
            }
        }
    }
}

/// Brings `account`'s mirror up to date (no-op in local mode).
pub async fn refresh(ctx: &Context, account: &str) -> Result<(), ReconcileError> {
    match &ctx.mirrors {
        Some(m) => {
            let path = project_path(ctx, account).await?;
            m.fetch(account, path.as_deref())
                .await
                .map_err(ReconcileError::Fetch)
        }
        None => Ok(()),
    }
}

/// Brings the one ref a preview plans (a branch, or a merge request's
/// head) into `account`'s mirror (no-op in local mode).
pub async fn refresh_ref(
    ctx: &Context,
    account: &str,
    git_ref: &str,
) -> Result<(), ReconcileError> {
    match &ctx.mirrors {
        Some(m) => {
            let path = project_path(ctx, account).await?;
            m.fetch_ref(account, path.as_deref(), git_ref)
                .await
                .map_err(ReconcileError::Fetch)
        }
        None => Ok(()),
    }
}

async fn project_path(ctx: &Context, account: &str) -> Result<Option<String>, ReconcileError> {
    let account = account.to_string();
    Ok(ctx.store.call(move |s| s.project_path(&account)).await?)
}

async fn gitlab_accounts(ctx: &Context, groups: &[String]) -> Result<Vec<String>, ReconcileError> {
    let projects = workspace_projects(ctx, groups).await?;
    let found: Vec<(String, u64, String)> = projects
        .iter()
        .map(|(a, p)| (a.clone(), p.id, p.path_with_namespace.clone()))
        .collect();
    ctx.store
        .call(move |s| {
            for (account, id, path) in &found {
                let recorded = s
                    .set_project(account, *id)
                    .and_then(|()| s.set_project_path(account, path));
                if let Err(e) = recorded {
                    tracing::warn!(account, cause = %e, "recording the project");
                }
            }
        })
        .await;
    let mut accounts: Vec<String> = projects.into_iter().map(|(account, _)| account).collect();
    accounts.sort();
    accounts.dedup();
    Ok(accounts)
}

/// Access a member needs to a group project for it to be taken as their
/// workspace: Maintainer (GitLab's 40).
const OWNING_ACCESS: u32 = 40;

/// `(account, project)` for every project `<account>/<repository>` of the
/// groups that holds a `workspace.yaml` on its default branch and is the
/// account's own: in its user namespace, or a group project it maintains.
/// Anyone who may create subgroups can make `<group>/<theirs>/<account>/…`;
/// such a project is not the account's. Where several of an account's own
/// projects qualify, the one at `<group>/<account>` (or its user namespace)
/// is taken; if that does not decide, none is, and an admin is told.
pub async fn workspace_projects(
    ctx: &Context,
    groups: &[String],
) -> Result<Vec<(String, crate::inputs::gitlab::ProjectInfo)>, ReconcileError> {
    let Some(gl) = &ctx.gitlab else {
        return Err(ReconcileError::NoGitLab);
    };
    let mut found: std::collections::BTreeMap<String, Vec<crate::inputs::gitlab::ProjectInfo>> =
        Default::default();
    for (account, project) in candidates(ctx, gl, groups).await? {
        if owned_by(gl, &account, &project).await? {
            found.entry(account).or_default().push(project);
        } else {
            tracing::warn!(
                account,
                project = %project.path_with_namespace,
                "not the account's workspace: neither its user namespace nor a project it maintains"
            );
        }
    }
    let mut out = Vec::new();
    for (account, mut projects) in found {
        if projects.len() > 1 {
            projects.retain(|p| canonical(groups, &account, p));
        }
        match projects.len() {
            1 => out.extend(projects.pop().map(|p| (account, p))),
            _ => tracing::warn!(
                account,
                "several projects could be this account's workspace; none is taken until one is left"
            ),
        }
    }
    Ok(out)
}

/// Whether `project` is `account`'s: its user namespace, or a project of a
/// group in which the account is at least a maintainer.
async fn owned_by(
    gl: &crate::inputs::gitlab::GitLab,
    account: &str,
    project: &crate::inputs::gitlab::ProjectInfo,
) -> Result<bool, ReconcileError> {
    if let Some(ns) = &project.namespace
        && ns.kind == "user"
    {
        return Ok(ns.path == account);
    }
    let Some(user) = gl.user_id(account).await? else {
        return Ok(false);
    };
    Ok(gl
        .member_access(project.id, user)
        .await?
        .is_some_and(|level| level >= OWNING_ACCESS))
}

/// A project where the account's workspace is expected: its user
/// namespace, or directly under a configured group.
fn canonical(
    groups: &[String],
    account: &str,
    project: &crate::inputs::gitlab::ProjectInfo,
) -> bool {
    let Some(ns) = &project.namespace else {
        return false;
    };
    ns.kind == "user"
        || groups
            .iter()
            .any(|g| ns.full_path == format!("{}/{account}", g.trim_matches('/')))
}

/// Projects named like a workspace in the groups, with `workspace.yaml`.
async fn candidates(
    ctx: &Context,
    gl: &crate::inputs::gitlab::GitLab,
    groups: &[String],
) -> Result<Vec<(String, crate::inputs::gitlab::ProjectInfo)>, ReconcileError> {
    let mut out = Vec::new();
    for group in groups {
        for project in gl.group_projects(group).await? {
            // The same rule as the webhook's (path, group, repository name).
            let Some(account) = ctx
                .site
                .repositories
                .account_of(&project.path_with_namespace)
                .map(str::to_string)
            else {
                continue;
            };
            let branch = project.default_branch.as_deref().unwrap_or("main");
            if gl
                .has_file(project.id, crate::inputs::source::WORKSPACE_FILE, branch)
                .await?
            {
                out.push((account, project));
            }
        }
    }
    Ok(out)
}
