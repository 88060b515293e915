//! `reconciler status`: per account, the accepted revision, its containers
//! as the backends report them (Docker: state, `host:port` for each
//! published port; Kubernetes: readiness, pod phase, restarts, Service
//! address and Ingress URL) and the last error or rejection, which names
//! the object and the API's reason. Reads the store and the backends only.

use super::{Output, exit, open_context, output::rfc3339};
use crate::desired::{LABEL_NAME, LABEL_REVISION};
use crate::plan::KubeObserved;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub account: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Serialize)]
pub struct ContainerStatus {
    pub name: String,
    /// `docker` or `kubernetes`.
    pub backend: &'static str,
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
}

#[derive(Debug, Serialize)]
pub struct AccountStatus {
    pub account: String,
    pub revision: Option<String>,
    pub accepted_at: Option<String>,
    pub endpoint: Option<String>,
    pub containers: Vec<ContainerStatus>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub warnings: Vec<String>,
}

pub async fn run(config: Option<&std::path::Path>, args: &Args) -> u8 {
    let ctx = match open_context(config).await {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    let mut code = exit::OK;
    let observed = ctx.observe_all().await;
    // Status reads what is on disk (mirrors in GitLab mode) and fetches
    // nothing. With --account, that account is the whole list.
    let all = args.account.is_none();
    let mut accounts: BTreeSet<String> = match &args.account {
        Some(only) => BTreeSet::from([only.clone()]),
        None => ctx
            .source
            .accounts()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    };
    match &observed.kube {
        Some(Ok(map)) if all => accounts.extend(map.keys().cloned()),
        Some(Err(e)) => {
            eprintln!("reconciler status: kubernetes: {e}");
            code = exit::ERROR;
        }
        _ => {}
    }
    for (endpoint, obs) in &observed.docker {
        match obs {
            Ok(map) if all => accounts.extend(map.keys().cloned()),
            Ok(_) => {}
            Err(e) => {
                eprintln!("reconciler status: endpoint {endpoint}: {e}");
                code = exit::ERROR;
            }
        }
    }
    let mut out = Vec::new();
    for account in accounts {
        let accepted = ctx.store.accepted(&account).ok().flatten();
        let warnings = ctx.store.warnings(&account).unwrap_or_default();
        let last = ctx.store.last_error(&account).ok().flatten();
        let endpoint = ctx.store.placement(&account).ok().flatten();
        let mut containers: Vec<ContainerStatus> = observed
            .docker
            .values()
            .filter_map(|o| o.as_ref().ok())
            .filter_map(|m| m.get(&account))
            .flat_map(|o| o.containers.iter())
            .map(|c| ContainerStatus {
                name: c.name.clone(),
                backend: "docker",
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
            })
            .collect();
        if let Some(Ok(map)) = &observed.kube
            && let Some(k) = map.get(&account)
        {
            containers.extend(kube_workloads(k));
        }
        containers.sort_by(|a, b| a.container.cmp(&b.container));
        out.push(AccountStatus {
            account,
            revision: accepted.as_ref().map(|a| a.revision.clone()),
            accepted_at: accepted.as_ref().map(|a| rfc3339(a.at)),
            endpoint,
            containers,
            last_error: last.as_ref().map(|l| l.1.clone()),
            last_error_at: last.as_ref().map(|l| rfc3339(l.0)),
            warnings,
        });
    }
    match args.output {
        Output::Json => match serde_json::to_string_pretty(&serde_json::json!({ "accounts": out }))
        {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("reconciler status: {e}");
                return exit::ERROR;
            }
        },
        Output::Text => print_text(&out),
    }
    code
}

/// Status of each Berth Deployment of an account's namespace.
fn kube_workloads(k: &KubeObserved) -> Vec<ContainerStatus> {
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
            let state = if want == 0 {
                "stopped".to_string()
            } else if ready >= want {
                "running".to_string()
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
            ContainerStatus {
                name,
                backend: "kubernetes",
                container: format!("{ns}/{}", d.name),
                state,
                ready: Some(format!("{ready}/{want}")),
                restarts: Some(pods.iter().map(|p| p.restarts).sum()),
                url,
                image: text(&v["spec"]["template"]["spec"]["containers"][0]["image"]),
                revision: text(&v["metadata"]["labels"][LABEL_REVISION]),
                ports,
                gpu_devices: None,
            }
        })
        .collect()
}

fn print_text(accounts: &[AccountStatus]) {
    for a in accounts {
        let rev = a
            .revision
            .as_deref()
            .map(crate::reconcile::short)
            .unwrap_or("none accepted");
        let when = a
            .accepted_at
            .as_deref()
            .map(|t| format!(" (accepted {t})"))
            .unwrap_or_default();
        let on = a
            .endpoint
            .as_deref()
            .map(|e| format!(" on {e}"))
            .unwrap_or_default();
        println!("{}  revision {rev}{when}{on}", a.account);
        for c in &a.containers {
            let mut extra = c.ports.clone();
            if let Some(r) = &c.ready {
                extra.insert(0, format!("ready {r}"));
            }
            if let Some(n) = c.restarts.filter(|n| *n > 0) {
                extra.push(format!("{n} restart(s)"));
            }
            extra.extend(c.url.clone());
            extra.extend(c.gpu_devices.as_ref().map(|g| format!("GPU {g}")));
            println!("  {:<24} {:<10} {}", c.container, c.state, extra.join(", "));
        }
        for w in &a.warnings {
            println!("  warning: {w}");
        }
        if let Some(e) = &a.last_error {
            println!("  last error: {e}");
        }
    }
}
