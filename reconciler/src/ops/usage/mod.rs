//! Usage accounting: sampling rounds over every Docker host and the
//! cluster (what `serve` runs every `policy.usage.sample_every`), and the
//! groups' budgets summed after each; reports of what the store holds are
//! in [`report`].
//!
//! A round reads each host's containers (one list, one `die` events read,
//! then a stats and an inspect per running container, 100 stats calls in
//! flight), hands them with the stored cursors to the pure
//! [`berth_core::usage::account`], and writes the result in one
//! transaction. Hosts are sampled
//! concurrently, each within the sampling interval.
//!
//! Kubernetes workloads are not sampled yet; the report says so.

use crate::clients::{Context, ReconcileError, Result};
use berth_core::usage::Amounts;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

mod report;
pub use report::{By, Line, csv, daily, keys_of, monthly_csv, range, report};

/// What one host's round added, per account.
#[derive(Debug, Default)]
pub struct Sampled {
    pub endpoint: String,
    pub containers: usize,
    pub by_account: BTreeMap<String, Amounts>,
    pub error: Option<String>,
}

/// The name Kubernetes rounds are stored under (beside Docker endpoints').
pub const KUBERNETES: &str = "kubernetes";

/// One round over the cluster's Berth Deployments: reserved CPUs, memory
/// and GPUs (their requests × ready replicas) over the time between
/// rounds. The cluster has no counters Berth reads, so nothing is "used"
/// there, and a change of replicas counts from the round that sees it
/// (within one interval).
async fn sample_kube(ctx: &Arc<Context>) -> Result<Option<Sampled>> {
    let Some(k) = &ctx.kube else {
        return Ok(None);
    };
    let Ok(backend) = &k.backend else {
        return Ok(None);
    };
    let observed = backend
        .observe(&k.settings.namespace_prefix, None)
        .await
        .map_err(|e| ReconcileError::ClusterDown(e.into()))?;
    let seen: Vec<berth_core::usage::Seen> = observed
        .iter()
        .flat_map(|(account, o)| {
            o.objects
                .iter()
                .filter(|d| d.kind == "Deployment")
                .map(move |d| deployment_seen(account, d))
        })
        .collect();
    let name = KUBERNETES.to_string();
    let (last, cursors) = ctx.store.call(move |s| s.usage_cursors(&name)).await?;
    let now = crate::store::now_ms();
    let round = berth_core::usage::account(&cursors, last, &seen, now);
    let mut out = Sampled {
        endpoint: KUBERNETES.into(),
        containers: seen.iter().filter(|s| s.running).count(),
        ..Sampled::default()
    };
    for ((account, _), a) in &round.increments {
        out.by_account.entry(account.clone()).or_default().add(a);
    }
    ctx.store
        .call(move |s| s.record_usage_round(KUBERNETES, now, &round))
        .await?;
    Ok(Some(out))
}

/// A Deployment as accounting sees it: one run for as long as it exists
/// (no `StartedAt`), holding its pods' requests × ready replicas.
fn deployment_seen(
    account: &str,
    d: &berth_core::desired::kube::KubeObject,
) -> berth_core::usage::Seen {
    let v = &d.value;
    let ready = v["status"]["readyReplicas"].as_i64().unwrap_or(0).max(0) as u32;
    let mut held = berth_core::usage::Reserved::default();
    for c in v["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let r = &c["resources"]["requests"];
        held.cpus += r["cpu"].as_str().and_then(cpu_quantity).unwrap_or(0.0);
        held.memory += r["memory"]
            .as_str()
            .and_then(|m| berth_spec::quantity::Memory::new(m).bytes().ok())
            .unwrap_or(0);
        held.gpus += r["nvidia.com/gpu"]
            .as_str()
            .and_then(|g| g.parse::<u32>().ok())
            .unwrap_or(0);
    }
    berth_core::usage::Seen {
        id: format!("{}/{}", d.namespace.clone().unwrap_or_default(), d.name),
        account: account.to_string(),
        name: v["metadata"]["labels"][berth_core::desired::LABEL_NAME]
            .as_str()
            .unwrap_or(&d.name)
            .to_string(),
        running: ready > 0,
        started_at: 0,
        finished_at: None,
        cpu_ns: (ready > 0).then_some(0),
        memory_used: None,
        reserved: berth_core::usage::Reserved {
            cpus: held.cpus * f64::from(ready),
            memory: held.memory * u64::from(ready),
            gpus: held.gpus * ready,
        },
    }
}

/// A Kubernetes CPU quantity (`500m`, `0.5`, `2`) in cores.
fn cpu_quantity(q: &str) -> Option<f64> {
    match q.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().ok().map(|m| m / 1000.0),
        None => q.parse().ok(),
    }
}

/// One round over every reachable Docker host, and the cluster.
pub async fn sample(ctx: &Arc<Context>, deadline: Duration) -> Vec<Sampled> {
    let rounds = ctx.docker.keys().map(|endpoint| async move {
        let result = tokio::time::timeout(deadline, sample_one(ctx, endpoint))
            .await
            .unwrap_or_else(|_| {
                Err(ReconcileError::Timeout {
                    what: format!("sampling the containers of `{endpoint}`"),
                    after: deadline,
                })
            });
        match result {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(endpoint, cause = %e, "usage sampling failed; the next round takes over from the last one");
                Sampled {
                    endpoint: endpoint.clone(),
                    error: Some(e.to_string()),
                    ..Sampled::default()
                }
            }
        }
    });
    let (mut out, kube) = tokio::join!(
        futures::future::join_all(rounds),
        tokio::time::timeout(deadline, sample_kube(ctx))
    );
    match kube {
        Ok(Ok(Some(k))) => out.push(k),
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::warn!(cause = %e, "usage sampling of the cluster failed"),
        Err(_) => tracing::warn!("usage sampling of the cluster took longer than its interval"),
    }
    out
}

async fn sample_one(ctx: &Arc<Context>, endpoint: &str) -> Result<Sampled> {
    let mut out = Sampled {
        endpoint: endpoint.to_string(),
        ..Sampled::default()
    };
    let Some(docker) = ctx.backend(endpoint)?.docker() else {
        return Ok(out);
    };
    let name = endpoint.to_string();
    let (last, cursors) = ctx.store.call(move |s| s.usage_cursors(&name)).await?;
    let now = crate::store::now_ms();
    let seen = docker.sample(&cursors, last, now).await?;
    out.containers = seen.iter().filter(|s| s.running).count();
    let round = berth_core::usage::account(&cursors, last, &seen, now);
    for ((account, _), a) in &round.increments {
        out.by_account.entry(account.clone()).or_default().add(a);
    }
    let name = endpoint.to_string();
    ctx.store
        .call(move |s| s.record_usage_round(&name, now, &round))
        .await?;
    Ok(out)
}

/// Sums what each budgeted group's members reserved in the group's
/// current period and stores it for admission (`engine::reconcile::budgets`):
/// after every sampling round. Membership is the directory's (cached).
pub async fn refresh_budgets(ctx: &Arc<Context>, now: i64) -> Result<()> {
    use crate::engine::reconcile::budgets::{budgeted, period};
    let groups: Vec<(String, i64)> = budgeted(ctx)
        .map(|(g, q)| (g.clone(), period(q, now).0))
        .collect();
    let Some(earliest) = groups.iter().map(|(_, start)| *start).min() else {
        return Ok(());
    };
    let rows = daily(ctx, earliest, now + 86_400).await?;
    let mut spent: BTreeMap<&String, (f64, f64)> = BTreeMap::new();
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ((account, day), a) in &rows {
        if !members.contains_key(account) {
            let groups = ctx.directory.groups(account).await?;
            members.insert(account.clone(), groups);
        }
        for (group, start) in &groups {
            if *day >= *start && members[account].contains(group) {
                let s = spent.entry(group).or_default();
                s.0 += a.cpu_reserved;
                s.1 += a.gpu_reserved;
            }
        }
    }
    let rows: Vec<(String, i64, f64, f64)> = groups
        .iter()
        .map(|(g, start)| {
            let (cpu, gpu) = spent.get(g).copied().unwrap_or_default();
            (g.clone(), *start, cpu, gpu)
        })
        .collect();
    ctx.store
        .call(move |s| s.set_budget_use(&rows, now))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_holds_its_requests_times_its_ready_replicas() {
        let d = berth_core::desired::kube::KubeObject {
            kind: "Deployment".into(),
            name: "alice--train".into(),
            namespace: Some("berth-alice".into()),
            value: serde_json::json!({
                "metadata": {"labels": {"berth.name": "train"}},
                "spec": {"template": {"spec": {"containers": [
                    {"resources": {"requests": {"cpu": "500m", "memory": "64Mi", "nvidia.com/gpu": "1"}}}
                ]}}},
                "status": {"readyReplicas": 2}
            }),
        };
        let s = deployment_seen("alice", &d);
        assert_eq!(
            (s.id.as_str(), s.name.as_str(), s.running),
            ("berth-alice/alice--train", "train", true)
        );
        assert_eq!(
            s.reserved,
            berth_core::usage::Reserved {
                cpus: 1.0,
                memory: 128 << 20,
                gpus: 2
            }
        );
        assert_eq!(cpu_quantity("2"), Some(2.0));
        assert_eq!(cpu_quantity("x"), None);
    }
}
