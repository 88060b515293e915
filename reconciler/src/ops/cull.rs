//! Idle culling: `serve` samples each running container's CPU time and
//! network bytes (one-shot stats) every `policy.idle.sample_every`; a
//! container whose use between samples stays under the site's thresholds
//! for its group's `idle_stop_after` is stopped — never removed — and
//! recorded as culled (status, console, audit) until a new revision, the
//! student or an admin starts it. Before that it is marked "will stop at
//! T" (`warn_before` ahead; status, console, mail), the mark goes if the
//! container is used again, and a container the student keeps
//! (`keep_until`) is left alone: the rule is `berth_core::idle`. The runner and exempt groups or accounts
//! are never culled. GPU use is not in Docker's stats: GPU containers are
//! judged on CPU and network with the group's `gpu_idle_stop_after`.

use crate::backends::docker::{Purpose, Usage};
use crate::clients::Context;
use futures::StreamExt;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Whether the use between two samples `elapsed` apart is idle (pure).
pub fn idle(before: Usage, now: Usage, elapsed: Duration, cpu_below: f64, net_below: u64) -> bool {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let cores = now.cpu_ns.saturating_sub(before.cpu_ns) as f64 / 1e9 / secs;
    let net = now.net_bytes.saturating_sub(before.net_bytes) as f64 / secs;
    cores < cpu_below && net < net_below as f64
}

struct Seen {
    at: Instant,
    usage: Usage,
    /// Unix ms.
    idle_since: Option<i64>,
}

/// What the culler remembers between sweeps, by container id.
#[derive(Default)]
pub struct Culler {
    seen: HashMap<String, Seen>,
}

/// One container to look at.
pub struct Candidate {
    pub account: String,
    pub endpoint: String,
    pub container: String,
    pub gpu: bool,
}

impl Culler {
    /// Samples `candidates`, warns those near their stop and stops those
    /// whose warned time came; returns the accounts whose containers
    /// changed (warned, withdrawn or culled).
    pub async fn sweep(&mut self, ctx: &Context, candidates: &[Candidate]) -> Vec<String> {
        let idle_cfg = &ctx.site.policy.idle;
        let net_below = idle_cfg.network_below.bytes().unwrap_or(1024);
        let ms = |d: &berth_spec::Located<String>, or: u64| {
            berth_spec::site::millis_or(d, Duration::from_secs(or))
        };
        let (warn_before, sample_every) = (
            ms(&idle_cfg.warn_before, 1800),
            ms(&idle_cfg.sample_every, 300),
        );
        let marks = ctx
            .store
            .call(|s| {
                Ok::<_, crate::store::StoreError>((
                    s.cull_warnings()?,
                    s.keeps()?,
                    s.known_accounts()?,
                ))
            })
            .await;
        let (warnings, keeps, known) = match marks {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(cause = %e, "reading the culler's marks");
                return vec![];
            }
        };
        let mut changed = Vec::new();
        let mut alive = std::collections::HashSet::new();
        let mut judged = Vec::new();
        // Only accounts this Berth knows: another Berth's containers on a
        // shared host are not its to stop.
        for c in candidates.iter().filter(|c| known.contains(&c.account)) {
            let groups = match ctx.directory.lookup(&c.account).await {
                Ok(Some(a)) => a.groups,
                _ => continue,
            };
            let Some(after) = ctx.site.idle_stop_after(&c.account, &groups, c.gpu) else {
                continue;
            };
            let Some(backend) = ctx.dockerd(&c.endpoint) else {
                continue;
            };
            judged.push((c, after, backend));
        }
        // dockerd answers a stats call at its collector's next tick, a
        // second away: asked one at a time, a sweep would take a second
        // per container.
        // The futures are made before the stream (not by a `map` closure):
        // a closure over borrowed candidates is not `Send` enough for the
        // spawned loop.
        let reads: Vec<_> = judged
            .into_iter()
            .map(|(c, after, backend)| async move {
                let usage = backend.usage(&c.container).await;
                (c, after, backend, usage)
            })
            .collect();
        let sampled: Vec<_> = futures::stream::iter(reads)
            .buffered(crate::backends::docker::STATS_AT_ONCE)
            .collect()
            .await;
        for (c, after, backend, usage) in sampled {
            let usage = match usage {
                Ok(Some(u)) => u,
                _ => continue,
            };
            alive.insert(c.container.clone());
            let now = Instant::now();
            let now_ms = crate::store::now_ms();
            let first = !self.seen.contains_key(&c.container);
            let entry = self.seen.entry(c.container.clone()).or_insert(Seen {
                at: now,
                usage,
                idle_since: None,
            });
            if first {
                // One sample says nothing of use: judge from the second.
                continue;
            }
            let elapsed = now - entry.at;
            if idle(entry.usage, usage, elapsed, idle_cfg.cpu_below, net_below) {
                entry
                    .idle_since
                    .get_or_insert(now_ms - elapsed.as_millis() as i64);
            } else {
                entry.idle_since = None;
            }
            entry.at = now;
            entry.usage = usage;
            let key = (c.account.clone(), c.container.clone());
            let warned = warnings.get(&key).copied();
            let timings = berth_core::idle::Timings {
                after: after.as_millis() as i64,
                warn_before,
                sample_every,
            };
            let keep = keeps.get(&key).map(|s| s.saturating_mul(1000));
            let idle_since = entry.idle_since;
            // Whether the container was warned, its warning withdrawn or
            // it was stopped: its account's view changes.
            let acted = match berth_core::idle::step(now_ms, idle_since, warned, keep, timings) {
                berth_core::idle::Step::Idle => false,
                berth_core::idle::Step::Active if warned.is_none() => false,
                berth_core::idle::Step::Active => withdraw(ctx, c).await,
                berth_core::idle::Step::Warn { stop_at } => warn(ctx, c, stop_at).await,
                berth_core::idle::Step::Stop => {
                    let since = idle_since.unwrap_or(now_ms);
                    let reason = format!(
                        "idle for {} s (under {} cores and {} B/s{})",
                        (now_ms - since) / 1000,
                        idle_cfg.cpu_below,
                        net_below,
                        if c.gpu {
                            "; GPU use is not measured"
                        } else {
                            ""
                        }
                    );
                    let culled = cull(ctx, backend, c, &reason).await;
                    if culled {
                        self.seen.remove(&c.container);
                    }
                    culled
                }
            };
            if acted {
                changed.push(c.account.clone());
            }
        }
        // A warned container that stopped or went is no longer about to be.
        let gone: Vec<(String, String)> = warnings
            .into_keys()
            .filter(|(_, container)| !alive.contains(container))
            .collect();
        if !gone.is_empty() {
            changed.extend(gone.iter().map(|(account, _)| account.clone()));
            let cleared = ctx
                .store
                .call(move |s| {
                    gone.iter()
                        .try_for_each(|(a, c)| s.clear_cull_warning(a, c).map(|_| ()))
                })
                .await;
            if let Err(e) = cleared {
                tracing::warn!(cause = %e, "clearing culling warnings");
            }
        }
        self.seen.retain(|k, _| alive.contains(k));
        changed.sort();
        changed.dedup();
        changed
    }
}

/// Marks `c` "will stop at" and tells its owner; whether it was recorded.
async fn warn(ctx: &Context, c: &Candidate, stop_at: i64) -> bool {
    let (account, container) = (c.account.clone(), c.container.clone());
    let at = crate::base::time::rfc3339(stop_at / 1000);
    let recorded = ctx
        .store
        .call(move |s| {
            s.set_cull_warning(&account, &container, stop_at)?;
            s.notify(
                &account,
                berth_core::notify::Category::CullWarning,
                &format!("`{container}` is idle and will be stopped at {at} unless it is used before; a long quiet job can declare `keep_until` in workspace.yaml"),
            )?;
            s.audit(&account, "cull-warning", None, &format!("`{container}` will stop at {at} unless used"))
        })
        .await;
    match recorded {
        Ok(_) => {
            tracing::info!(account = %c.account, container = %c.container, stop_at, "warned of culling");
            true
        }
        Err(e) => {
            tracing::warn!(cause = %e, "recording a culling warning");
            false
        }
    }
}

/// Withdraws the warning of a container in use again (or kept); whether
/// it was recorded.
async fn withdraw(ctx: &Context, c: &Candidate) -> bool {
    let (account, container) = (c.account.clone(), c.container.clone());
    let recorded = ctx
        .store
        .call(move |s| {
            s.clear_cull_warning(&account, &container)?;
            s.audit(
                &account,
                "cull-warning-withdrawn",
                None,
                &format!("`{container}` is in use again"),
            )
        })
        .await;
    match recorded {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(cause = %e, "withdrawing a culling warning");
            false
        }
    }
}

/// Stops `c` (never removes it) and records it as culled; whether it
/// was stopped.
async fn cull(
    ctx: &Context,
    backend: &crate::backends::docker::DockerBackend,
    c: &Candidate,
    reason: &str,
) -> bool {
    match backend
        .owned(&c.account, &c.container, Purpose::Operate)
        .await
    {
        Ok(Some(owned)) if owned.running => {
            if let Err(e) = backend.stop_owned(&owned).await {
                tracing::warn!(container = %c.container, cause = %e, "culling");
                return false;
            }
        }
        _ => return false,
    }
    let (account, container, why) = (c.account.clone(), c.container.clone(), reason.to_string());
    let prefix = berth_spec::names::qualified(&account, "");
    // A culled GPU container's cards go back to the pool.
    let key = c.gpu.then(|| berth_core::desired::GpuKey {
        account: account.clone(),
        container: container
            .strip_prefix(&prefix)
            .unwrap_or(&container)
            .to_string(),
    });
    let recorded = ctx
        .store
        .call(move |s| {
            if let Some(key) = &key {
                s.gpu_end(key, crate::store::now_ms())?;
            }
            s.clear_cull_warning(&account, &container)?;
            s.set_culled(&account, &container, &why)?;
            s.notify(
                &account,
                berth_core::notify::Category::Culled,
                &format!(
                    "`{container}` was stopped: {why}; start it again from the console or push"
                ),
            )?;
            s.audit(&account, "culled", None, &format!("`{container}`: {why}"))
        })
        .await;
    if let Err(e) = recorded {
        tracing::warn!(cause = %e, "recording a culled container");
    }
    tracing::info!(account = %c.account, container = %c.container, %reason, "culled");
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(cpu_ns: u64, net_bytes: u64) -> Usage {
        Usage { cpu_ns, net_bytes }
    }

    #[test]
    fn idle_is_under_both_thresholds() {
        let sec = Duration::from_secs(10);
        // 0.01 cores and 100 B/s over 10 s: idle under 0.02 cores, 1 KiB/s.
        assert!(idle(u(0, 0), u(100_000_000, 1000), sec, 0.02, 1024));
        // Half a core is busy.
        assert!(!idle(u(0, 0), u(5_000_000_000, 0), sec, 0.02, 1024));
        // Traffic alone keeps it alive.
        assert!(!idle(u(0, 0), u(0, 100_000), sec, 0.02, 1024));
        // A restarted container's counters go back: not a negative rate.
        assert!(idle(u(9_000_000_000, 50), u(10, 0), sec, 0.02, 1024));
    }
}
