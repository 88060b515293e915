//! Draining a Docker host: every account placed on it moves to another,
//! with its volumes' data. Per account: its containers there stop (its
//! downtime starts), each volume is streamed as a tar through the Engine
//! API into a volume of the same name on the target, both sides are read
//! back and compared (paths, sizes and SHA-256 of every file), the account
//! is placed on the target and reconciled there, and only then are the old
//! containers, network and volumes removed. Each step is recorded, so a
//! drain that stops midway is resumed by running it again; nothing on the
//! old host is removed before the copy is verified. An account that needs
//! GPUs is not moved to a host without enough.

use crate::backends::docker::DockerBackend;
use crate::clients::{Context, ReconcileError};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error("no endpoint `{0}` in site.yaml")]
    UnknownHost(String),
    #[error("endpoint `{0}` is unreachable: {1}")]
    Unreachable(String, String),
    #[error("no other reachable host can take `{0}` (it needs {1} GPU(s))")]
    NoTarget(String, u32),
    #[error("`{account}` needs {gpus} GPU(s); `{target}` has {has}")]
    NotEnoughGpus {
        account: String,
        gpus: u32,
        target: String,
        has: u32,
    },
    #[error(
        "volume `{volume}` of `{account}`: the copy on `{target}` differs from the original; nothing was removed"
    )]
    Mismatch {
        account: String,
        volume: String,
        target: String,
    },
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
    #[error(transparent)]
    Docker(#[from] crate::backends::docker::DockerError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// What happened to one account.
#[derive(Debug, serde::Serialize)]
pub struct Moved {
    pub account: String,
    pub to: String,
    pub volumes: usize,
    pub bytes: u64,
}

/// Stages of one account's move, as recorded.
const COPYING: &str = "copying";
const SWITCHED: &str = "switched";

fn backend<'a>(ctx: &'a Context, name: &str) -> Result<&'a DockerBackend, DrainError> {
    match ctx.docker.get(name) {
        Some(Ok(b)) => b
            .docker()
            .ok_or_else(|| DrainError::UnknownHost(name.into())),
        Some(Err(e)) => Err(DrainError::Unreachable(name.into(), e.to_string())),
        None => Err(DrainError::UnknownHost(name.into())),
    }
}

/// The GPUs an account's accepted revision asks for on Docker.
async fn gpus_needed(ctx: &Arc<Context>, account: &str) -> Result<u32, DrainError> {
    Ok(
        crate::engine::reconcile::accepted_workspace_of(ctx, account)
            .await?
            .map(|ws| {
                berth_core::desired::gpu_needs(&ws, &ctx.site, account)
                    .iter()
                    .map(|(_, n)| n)
                    .sum()
            })
            .unwrap_or(0),
    )
}

/// How far a drain is, for a live view.
#[derive(Debug)]
pub enum Step<'a> {
    /// This many accounts are to move (those a stopped run left first).
    Accounts(usize),
    /// One account starts moving to `to`.
    Moving { account: &'a str, to: &'a str },
    /// One of its volumes was copied and read back the same.
    Copied {
        account: &'a str,
        volume: &'a str,
        bytes: u64,
    },
    /// One account moved.
    Moved(&'a Moved),
}

/// Moves every account placed on `host` (to `to`, or to the least-loaded
/// reachable host that has the GPUs it needs), telling `step` how far it
/// is as it goes.
pub async fn drain(
    ctx: &Arc<Context>,
    host: &str,
    to: Option<&str>,
    mut step: impl FnMut(Step<'_>),
) -> Result<Vec<Moved>, DrainError> {
    let site_hosts: BTreeMap<String, u32> = ctx
        .site
        .backends
        .docker
        .iter()
        .map(|d| {
            (
                d.name.value.clone(),
                berth_spec::site::lendable(d.gpus, &d.gpu_cards).len() as u32,
            )
        })
        .collect();
    if !site_hosts.contains_key(host) {
        return Err(DrainError::UnknownHost(host.into()));
    }
    let source = backend(ctx, host)?;
    let mut moved = Vec::new();
    // Accounts half-moved by an earlier run first, then the rest.
    let (pending, on_host) = {
        let host = host.to_string();
        ctx.store
            .call(move |s| -> Result<_, DrainError> {
                Ok((s.drains(&host)?, s.accounts_on(&host)?))
            })
            .await?
    };
    let mut accounts: Vec<String> = pending.keys().cloned().collect();
    for a in on_host {
        if !accounts.contains(&a) {
            accounts.push(a);
        }
    }
    step(Step::Accounts(accounts.len()));
    for account in accounts {
        let gpus = gpus_needed(ctx, &account).await?;
        let target = match pending
            .get(&account)
            .map(|(t, _)| t.clone())
            .or_else(|| to.map(str::to_string))
        {
            Some(t) => t,
            None => {
                let counts = ctx.store.call(|s| s.placement_counts()).await?;
                site_hosts
                    .iter()
                    .filter(|(name, has)| name.as_str() != host && **has >= gpus)
                    .filter(|(name, _)| matches!(ctx.docker.get(*name), Some(Ok(_))))
                    .min_by_key(|(name, _)| counts.get(*name).copied().unwrap_or(0))
                    .map(|(name, _)| name.clone())
                    .ok_or_else(|| DrainError::NoTarget(account.clone(), gpus))?
            }
        };
        let has = site_hosts
            .get(&target)
            .copied()
            .ok_or_else(|| DrainError::UnknownHost(target.clone()))?;
        if has < gpus {
            return Err(DrainError::NotEnoughGpus {
                account,
                gpus,
                target,
                has,
            });
        }
        let dest = backend(ctx, &target)?;
        let stage = pending.get(&account).map(|(_, s)| s.clone());
        step(Step::Moving {
            account: &account,
            to: &target,
        });
        let one = move_account(
            ctx,
            (source, host),
            (dest, &target),
            &account,
            stage.as_deref(),
            &mut step,
        )
        .await?;
        step(Step::Moved(&one));
        moved.push(one);
    }
    Ok(moved)
}

async fn move_account(
    ctx: &Arc<Context>,
    (source, host): (&DockerBackend, &str),
    (dest, target): (&DockerBackend, &str),
    account: &str,
    stage: Option<&str>,
    step: &mut impl FnMut(Step<'_>),
) -> Result<Moved, DrainError> {
    let observed = source.observe_account(account).await?;
    let volumes: Vec<String> = observed.volumes.iter().cloned().collect();
    let mut bytes = 0;
    if stage != Some(SWITCHED) {
        let (a, h, t) = (account.to_string(), host.to_string(), target.to_string());
        ctx.store
            .call(move |s| s.set_drain(&a, &h, &t, COPYING))
            .await?;
        tracing::info!(
            account,
            from = host,
            to = target,
            volumes = volumes.len(),
            "draining"
        );
        // Stop everything first: the data must not change while it moves.
        for c in &observed.containers {
            source.stop_by_id(&c.id, &c.full_name).await?;
        }
        let image = observed.containers.iter().map(|c| c.image.clone()).next();
        for volume in &volumes {
            // A volume no container mounts any more moves all the same:
            // the old host's copy is removed below.
            let (n, same) = source
                .copy_volume_to(dest, account, volume, image.as_deref())
                .await?;
            if !same {
                return Err(DrainError::Mismatch {
                    account: account.into(),
                    volume: volume.clone(),
                    target: target.into(),
                });
            }
            bytes += n;
            step(Step::Copied {
                account,
                volume,
                bytes: n,
            });
            if std::env::var("BERTH_DRAIN_STOP_AFTER_COPY").is_ok() {
                // Tests: a drain that dies midway, to be resumed.
                tracing::warn!("stopping the drain after one volume (BERTH_DRAIN_STOP_AFTER_COPY)");
                std::process::exit(3);
            }
        }
        let (a, h, t) = (account.to_string(), host.to_string(), target.to_string());
        ctx.store
            .call(move |s| -> Result<(), DrainError> {
                s.release_endpoint(&a, &h)?;
                s.set_placement(&a, &t)?;
                s.set_drain(&a, &h, &t, SWITCHED)?;
                Ok(())
            })
            .await?;
    }
    // Converge on the new host, then clear the old one.
    let observed_all = ctx.observe_account(account).await;
    let plan = crate::engine::reconcile::evaluate(ctx, account, &observed_all, None).await?;
    let report = crate::engine::reconcile::execute(ctx, &plan).await?;
    if let Some(e) = report.errors.first() {
        return Err(DrainError::Reconcile(ReconcileError::Join(format!(
            "converging `{account}` on `{target}`: {e}"
        ))));
    }
    for c in &observed.containers {
        source.remove_by_id(&c.id, &c.full_name).await?;
    }
    for volume in &volumes {
        source.remove_volume(volume).await?;
    }
    source
        .remove_network(&berth_core::desired::network_name(account))
        .await?;
    let notice = format!(
        "moved from host `{host}` to `{target}` by an admin: your containers' host ports changed (see the ports above)"
    );
    let (a, detail) = (
        account.to_string(),
        format!(
            "{host} → {target}, {} volume(s), {bytes} bytes",
            volumes.len()
        ),
    );
    ctx.store
        .call(move |s| -> Result<(), DrainError> {
            s.finish_drain(&a)?;
            s.set_notice(&a, &notice)?;
            s.notify(&a, berth_core::notify::Category::HostDrained, &notice)?;
            s.audit(&a, "drained", None, &detail)?;
            Ok(())
        })
        .await?;
    Ok(Moved {
        account: account.into(),
        to: target.into(),
        volumes: volumes.len(),
        bytes,
    })
}
