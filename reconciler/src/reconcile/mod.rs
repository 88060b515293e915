//! One account's reconcile, in two halves: `evaluate` reads git, LDAP, the
//! store and observed backend state and returns an [`AccountPlan`] without
//! changing anything (this is `diff` and `apply --dry-run`); `execute`
//! records the decision and runs the plan's actions. A rejected revision
//! changes nothing: the last accepted one keeps running.

use crate::backend::kube_apply::KubeBackend;
use crate::backend::{DockerBackend, DockerError};
use crate::desired;
use crate::desired::kube::{Owner, Settings as KubeSettings, manifests};
use crate::identity::{self, Account, Directory, IdentityError};
pub mod pins;

use crate::plan::{self, Action, KubeObserved, ObservedAccount};
use crate::source::{LocalSource, Revision, SourceError, WorkspaceFile};
use crate::store::StoredRunner;
use crate::store::{GpuKey, PortKey, Store, StoreError};
use berth_spec::policy::{Shared, share_key};
use berth_spec::{Backend, Site, Workspace};
use berth_webhook::SyncRequest;
use pins::{resolve_pins, shared_with, unshared_warnings};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Ports(#[from] desired::PortsExhausted),
    #[error(transparent)]
    Gpus(#[from] crate::desired::gpus::GpusExhausted),
    #[error("no docker endpoint is available for account `{0}`")]
    NoEndpoint(String),
    #[error("docker endpoint `{endpoint}` is unavailable: {reason}")]
    EndpointDown { endpoint: String, reason: String },
    #[error("accepted revision {0} can no longer be read from the repository")]
    LostRevision(String),
    #[error("internal: {0}")]
    Join(String),
    #[error(transparent)]
    Fetch(crate::mirror::FetchError),
    #[error(transparent)]
    GitLab(#[from] crate::gitlab::GitLabError),
    #[error("repositories from GitLab need the GitLab API (gitlab.url and gitlab.token_env)")]
    NoGitLab,
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error("kubernetes cluster is unavailable: {0}")]
    ClusterDown(String),
}

pub type Result<T, E = ReconcileError> = std::result::Result<T, E>;

/// Clients and configuration shared by every reconcile. No globals.
pub struct Context {
    pub site: Site,
    pub store: Store,
    pub source: LocalSource,
    pub directory: Directory,
    /// Docker endpoints by name; an unreachable one keeps its error so only
    /// its accounts fail.
    pub docker: BTreeMap<String, std::result::Result<DockerBackend, String>>,
    /// Placements and host ports handed out by evaluations not yet
    /// persisted, so accounts evaluated concurrently never get the same port.
    pub reservations: std::sync::Mutex<Reservations>,
    /// Local mirrors of GitLab repositories (GitLab mode only).
    pub mirrors: Option<crate::mirror::Mirrors>,
    /// The GitLab API, when the site configures URL and token.
    pub gitlab: Option<crate::gitlab::GitLab>,
    /// The department registry, when the site names one.
    pub registry: Option<crate::registry::Registry>,
    /// The Kubernetes cluster, when the site has one.
    pub kube: Option<KubeCluster>,
}

/// The site's cluster: its settings, and a client or why there is none
/// (only accounts with Kubernetes containers fail then).
pub struct KubeCluster {
    pub settings: KubeSettings,
    pub backend: std::result::Result<KubeBackend, String>,
}

#[derive(Debug, Default)]
pub struct Reservations {
    placements: BTreeMap<String, String>,
    ports: BTreeMap<String, BTreeMap<PortKey, u16>>,
    gpus: BTreeMap<String, BTreeMap<GpuKey, Vec<u32>>>,
}

/// What happens to the revision at the head of the repository.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// The head is the accepted revision.
    Unchanged,
    /// The head will be (or was) accepted.
    Accept { revision: String, commits: usize },
    /// The head is refused; the last accepted revision stays.
    Reject { revision: String, reason: String },
    /// No repository or no commit yet: nothing is touched.
    NoRepository,
    /// The head has no `workspace.yaml` and no revision was ever accepted:
    /// the account is not managed (nothing is reported as failed).
    NoWorkspace,
    /// With GitLab configured, only an authenticated push introduces a
    /// revision; this head has not come with one (yet).
    AwaitingPush { revision: String },
}

/// Everything `execute` needs, computed without side effects.
#[derive(Clone, Debug, Serialize)]
pub struct AccountPlan {
    pub account: String,
    pub repository: Option<String>,
    pub endpoint: Option<String>,
    pub decision: Decision,
    /// The revision desired state comes from (after the decision).
    pub revision: Option<String>,
    pub disabled: bool,
    /// Why the account is stopped (unknown in the directory, disabled, in
    /// no allowed group); `None` while it may run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    pub actions: Vec<Action>,
    #[serde(skip)]
    pub ports: BTreeMap<PortKey, u16>,
    /// GPU ids given to the account's GPU containers on its host.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub gpus: BTreeMap<GpuKey, Vec<u32>>,
    /// Department-registry images of the revision, pinned: share key → digest.
    pub pins: BTreeMap<String, String>,
    /// What an accepted revision shares (share key → description).
    #[serde(skip)]
    pub shares: BTreeMap<String, String>,
    /// Images of the desired containers (for image GC bookkeeping).
    #[serde(skip)]
    pub images: Vec<String>,
    /// The pushed project's id and path, recorded once the push is
    /// accepted (never from a push that was not).
    #[serde(skip)]
    pub project: Option<(u64, String)>,
    pub warnings: Vec<String>,
}

/// Outcome of executing one plan.
#[derive(Clone, Debug, Serialize)]
pub struct AccountReport {
    pub account: String,
    pub decision: Decision,
    pub applied: Vec<String>,
    pub errors: Vec<String>,
    /// The audit entry of the first failed action: what a student is shown
    /// instead of the backend's words (internal addresses, other services'
    /// answers stay in the audit log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_audit: Option<i64>,
}

impl Context {
    fn endpoints(&self) -> Vec<String> {
        self.docker.keys().cloned().collect()
    }

    fn backend(&self, endpoint: &str) -> Result<&DockerBackend> {
        match self.docker.get(endpoint) {
            Some(Ok(b)) => Ok(b),
            Some(Err(reason)) => Err(ReconcileError::EndpointDown {
                endpoint: endpoint.into(),
                reason: reason.clone(),
            }),
            None => Err(ReconcileError::NoEndpoint(endpoint.into())),
        }
    }

    fn kube_backend(&self) -> std::result::Result<&KubeBackend, String> {
        match &self.kube {
            Some(k) => k
                .backend
                .as_ref()
                .map_err(|e| ReconcileError::ClusterDown(e.clone()).to_string()),
            None => Err("the site has no Kubernetes cluster".into()),
        }
    }

    /// Observes every reachable endpoint once: endpoint → account → objects.
    pub async fn observe_all(&self) -> Observed {
        self.observe(None).await
    }

    /// Observes one account's objects on every endpoint (cheap: filtered
    /// by label on the daemon).
    pub async fn observe_account(&self, account: &str) -> Observed {
        self.observe(Some(account)).await
    }

    async fn observe(&self, account: Option<&str>) -> Observed {
        let mut docker = BTreeMap::new();
        for (name, backend) in &self.docker {
            let observed = match backend {
                Ok(b) => b.observe(account).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.clone()),
            };
            docker.insert(name.clone(), observed);
        }
        let kube = match &self.kube {
            Some(k) => Some(match &k.backend {
                Ok(b) => b
                    .observe(&k.settings.namespace_prefix, account)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.clone()),
            }),
            None => None,
        };
        Observed { docker, kube }
    }

    async fn read_source<T: Send + 'static>(
        &self,
        f: impl FnOnce(&LocalSource) -> std::result::Result<T, SourceError> + Send + 'static,
    ) -> Result<T> {
        let source = self.source.clone();
        Ok(tokio::task::spawn_blocking(move || f(&source))
            .await
            .map_err(|e| ReconcileError::Join(e.to_string()))??)
    }
}

/// Parses a revision's workspace and checks it against site policy.
fn check_revision(
    site: &Site,
    account: &Account,
    rev: &Revision,
    shared: &Shared,
) -> std::result::Result<Workspace, String> {
    let bytes = match &rev.file {
        WorkspaceFile::Missing => {
            return Err(
                "workspace.yaml is missing at this commit; nothing was changed (to remove every container, commit `containers: []`)"
                    .to_string(),
            );
        }
        WorkspaceFile::NotAFile(what) => {
            return Err(format!(
                "workspace.yaml is {what}, not a regular file; nothing was changed"
            ));
        }
        WorkspaceFile::TooLarge(n) => {
            return Err(format!("workspace.yaml is {n} bytes, far over the limit"));
        }
        WorkspaceFile::Present(b) => b,
    };
    let describe = |d: berth_spec::Diagnostics| {
        d.iter()
            .map(|d| format!("workspace.yaml:{d}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let ws = berth_spec::parse_workspace(bytes).map_err(describe)?;
    berth_spec::policy::check_with(&ws, site, &account.name, &account.groups, shared)
        .map_err(describe)?;
    Ok(ws)
}

/// Observed state of every backend, by account. An unreachable backend
/// keeps its error so that only the accounts using it fail.
#[derive(Debug, Default)]
pub struct Observed {
    /// By Docker endpoint, then by account.
    pub docker: BTreeMap<String, Result<BTreeMap<String, ObservedAccount>, String>>,
    /// By account; `None` when the site has no cluster.
    pub kube: Option<Result<BTreeMap<String, KubeObserved>, String>>,
}

/// Computes the plan of one account. Reads only. `push` is the
/// authenticated push that asks for this reconcile, if any.
#[tracing::instrument(skip(ctx, observed, push), fields(account))]
pub async fn evaluate(
    ctx: &Arc<Context>,
    account: &str,
    observed: &Observed,
    push: Option<&SyncRequest>,
) -> Result<AccountPlan> {
    let site = &ctx.site;
    let name = account.to_string();
    let head = ctx.read_source(move |s| s.head(&name)).await?;
    let mut plan = AccountPlan {
        account: account.into(),
        repository: head.as_ref().map(|h| h.repository.clone()),
        endpoint: None,
        decision: Decision::NoRepository,
        revision: None,
        disabled: false,
        stopped: None,
        actions: vec![],
        ports: BTreeMap::new(),
        gpus: BTreeMap::new(),
        pins: BTreeMap::new(),
        shares: BTreeMap::new(),
        images: vec![],
        project: None,
        warnings: vec![],
    };
    let identity = ctx.directory.lookup(account).await?;
    if let Err(why) = identity::standing(site, account, identity.as_ref()) {
        plan.disabled = true;
        plan.stopped = Some(why.to_string());
        plan.warnings.push(format!(
            "stopped: {why}; containers are stopped and volumes kept"
        ));
    }
    let accepted = ctx.store.accepted(account)?;
    let Some(head) = head else {
        // An archived or deleted repository is still visited: an account
        // that must stop is stopped from what the backends hold.
        if plan.disabled {
            stop_everything(ctx, account, observed, &mut plan)?;
        }
        return Ok(plan);
    };
    if accepted.is_none() && head.file == WorkspaceFile::Missing {
        plan.decision = Decision::NoWorkspace;
        return Ok(plan);
    }
    // Read once: admission checks and the unshared-image warnings both use it.
    let shared = shared_with(ctx, account)?;
    let mut workspace = None;
    if accepted.as_ref().map(|a| a.revision.as_str()) == Some(head.sha.as_str()) {
        plan.decision = Decision::Unchanged;
        plan.revision = Some(head.sha.clone());
    } else if site.gitlab.is_some()
        && push.and_then(|p| p.revision.as_deref()) != Some(head.sha.as_str())
    {
        plan.decision = Decision::AwaitingPush {
            revision: head.sha.clone(),
        };
        plan.revision = accepted.as_ref().map(|a| a.revision.clone());
    } else {
        let pusher_ok = check_pusher(ctx, account, identity.as_ref(), push).await?;
        let verdict = pusher_ok
            .and_then(|()| identity::admit(site, account, identity.as_ref(), &head.committer_email))
            .map_err(|r| r.to_string())
            .and_then(|()| {
                check_revision(
                    site,
                    identity.as_ref().ok_or("unknown account")?,
                    &head,
                    &shared,
                )
            });
        let verdict = match verdict {
            Ok(ws) => match resolve_pins(ctx, &ws).await? {
                Ok(pins) => {
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
                    Ok(ws)
                }
                Err(reason) => Err(reason),
            },
            Err(e) => Err(e),
        };
        match verdict {
            Ok(ws) => {
                let (name, sha, since) = (
                    account.to_string(),
                    head.sha.clone(),
                    accepted.as_ref().map(|a| a.revision.clone()),
                );
                let commits = ctx
                    .read_source(move |s| s.commits_since(&name, &sha, since.as_deref()))
                    .await?
                    .len();
                plan.decision = Decision::Accept {
                    revision: head.sha.clone(),
                    commits,
                };
                plan.project =
                    push.and_then(|p| Some((p.project_id?, p.path.clone().unwrap_or_default())));
                plan.revision = Some(head.sha.clone());
                workspace = Some(ws);
            }
            Err(reason) => {
                plan.decision = Decision::Reject {
                    revision: head.sha.clone(),
                    reason,
                };
                plan.revision = accepted.as_ref().map(|a| a.revision.clone());
            }
        }
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
        plan.pins = ctx.store.pins(account, &revision)?;
    }
    plan.warnings.extend(unshared_warnings(
        ctx, account, &workspace, &shared, &plan.pins,
    ));
    if !ctx.docker.is_empty() {
        docker_plan(
            ctx,
            account,
            &workspace,
            identity.as_ref(),
            observed,
            &revision,
            &mut plan,
        )?;
    }
    kube_plan(
        ctx,
        account,
        &workspace,
        identity.as_ref(),
        observed,
        &revision,
        &mut plan,
    )?;
    Ok(plan)
}

/// The Kubernetes half of the plan: the account's manifests against the
/// cluster's objects. An account without Kubernetes containers is not held
/// up by an unreachable cluster (its prune waits for the next reconcile).
fn kube_plan(
    ctx: &Context,
    account: &str,
    workspace: &Workspace,
    identity: Option<&Account>,
    observed: &Observed,
    revision: &str,
    plan: &mut AccountPlan,
) -> Result<()> {
    let Some(cluster) = &ctx.kube else {
        return Ok(());
    };
    let containers: Vec<&berth_spec::Container> = workspace
        .containers
        .iter()
        .filter(|c| berth_spec::policy::backend_of(&ctx.site, c) == Backend::Kubernetes)
        .collect();
    let live = match &observed.kube {
        Some(Ok(map)) => map.get(account).cloned().unwrap_or_default(),
        Some(Err(reason)) if !containers.is_empty() => {
            return Err(ReconcileError::ClusterDown(reason.clone()));
        }
        _ => return Ok(()),
    };
    // An account unknown to the directory has no groups and is stopped
    // (scaled to zero, no RoleBinding) like a disabled one.
    let groups = identity.map(|a| a.groups.clone()).unwrap_or_default();
    let quota = berth_spec::policy::effective_quota(&ctx.site, &groups);
    let desired = manifests(
        &cluster.settings,
        &ctx.site,
        &Owner {
            account,
            repository: plan.repository.as_deref().unwrap_or_default(),
            revision,
            disabled: plan.disabled,
            pins: &plan.pins,
        },
        &containers,
        quota.as_ref(),
    );
    plan.actions.extend(plan::plan_kube(&desired, &live));
    Ok(())
}

/// Whether the push's pusher may push to `account`. With a GitLab token the
/// pusher's GitLab user is bound to the directory through its LDAP
/// identity (`extern_uid` = the account's DN, or an admin's); without one,
/// only the username is compared (see the README for what each proves).
async fn check_pusher(
    ctx: &Context,
    account: &str,
    target: Option<&Account>,
    push: Option<&SyncRequest>,
) -> Result<std::result::Result<(), identity::Rejection>> {
    let Some(push) = push else { return Ok(Ok(())) };
    let Some(pusher) = push.pusher.as_deref() else {
        return Ok(Ok(()));
    };
    let pusher_account = if pusher != account {
        ctx.directory.lookup(pusher).await?
    } else {
        target.cloned()
    };
    match (&ctx.gitlab, push.pusher_id) {
        (Some(gl), Some(id)) => {
            let user = gl.user(id).await?;
            let provider = ctx
                .site
                .gitlab
                .as_ref()
                .map(|g| g.ldap_provider.as_str())
                .unwrap_or_default();
            Ok(identity::pusher_bound(
                &ctx.site,
                account,
                target,
                pusher,
                user.ldap_dn(provider),
                pusher_account.as_ref(),
            ))
        }
        _ if pusher == account => Ok(Ok(())),
        _ => Ok(identity::pusher_allowed(
            &ctx.site,
            account,
            pusher,
            pusher_account.as_ref(),
        )),
    }
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
) -> Result<()> {
    let placed = ctx.store.placement(account)?;
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
    if let Some(runner) = ctx.store.runner(account)? {
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
    Ok(())
}

/// The Docker half of the plan: endpoint and host ports, the containers
/// (and the runner's) against what the endpoint holds.
#[allow(clippy::too_many_arguments)]
fn docker_plan(
    ctx: &Arc<Context>,
    account: &str,
    workspace: &Workspace,
    identity: Option<&Account>,
    observed: &Observed,
    revision: &str,
    plan: &mut AccountPlan,
) -> Result<()> {
    let site = &ctx.site;
    let (endpoint, ports, gpus) = reserve(ctx, account, workspace)?;
    plan.ports = ports;
    plan.gpus = gpus;
    let backend_conf = site
        .backends
        .docker
        .iter()
        .find(|d| d.name.value == endpoint)
        .ok_or_else(|| ReconcileError::NoEndpoint(account.into()))?;
    let desired = desired::containers(
        workspace,
        &desired::Context {
            site,
            account,
            workspace: plan.repository.as_deref().unwrap_or_default(),
            revision,
            bind_address: &backend_conf.bind_address,
            ports: &plan.ports,
            pins: &plan.pins,
            gpus: &plan.gpus,
            disabled: plan.disabled,
        },
    );
    plan.images = desired.iter().map(|d| d.spec.image.clone()).collect();
    let observed_here = match observed.docker.get(&endpoint) {
        Some(Ok(map)) => map.get(account).cloned().unwrap_or_default(),
        Some(Err(reason)) => {
            return Err(ReconcileError::EndpointDown {
                endpoint,
                reason: reason.clone(),
            });
        }
        None => return Err(ReconcileError::NoEndpoint(account.into())),
    };
    let mut desired = desired;
    let runner_actions = runner_plan(
        ctx,
        account,
        workspace,
        identity,
        backend_conf,
        revision,
        plan,
        &mut desired,
    )?;
    plan.actions = runner_actions;
    plan.actions.extend(plan::plan(
        &desired,
        &observed_here,
        &desired::network_name(account),
    ));
    if let Some(update) = runner_config_update(ctx, account, &desired, &observed_here, plan)? {
        plan.actions.push(update);
    }
    plan.endpoint = Some(endpoint);
    Ok(())
}

/// The in-place rewrite of a running runner's config, when only what it
/// reloads by itself (the allow-lists) changed: recreating it would kill
/// the student's running jobs.
fn runner_config_update(
    ctx: &Context,
    account: &str,
    desired: &[desired::DesiredContainer],
    observed: &ObservedAccount,
    plan: &AccountPlan,
) -> Result<Option<Action>> {
    let Some(runner) = desired.iter().find(|d| crate::runner::is_runner(d)) else {
        return Ok(None);
    };
    let replaced = plan.actions.iter().any(|a| {
        matches!(a, Action::Create { container } | Action::Recreate { container, .. }
            if crate::runner::is_runner(container))
    });
    let Some(live) = observed.containers.iter().find(|c| c.name == runner.name) else {
        return Ok(None);
    };
    let hash = crate::runner::config_hash(runner);
    if replaced || ctx.store.runner_config(account)?.as_deref() == Some(hash.as_str()) {
        return Ok(None);
    }
    Ok(Some(Action::UpdateRunnerConfig {
        id: live.id.clone(),
        name: live.full_name.clone(),
        hash,
        template: runner.uploads.clone(),
    }))
}

/// Runner registration actions, and the runner container added to
/// `desired`, when the workspace asks for a runner (or had one).
#[allow(clippy::too_many_arguments)]
fn runner_plan(
    ctx: &Context,
    account: &str,
    ws: &Workspace,
    identity: Option<&Account>,
    endpoint: &berth_spec::site::DockerEndpoint,
    revision: &str,
    plan: &mut AccountPlan,
    desired: &mut Vec<desired::DesiredContainer>,
) -> Result<Vec<Action>> {
    // A stopped account's runner is unregistered and its container removed:
    // a stopped runner container would keep a live token on the host.
    let wanted: Option<Vec<String>> = ws
        .runner
        .as_ref()
        .filter(|r| r.enabled && plan.stopped.is_none())
        .map(|r| r.tags.iter().map(|t| t.value.clone()).collect());
    let stored = ctx.store.runner(account)?;
    let (Some(_), Some(gl), Some(url)) = (
        &ctx.gitlab,
        &ctx.site.gitlab,
        ctx.site.gitlab.as_ref().and_then(|g| g.url.as_ref()),
    ) else {
        if wanted.is_some() {
            plan.warnings.push(
                "a runner needs the GitLab API (gitlab.url and gitlab.token_env in site.yaml)"
                    .into(),
            );
        }
        return Ok(vec![]);
    };
    // Only an accepted push names the project: a push that was refused
    // (another account's developer, a wrong path) never decides where the
    // account's runner registers.
    let project = plan
        .project
        .as_ref()
        .map(|(id, _)| *id)
        .or(ctx.store.project(account)?);
    let actions = match crate::runner::registration(wanted.as_deref(), stored.as_ref(), project) {
        Ok(a) => a,
        Err(why) => {
            plan.warnings.push(why);
            return Ok(vec![]);
        }
    };
    let registering = actions
        .iter()
        .any(|a| matches!(a, Action::RegisterRunner { .. }));
    if let Some(tags) = &wanted
        && (stored.is_some() || registering)
    {
        let groups = identity.map(|a| a.groups.clone()).unwrap_or_default();
        let quota = berth_spec::policy::effective_quota(&ctx.site, &groups);
        let defaults = &ctx.site.policy.default_resources;
        let settings = crate::runner::Settings {
            gitlab_url: url.value.clone(),
            image: gl.runner_image.clone(),
            docker: crate::runner::DockerAccess::from_endpoint(endpoint),
            quota_cpus: quota.as_ref().map_or(defaults.cpus, |q| q.cpus),
            quota_memory: quota
                .as_ref()
                .map_or(defaults.memory.bytes().unwrap_or(512 << 20), |q| q.memory),
            allowed: crate::runner::allowed_images(&ctx.site, account, &shared_with(ctx, account)?),
        };
        let workspace = plan.repository.clone().unwrap_or_default();
        let runner = crate::runner::desired(
            &settings,
            account,
            &workspace,
            revision,
            tags,
            plan.disabled,
        );
        let runner = match &endpoint.tls {
            None => runner,
            Some(tls) => {
                let read = |path: &str| {
                    std::fs::read(path).map_err(|e| format!("reading {path} for the runner: {e}"))
                };
                match (read(&tls.ca), read(&tls.cert), read(&tls.key)) {
                    (Ok(ca), Ok(cert), Ok(key)) => crate::runner::with_tls_files(
                        runner,
                        [("ca.pem", ca), ("cert.pem", cert), ("key.pem", key)],
                    ),
                    (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                        plan.warnings.push(e);
                        return Ok(actions);
                    }
                }
            }
        };
        desired.push(runner);
    }
    Ok(actions)
}

/// What [`reserve`] hands an account: its endpoint, host ports and GPUs.
type Reserved = (String, BTreeMap<PortKey, u16>, BTreeMap<GpuKey, Vec<u32>>);

/// Chooses the account's endpoint and host ports, against both the store
/// and reservations of evaluations not yet executed.
fn reserve(ctx: &Context, account: &str, ws: &Workspace) -> Result<Reserved> {
    let mut res = ctx.reservations.lock().unwrap_or_else(|p| p.into_inner());
    let mut counts = ctx.store.placement_counts()?;
    let stored = ctx.store.placement(account)?;
    for (other, ep) in &res.placements {
        if other != account && ctx.store.placement(other)?.is_none() {
            *counts.entry(ep.clone()).or_default() += 1;
        }
    }
    let sticky = stored.or_else(|| res.placements.get(account).cloned());
    let endpoint = desired::place(sticky.as_deref(), &ctx.endpoints(), &counts)
        .ok_or_else(|| ReconcileError::NoEndpoint(account.into()))?;
    let host = ctx
        .site
        .backends
        .docker
        .iter()
        .find(|d| d.name.value == endpoint)
        .ok_or_else(|| ReconcileError::NoEndpoint(account.into()))?;
    let range = host.host_ports.value;
    let mut existing = ctx.store.ports(&endpoint)?;
    let reserved = res.ports.entry(endpoint.clone()).or_default();
    for (key, port) in reserved.iter() {
        existing.entry(key.clone()).or_insert(*port);
    }
    let needs = desired::port_needs(ws, &ctx.site, account);
    let ports = desired::allocate_ports(&endpoint, range, &existing, &needs)?;
    reserved.retain(|k, _| k.account != account);
    reserved.extend(ports.iter().map(|(k, v)| (k.clone(), *v)));
    let mut held = ctx.store.gpus(&endpoint)?;
    let reserved = res.gpus.entry(endpoint.clone()).or_default();
    for (key, ids) in reserved.iter() {
        held.entry(key.clone()).or_insert_with(|| ids.clone());
    }
    let gpus = crate::desired::gpus::allocate(
        &endpoint,
        host.gpus,
        host.gpu_sharing,
        &held,
        &desired::gpu_needs(ws, &ctx.site, account),
    )?;
    reserved.retain(|k, _| k.account != account);
    reserved.extend(gpus.iter().map(|(k, v)| (k.clone(), v.clone())));
    res.placements.insert(account.to_string(), endpoint.clone());
    Ok((endpoint, ports, gpus))
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
    };
    let mut rejection = None;
    match &plan.decision {
        Decision::Accept { revision, commits } => {
            let repo = plan.repository.as_deref().unwrap_or_default();
            store.accept(
                account,
                repo,
                revision,
                &format!("{commits} new commit(s); identity and policy checks passed"),
            )?;
            store.set_pins(account, revision, &plan.pins)?;
            store.set_shares(account, &plan.shares)?;
            if let Some((id, path)) = &plan.project {
                store.set_project(account, *id)?;
                if !path.is_empty() {
                    store.set_project_path(account, path)?;
                }
            }
        }
        Decision::Reject { revision, reason } => {
            let message = format!("revision {} rejected: {reason}", short(revision));
            if store.last_error(account)?.map(|(_, m)| m) != Some(message.clone()) {
                store.audit(account, "rejected", Some(revision), reason)?;
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
        ctx.backend(endpoint)?;
    }
    for action in &plan.actions {
        let line = describe(action);
        match run_action(ctx, plan, action).await? {
            Ok(()) => {
                store.audit(account, "action", plan.revision.as_deref(), &line)?;
                report.applied.push(line);
            }
            Err(e) => {
                tracing::warn!(cause = %e, "action failed");
                let id = store.audit(
                    account,
                    "action-failed",
                    plan.revision.as_deref(),
                    &format!("{line}: {e}"),
                )?;
                report.error_audit.get_or_insert(id);
                report.errors.push(format!("{line}: {e}"));
            }
        }
    }
    let last = rejection.or_else(|| report.errors.first().cloned());
    if let Some(endpoint) = &plan.endpoint
        && let Ok(backend) = ctx.backend(endpoint)
    {
        for image in backend.take_pulled() {
            store.record_pull(endpoint, &image)?;
        }
        store.touch_images(endpoint, &plan.images)?;
    }
    store.set_last_error(account, last.as_deref())?;
    store.set_warnings(account, &plan.warnings)?;
    Ok(report)
}

/// Runs one action on the backend it belongs to. The outer error is the
/// store's (fatal for this account); the inner one is the action's.
async fn run_action(
    ctx: &Context,
    plan: &AccountPlan,
    action: &Action,
) -> Result<std::result::Result<(), String>> {
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
            let Some(runner) = ctx.store.runner(account)? else {
                return Ok(Err("no runner is registered".to_string()));
            };
            let files: Vec<(String, Vec<u8>)> = template
                .iter()
                .map(|(path, t)| (path.clone(), crate::runner::fill_token(t, &runner.token)))
                .collect();
            let docker = match &plan.endpoint {
                Some(endpoint) => ctx.backend(endpoint).map_err(|e| e.to_string()),
                None => Err("no docker endpoint was chosen for this account".to_string()),
            };
            match docker {
                Ok(b) => match b.upload(id, name, &files).await {
                    Ok(()) => {
                        ctx.store.set_runner_config(account, hash)?;
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
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
            Ok(k) => k
                .delete(kind, namespace, name)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        },
        _ => {
            let action = match with_runner_token(ctx, account, action)? {
                Ok(action) => action,
                Err(e) => return Ok(Err(e)),
            };
            let docker = match &plan.endpoint {
                Some(endpoint) => ctx.backend(endpoint).map_err(|e| e.to_string()),
                None => Err("no docker endpoint was chosen for this account".to_string()),
            };
            let result = match docker {
                Ok(b) => b.execute(account, &action).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            // The config a created runner holds is the one it was made with.
            if result.is_ok()
                && let Action::Create { container } | Action::Recreate { container, .. } =
                    action.as_ref()
                && crate::runner::is_runner(container)
            {
                ctx.store
                    .set_runner_config(account, &crate::runner::config_hash(container))?;
            }
            result
        }
    })
}

/// The action with the registered runner token put into the runner
/// container's config (it never enters the plan); other actions as they are.
fn with_runner_token<'a>(
    ctx: &Context,
    account: &str,
    action: &'a Action,
) -> Result<std::result::Result<std::borrow::Cow<'a, Action>, String>> {
    let (Action::Create { container } | Action::Recreate { container, .. }) = action else {
        return Ok(Ok(std::borrow::Cow::Borrowed(action)));
    };
    if !crate::runner::is_runner(container) {
        return Ok(Ok(std::borrow::Cow::Borrowed(action)));
    }
    let Some(runner) = ctx.store.runner(account)? else {
        return Ok(Err(
            "no runner is registered (registration failed?)".to_string()
        ));
    };
    let mut real = action.clone();
    if let Action::Create { container } | Action::Recreate { container, .. } = &mut real {
        **container = crate::runner::with_token(container, &runner.token);
    }
    Ok(Ok(std::borrow::Cow::Owned(real)))
}

/// Applies Kubernetes objects in order, stopping at the first failure (a
/// workload needs its namespace). An object the plan found missing is
/// first checked not to be someone else's: a forced apply would take it.
async fn kube_apply(
    ctx: &Context,
    account: &str,
    objects: &[crate::desired::kube::KubeObject],
    changes: &[plan::Change],
) -> std::result::Result<(), String> {
    let k = ctx.kube_backend()?;
    for o in objects {
        if plan::is_absent(changes, o) {
            k.check_owner(o, account).await.map_err(|e| e.to_string())?;
        }
        k.apply(o).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Registers or deletes the account's GitLab runner; the token goes to the
/// store only.
async fn gitlab_action(
    ctx: &Context,
    account: &str,
    action: &Action,
) -> std::result::Result<(), String> {
    let Some(gl) = &ctx.gitlab else {
        return Err("the site has no GitLab API".into());
    };
    match action {
        Action::RegisterRunner { project, tags } => {
            let created = gl
                .create_runner(*project, &format!("berth {account}"), tags)
                .await
                .map_err(|e| e.to_string())?;
            let stored = StoredRunner {
                id: created.id,
                token: created.token,
                tags: tags.clone(),
            };
            ctx.store
                .set_runner(account, Some(&stored))
                .map_err(|e| e.to_string())
        }
        Action::UnregisterRunner { id } => {
            gl.delete_runner(*id).await.map_err(|e| e.to_string())?;
            ctx.store
                .set_runner(account, None)
                .map_err(|e| e.to_string())
        }
        _ => Ok(()),
    }
}

/// One line for logs and the audit: `create alice-web`.
pub fn describe(action: &Action) -> String {
    format!("{} {}", action.kind(), action.target())
}

pub fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
