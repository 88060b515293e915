//! Idle culling: `serve` samples each running container's CPU time and
//! network bytes (one-shot stats) every `policy.idle.sample_every`; a
//! container whose use between samples stays under the site's thresholds
//! for its group's `idle_stop_after` is stopped — never removed — and
//! recorded as culled (status, console, audit) until a new revision, the
//! student or an admin starts it. The runner and exempt groups or accounts
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
    idle_since: Option<Instant>,
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
    /// Samples `candidates` and stops those idle for long enough; returns
    /// the accounts whose containers were culled.
    pub async fn sweep(&mut self, ctx: &Context, candidates: &[Candidate]) -> Vec<String> {
        let idle_cfg = &ctx.site.policy.idle;
        let net_below = idle_cfg.network_below.bytes().unwrap_or(1024);
        let mut culled = Vec::new();
        let mut alive = std::collections::HashSet::new();
        let mut judged = Vec::new();
        for c in candidates {
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
            let entry = self.seen.entry(c.container.clone()).or_insert(Seen {
                at: now,
                usage,
                idle_since: None,
            });
            if entry.at != now {
                if idle(
                    entry.usage,
                    usage,
                    now - entry.at,
                    idle_cfg.cpu_below,
                    net_below,
                ) {
                    entry.idle_since.get_or_insert(entry.at);
                } else {
                    entry.idle_since = None;
                }
                entry.at = now;
                entry.usage = usage;
            }
            let Some(since) = entry.idle_since else {
                continue;
            };
            if now.duration_since(since) < after {
                continue;
            }
            let reason = format!(
                "idle for {} s (under {} cores and {} B/s{})",
                now.duration_since(since).as_secs(),
                idle_cfg.cpu_below,
                net_below,
                if c.gpu {
                    "; GPU use is not measured"
                } else {
                    ""
                }
            );
            match backend
                .owned(&c.account, &c.container, Purpose::Operate)
                .await
            {
                Ok(Some(owned)) if owned.running => {
                    if let Err(e) = backend.stop_owned(&owned).await {
                        tracing::warn!(container = %c.container, cause = %e, "culling");
                        continue;
                    }
                    let (account, container, why) =
                        (c.account.clone(), c.container.clone(), reason.clone());
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
                            s.set_culled(&account, &container, &why)?;
                            s.notify(
                                &account,
                                berth_core::notify::Category::Culled,
                                &format!("`{container}` was stopped: {why}; start it again from the console or push"),
                            )?;
                            s.audit(&account, "culled", None, &format!("`{container}`: {why}"))
                        })
                        .await;
                    if let Err(e) = recorded {
                        tracing::warn!(cause = %e, "recording a culled container");
                    }
                    tracing::info!(account = %c.account, container = %c.container, %reason, "culled");
                    self.seen.remove(&c.container);
                    culled.push(c.account.clone());
                }
                _ => {}
            }
        }
        self.seen.retain(|k, _| alive.contains(k));
        culled.sort();
        culled.dedup();
        culled
    }
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
