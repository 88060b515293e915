//! The read model: one typed view of an account's state (accepted
//! revision, pending or rejected head, containers with state, image, ports,
//! GPUs, Kubernetes readiness and URL, warnings, last error), built from
//! the store and the last observation of the backends. `status` prints it,
//! `serve` keeps it in memory per account and serves it at
//! `GET /api/v1/accounts` (so reading never costs a Docker or Kubernetes
//! call), and the console will show it.

use crate::clients::Observed;
use crate::store::{Store, StoreError};
use berth_core::desired::{LABEL_NAME, LABEL_REVISION};
use berth_core::plan::{KubeObserved, ObservedAccount};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Deserialize: `status --server` reads it back from serve's API.
#[derive(Debug, Serialize, Deserialize)]
pub struct ContainerView {
    pub name: String,
    /// `docker` or `kubernetes`.
    pub backend: String,
    /// Docker container name, or `namespace/deployment`.
    pub container: String,
    /// Docker's state; on Kubernetes `running` (all replicas ready),
    /// `stopped` (scaled to zero), else the pod's phase or waiting reason.
    pub state: String,
    /// Kubernetes: ready replicas of desired (`1/1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// Kubernetes: container restarts over the Deployment's pods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarts: Option<i32>,
    /// Kubernetes: the Ingress URL, for ports the site serves over HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The image reference the container runs (with `@sha256:` when pinned).
    pub image: String,
    pub revision: String,
    /// `host_ip:host_port->container_port`.
    pub ports: Vec<String>,
    /// Docker: the host's GPU ids given to the container (`0,1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_devices: Option<String>,
    /// Docker: how many GPUs the container asks for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    /// Docker: the endpoint the container runs on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The account's CI runner (shown, never entered).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub runner: bool,
    /// Stopped by the idle culler: when and why (until a new revision, the
    /// student or an admin starts it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub culled: Option<String>,
    /// Idle, and warned: the culler stops it at this time (RFC 3339)
    /// unless it is used before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stops_at: Option<String>,
    /// Kubernetes: why nothing runs, in the cluster's words: admission's
    /// refusal of the pods (a ResourceQuota's `exceeded quota: …`), the
    /// scheduler's (`0/2 nodes are available: …`) or the container's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// A data volume of the account on a Docker host, as last observed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VolumeView {
    /// The name the workspace gives it (`data`).
    pub name: String,
    /// Docker's name (`berth-alice--data`).
    pub volume: String,
    pub endpoint: String,
    /// Containers mounting it (full names), running or not.
    pub used_by: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AccountView {
    pub account: String,
    pub revision: Option<String>,
    pub accepted_at: Option<String>,
    pub endpoint: Option<String>,
    pub containers: Vec<ContainerView>,
    /// The latest rejection or failure, whole (admins).
    pub last_error: Option<String>,
    /// What the student may read of it: their own file's problem, or an
    /// audit id instead of backend addresses and answers.
    pub last_error_student: Option<String>,
    pub last_error_at: Option<String>,
    pub warnings: Vec<String>,
    /// Docker volumes (a `serve` before 0.2 did not say).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeView>,
    /// GPU containers: lent cards until when, or their place in line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<GpuView>,
    /// Docker volumes in the dormancy archive (back at the next accepted
    /// push).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub archived: Vec<String>,
}

/// A GPU container's lending.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GpuView {
    /// The name the workspace gives it.
    pub container: String,
    /// `lent` or `waiting`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cards: Vec<String>,
    /// When the grant ends (lent), RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The holder was warned the end is near (lent).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ending: bool,
    /// Place in line on its host, 1 is next (waiting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    /// When it may start (waiting), RFC 3339: an estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<String>,
}

/// The account's GPU lending, from the store (`cards` from the site).
fn gpus_of(
    store: &Store,
    account: &str,
    cards: &[berth_core::lending::Card],
) -> Result<Vec<GpuView>, StoreError> {
    if !store.gpu_involved(account)? {
        return Ok(vec![]);
    }
    let now = crate::store::now_ms();
    let mut state = store.lending(now)?;
    state.cards = cards.to_vec();
    let shares = store.gpu_shares(now)?;
    let places = berth_core::lending::queue::places(now, &state, &shares);
    let mut out: Vec<GpuView> = state
        .grants
        .iter()
        .filter(|g| g.key.account == account)
        .map(|g| GpuView {
            container: g.key.container.clone(),
            state: "lent".into(),
            cards: g.cards.clone(),
            until: Some(rfc3339(g.end / 1000)),
            ending: g.told_end == Some(g.end),
            position: None,
            estimate: None,
        })
        .collect();
    out.extend(
        state
            .queue
            .iter()
            .filter(|r| r.key.account == account)
            .map(|r| {
                let place = places.get(&r.key);
                GpuView {
                    container: r.key.container.clone(),
                    state: "waiting".into(),
                    cards: vec![],
                    until: None,
                    ending: false,
                    position: place.map(|p| p.position),
                    estimate: place.and_then(|p| p.estimate).map(|e| rfc3339(e / 1000)),
                }
            }),
    );
    Ok(out)
}

/// The view of `account` from the store and `observed`.
pub fn account(
    store: &Store,
    observed: &Observed,
    account: &str,
    cards: &[berth_core::lending::Card],
) -> Result<AccountView, StoreError> {
    let gpus = gpus_of(store, account, cards)?;
    let accepted = store.accepted(account)?;
    let mut warnings = store.warnings(account)?;
    warnings.extend(store.notice(account)?);
    let last = store.last_error(account)?;
    let endpoint = store.placement(account)?;
    let culled = store.culled(account)?;
    let warned = store.cull_warnings_of(account)?;
    let archived = store
        .archives_of(account)?
        .into_iter()
        .filter(|a| a.done)
        .map(|a| a.volume)
        .collect();
    let mut containers: Vec<ContainerView> = observed
        .docker
        .iter()
        .filter_map(|(ep, o)| Some((ep, o.as_ref().ok()?.get(account)?)))
        .flat_map(|(ep, o)| docker_containers(ep, account, o))
        .collect();
    if let Some(Ok(map)) = &observed.kube
        && let Some(k) = map.get(account)
    {
        containers.extend(kube_workloads(k));
    }
    for c in &mut containers {
        c.culled = culled
            .get(&c.container)
            .map(|x| format!("{} ({})", rfc3339(x.at), x.reason));
        c.stops_at = warned.get(&c.container).map(|ms| rfc3339(ms / 1000));
    }
    containers.sort_by(|a, b| a.container.cmp(&b.container));
    let prefix = berth_core::desired::volume_name(account, "");
    let volumes = observed
        .docker
        .iter()
        .filter_map(|(ep, o)| Some((ep, o.as_ref().ok()?.get(account)?)))
        .flat_map(|(ep, o)| {
            o.volumes.iter().map(|v| VolumeView {
                name: v.strip_prefix(&prefix).unwrap_or(v).to_string(),
                volume: v.clone(),
                endpoint: ep.clone(),
                used_by: o.volume_users.get(v).cloned().unwrap_or_default(),
            })
        })
        .collect();
    Ok(AccountView {
        account: account.to_string(),
        revision: accepted.as_ref().map(|a| a.revision.clone()),
        accepted_at: accepted.as_ref().map(|a| rfc3339(a.at)),
        endpoint,
        containers,
        last_error: last.as_ref().map(|l| l.message.clone()),
        last_error_student: last
            .as_ref()
            .map(|l| l.student.clone())
            .filter(|s| !s.is_empty()),
        last_error_at: last.as_ref().map(|l| rfc3339(l.at)),
        warnings,
        volumes,
        gpus,
        archived,
    })
}

/// The Docker containers of one account as the daemon reports them.
fn docker_containers<'a>(
    endpoint: &'a str,
    account: &'a str,
    o: &'a ObservedAccount,
) -> impl Iterator<Item = ContainerView> + 'a {
    o.containers.iter().map(move |c| ContainerView {
        name: c.name.clone(),
        backend: "docker".into(),
        container: c.full_name.clone(),
        state: c.state.clone(),
        ready: None,
        restarts: None,
        url: None,
        image: c.image.clone(),
        revision: c.revision.clone(),
        ports: c
            .ports
            .iter()
            .map(|(cp, host)| format!("{host}->{cp}"))
            .collect(),
        gpu_devices: c.fields.get("gpu_devices").cloned(),
        gpus: c.fields.get("gpus").and_then(|g| g.parse().ok()),
        endpoint: Some(endpoint.to_string()),
        runner: c.full_name == berth_core::runner::container_name(account),
        culled: None,
        stops_at: None,
        why: None,
    })
}

/// Status of each Berth Deployment of an account's namespace.
fn kube_workloads(k: &KubeObserved) -> Vec<ContainerView> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    k.objects
        .iter()
        .filter(|o| o.kind == "Deployment")
        .map(|d| {
            let v = &d.value;
            let name = v["metadata"]["labels"][LABEL_NAME]
                .as_str()
                .unwrap_or(&d.name)
                .to_string();
            let want = v["spec"]["replicas"].as_i64().unwrap_or(1);
            let ready = v["status"]["readyReplicas"].as_i64().unwrap_or(0);
            let pods: Vec<_> = k.pods.iter().filter(|p| p.workload == name).collect();
            let refused = replica_failure(v).filter(|_| pods.is_empty() && want > 0);
            let state = if want == 0 {
                "stopped".to_string()
            } else if ready >= want {
                "running".to_string()
            } else if let Some(why) = &refused {
                // Admission refused the pods: the Deployment exists, nothing runs.
                if why.contains("exceeded quota") {
                    "over quota".to_string()
                } else {
                    "FailedCreate".to_string()
                }
            } else {
                pods.iter()
                    .find_map(|p| p.reason.clone())
                    .or_else(|| pods.first().map(|p| p.phase.clone()))
                    .unwrap_or_else(|| "pending".into())
            };
            let ns = d.namespace.clone().unwrap_or_default();
            let ports = k
                .get("Service", &d.name)
                .and_then(|s| s.value["spec"]["ports"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .map(|p| format!("{}.{ns}.svc:{}", d.name, p["port"]))
                .collect();
            let url = k.get("Ingress", &d.name).and_then(|i| {
                i.value["spec"]["rules"][0]["host"]
                    .as_str()
                    .map(|h| format!("http://{h}/"))
            });
            ContainerView {
                name,
                backend: "kubernetes".into(),
                container: format!("{ns}/{}", d.name),
                state,
                ready: Some(format!("{ready}/{want}")),
                restarts: Some(pods.iter().map(|p| p.restarts).sum()),
                url,
                image: text(&v["spec"]["template"]["spec"]["containers"][0]["image"]),
                revision: text(&v["metadata"]["labels"][LABEL_REVISION]),
                ports,
                gpu_devices: None,
                gpus: None,
                endpoint: None,
                runner: false,
                culled: None,
                stops_at: None,
                why: refused.or_else(|| pods.iter().find_map(|p| p.message.clone())),
            }
        })
        .collect()
}

/// The message of a Deployment's `ReplicaFailure` condition: the controller
/// copies it from the ReplicaSet whose pods admission refused.
fn replica_failure(deployment: &Value) -> Option<String> {
    deployment["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "ReplicaFailure" && c["status"] == "True")
        .map(|c| c["message"].as_str().unwrap_or("pods refused").to_string())
}

/// `2026-11-26T01:29:02Z` for a Unix time (UTC, no leap seconds).
pub fn rfc3339(unix: i64) -> String {
    crate::base::time::rfc3339(unix)
}
