//! The accounts' Docker volumes: measuring them on every host into the
//! store (what `serve` does every `policy.storage.measure_every`, and
//! `reconciler volumes --measure` on demand), and the volumes a workspace
//! declares (what the console's delete refuses to touch).
//!
//! A measurement is Docker's own walk of each volume's directory, so its
//! cost grows with the files on the host: hosts are measured one after the
//! other, each within [`MEASURE_TIMEOUT`], and a host that fails keeps its
//! last measurement.

use crate::clients::{Context, ReconcileError, Result};
use crate::store::MeasuredVolume;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest one host's measurement may take.
pub const MEASURE_TIMEOUT: Duration = Duration::from_secs(300);

/// What measuring one host found, or why it could not.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Measurement {
    pub endpoint: String,
    pub volumes: usize,
    pub bytes: u64,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Measures every reachable Docker host, one at a time, and records each
/// host's volumes in the store.
pub async fn measure(ctx: &Arc<Context>) -> Vec<Measurement> {
    let mut out = Vec::new();
    for endpoint in ctx.docker.keys() {
        let started = Instant::now();
        let result = measure_one(ctx, endpoint).await;
        let (volumes, bytes, error) = match result {
            Ok((n, b)) => (n, b, None),
            Err(e) => {
                tracing::warn!(endpoint, cause = %e, "measuring volumes failed; the last measurement stands");
                (0, 0, Some(e.to_string()))
            }
        };
        out.push(Measurement {
            endpoint: endpoint.clone(),
            volumes,
            bytes,
            seconds: started.elapsed().as_secs_f64(),
            error,
        });
    }
    out
}

async fn measure_one(ctx: &Arc<Context>, endpoint: &str) -> Result<(usize, u64)> {
    let Some(docker) = ctx.backend(endpoint)?.docker() else {
        return Ok((0, 0));
    };
    let sizes = tokio::time::timeout(MEASURE_TIMEOUT, docker.measure_volumes())
        .await
        .map_err(|_| ReconcileError::Timeout {
            what: format!("measuring the volumes of `{endpoint}`"),
            after: MEASURE_TIMEOUT,
        })??;
    let at = crate::store::now();
    let found: Vec<MeasuredVolume> = sizes
        .into_iter()
        .map(|v| MeasuredVolume {
            volume: v.name,
            account: v.account,
            bytes: v.bytes,
            in_use: v.in_use,
        })
        .collect();
    let summary = (found.len(), found.iter().filter_map(|v| v.bytes).sum());
    let endpoint = endpoint.to_string();
    ctx.store
        .call(move |s| s.record_volumes(&endpoint, at, &found))
        .await?;
    Ok(summary)
}

/// The Docker volumes (backend names) `account`'s accepted revision
/// declares; none when nothing is accepted.
pub async fn declared(ctx: &Arc<Context>, account: &str) -> Result<BTreeSet<String>> {
    let ws = crate::engine::reconcile::accepted_workspace_of(ctx, account).await?;
    Ok(ws
        .iter()
        .flat_map(|ws| &ws.containers)
        .flat_map(|c| &c.volumes)
        .map(|v| berth_core::desired::volume_name(account, &v.name.value))
        .collect())
}

/// `account`'s storage quota (bytes) and the group it comes from; `None`
/// when no group of the account limits storage, or the directory does not
/// know it.
pub async fn quota_of(ctx: &Arc<Context>, account: &str) -> Result<Option<(u64, String)>> {
    let Some(entry) = ctx.directory.lookup(account).await? else {
        return Ok(None);
    };
    Ok(
        berth_spec::policy::effective_quota(&ctx.site, &entry.groups)
            .and_then(|q| Some((q.storage?, q.group))),
    )
}
