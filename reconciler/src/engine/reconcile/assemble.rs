//! Build: the plan of an account once its revision is decided — where its
//! Docker containers go (endpoint, host ports, GPUs), the containers and
//! the runner's against what the endpoint holds, and the Kubernetes
//! manifests against the cluster. Reads the store for allocations and the
//! runner's registration; changes nothing.

use super::AccountPlan;
use super::pins::shared_with;
use crate::clients::{Context, Observed, ReconcileError, Result};
use crate::inputs::identity::Account;
use berth_core::desired::kube::{Owner, manifests};
use berth_core::desired::{self, PortKey};
use berth_core::plan::{self, Action, ObservedAccount};
use berth_spec::{Backend, Workspace};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What building an account's plan needs besides the plan itself.
pub(super) struct Build<'a> {
    pub ctx: &'a Arc<Context>,
    pub account: &'a str,
    pub workspace: &'a Workspace,
    pub identity: Option<&'a Account>,
    pub observed: &'a Observed,
    pub revision: &'a str,
    /// A preview: plan as if, but hold no host port, GPU or placement.
    pub preview: bool,
    /// The home mount per Docker endpoint (checked beforehand, off this
    /// thread); empty when no container asks for its home.
    pub homes: &'a BTreeMap<String, std::result::Result<desired::HomeMount, String>>,
}

/// Both halves of the plan: Docker (when the site has endpoints), then
/// Kubernetes.
pub(super) fn build(b: &Build<'_>, plan: &mut AccountPlan) -> Result<()> {
    if !b.ctx.docker.is_empty() {
        docker_plan(b, plan)?;
    }
    kube_plan(b, plan)
}

/// The Kubernetes half of the plan: the account's manifests against the
/// cluster's objects. An account without Kubernetes containers is not held
/// up by an unreachable cluster (its prune waits for the next reconcile).
fn kube_plan(b: &Build<'_>, plan: &mut AccountPlan) -> Result<()> {
    let Build {
        ctx,
        account,
        workspace,
        identity,
        observed,
        revision,
        ..
    } = *b;
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

/// The Docker half of the plan: endpoint and host ports, the containers
/// (and the runner's) against what the endpoint holds.
fn docker_plan(b: &Build<'_>, plan: &mut AccountPlan) -> Result<()> {
    let Build {
        ctx,
        account,
        workspace,
        observed,
        revision,
        ..
    } = *b;
    let site = &ctx.site;
    let groups = b.identity.map(|a| a.groups.clone()).unwrap_or_default();
    let (endpoint, ports) = reserve(ctx, account, workspace, !b.preview)?;
    let wake = matches!(plan.decision, super::Decision::Accept { .. });
    let lent = super::lending::lend(
        ctx, account, &groups, workspace, &endpoint, !b.preview, wake,
    )?;
    plan.ports = ports;
    plan.gpus = lent.devices;
    plan.gpu_waiting = lent.waiting;
    let backend_conf = site
        .backends
        .docker
        .iter()
        .find(|d| d.name.value == endpoint)
        .ok_or_else(|| ReconcileError::NoEndpoint(account.into()))?;
    // Checked beforehand for every endpoint when a container asks for its
    // home; the map is empty when none does.
    let home = if b.homes.is_empty() {
        None
    } else {
        let checked = b
            .homes
            .get(&endpoint)
            .cloned()
            .unwrap_or_else(|| Err(format!("Docker host `{endpoint}` was not checked")));
        Some(checked.map_err(|why| ReconcileError::Home {
            account: account.into(),
            why,
        })?)
    };
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
            gpu_waiting: &plan.gpu_waiting,
            disabled: plan.disabled,
            home: home.as_ref(),
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
    // A culled container stays stopped until a new revision, the student
    // or an admin starts it: `state: running` does not fight the culler.
    if !matches!(plan.decision, super::Decision::Accept { .. }) {
        let culled = ctx.store.culled(account)?;
        for d in desired
            .iter_mut()
            .filter(|d| culled.contains_key(&d.full_name))
        {
            d.state = berth_spec::State::Stopped;
        }
    }
    let runner_actions = runner_plan(b, backend_conf, plan, &mut desired)?;
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
    let Some(runner) = desired.iter().find(|d| berth_core::runner::is_runner(d)) else {
        return Ok(None);
    };
    let replaced = plan.actions.iter().any(|a| {
        matches!(a, Action::Create { container } | Action::Recreate { container, .. }
            if berth_core::runner::is_runner(container))
    });
    let Some(live) = observed.containers.iter().find(|c| c.name == runner.name) else {
        return Ok(None);
    };
    let hash = berth_core::runner::config_hash(runner);
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
fn runner_plan(
    b: &Build<'_>,
    endpoint: &berth_spec::site::DockerEndpoint,
    plan: &mut AccountPlan,
    desired: &mut Vec<desired::DesiredContainer>,
) -> Result<Vec<Action>> {
    let Build {
        ctx,
        account,
        workspace: ws,
        identity,
        revision,
        ..
    } = *b;
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
    let actions =
        match berth_core::runner::registration(wanted.as_deref(), stored.as_ref(), project) {
            Ok(a) => a,
            Err(why) => {
                plan.warnings.push(why.to_string());
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
        let settings = berth_core::runner::Settings {
            gitlab_url: url.value.clone(),
            image: gl.runner_image.clone(),
            docker: berth_core::runner::DockerAccess::from_endpoint(
                endpoint,
                std::env::var("DOCKER_HOST").ok().as_deref(),
            ),
            quota_cpus: quota.as_ref().map_or(defaults.cpus, |q| q.cpus),
            quota_memory: quota
                .as_ref()
                .map_or(defaults.memory.bytes().unwrap_or(512 << 20), |q| q.memory),
            allowed: berth_core::runner::allowed_images(
                &ctx.site,
                account,
                &shared_with(&ctx.store, account)?,
            ),
            environment: match (&ctx.registry_keys, &ctx.site.registry) {
                (Some(keys), Some(registry)) => vec![format!(
                    "DOCKER_AUTH_CONFIG={}",
                    keys.ci.docker_auth_config(
                        &registry.host.value,
                        account,
                        identity.map(|a| a.entry.as_str()).unwrap_or_default()
                    )
                )],
                _ => vec![],
            },
        };
        let workspace = plan.repository.clone().unwrap_or_default();
        let runner = berth_core::runner::desired(
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
                    (Ok(ca), Ok(cert), Ok(key)) => berth_core::runner::with_tls_files(
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

/// What [`reserve`] hands an account: its endpoint and host ports.
type Reserved = (String, BTreeMap<PortKey, u16>);

/// Chooses the account's endpoint and host ports, against both the store
/// and reservations of evaluations not yet executed.
fn reserve(ctx: &Context, account: &str, ws: &Workspace, keep: bool) -> Result<Reserved> {
    let mut guard = ctx.reservations.lock().unwrap_or_else(|p| p.into_inner());
    // A preview allocates on a copy, so it holds nothing afterwards.
    let mut scratch;
    let res: &mut crate::clients::Reservations = if keep {
        &mut guard
    } else {
        scratch = guard.clone();
        &mut scratch
    };
    let mut counts = ctx.store.placement_counts()?;
    let stored = ctx.store.placement(account)?;
    for (other, ep) in &res.placements {
        if other != account && ctx.store.placement(other)?.is_none() {
            *counts.entry(ep.clone()).or_default() += 1;
        }
    }
    let sticky = stored.or_else(|| res.placements.get(account).cloned());
    let hosts: Vec<desired::Host> = ctx
        .site
        .backends
        .docker
        .iter()
        .map(|d| desired::Host {
            name: d.name.value.clone(),
            gpus: berth_spec::site::lendable(d.gpus, &d.gpu_cards).len() as u32,
            memory: d.memory.as_ref().and_then(|m| m.bytes().ok()),
            up: matches!(ctx.docker.get(&d.name.value), Some(Ok(_))),
        })
        .collect();
    let needs = desired::Needs {
        gpus: desired::gpu_needs(ws, &ctx.site, account)
            .iter()
            .map(|(_, n)| n)
            .sum(),
        memory: ws
            .containers
            .iter()
            .filter(|c| berth_spec::policy::backend_of(&ctx.site, c) == berth_spec::Backend::Docker)
            .map(|c| berth_spec::policy::requested(&ctx.site, c).1)
            .sum(),
    };
    let endpoint = desired::place(sticky.as_deref(), &hosts, &counts, needs)
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
    res.placements.insert(account.to_string(), endpoint.clone());
    Ok((endpoint, ports))
}
