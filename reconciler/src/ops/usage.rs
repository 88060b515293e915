//! Usage accounting: sampling rounds over every Docker host (what `serve`
//! runs every `policy.usage.sample_every`), and reports of what the store
//! holds, by account, group or course.
//!
//! A round reads each host's containers (one list, one `die` events read,
//! then a stats and an inspect per running container, 8 at a time), hands
//! them with the stored cursors to the pure [`berth_core::usage::account`],
//! and writes the result in one transaction. Hosts are sampled
//! concurrently, each within the sampling interval.
//!
//! Kubernetes workloads are not sampled yet; the report says so.

use crate::clients::{Context, ReconcileError, Result};
use crate::store::Rollup;
use berth_core::usage::Amounts;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What one host's round added, per account.
#[derive(Debug, Default)]
pub struct Sampled {
    pub endpoint: String,
    pub containers: usize,
    pub by_account: BTreeMap<String, Amounts>,
    pub error: Option<String>,
}

/// One round over every reachable Docker host.
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
    futures::future::join_all(rounds).await
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
    let now = now_ms();
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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How a report sums accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[value(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum By {
    Account,
    /// The account's quota group (`students`, or `staff+students` for an
    /// account whose quota is the most generous of several).
    Group,
    /// Each of the site's `policy.usage.courses` the account is in.
    Course,
}

/// One line of a report, amounts in hours (GiB-hours for memory).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Line {
    pub key: String,
    pub accounts: usize,
    pub cpu_hours_used: f64,
    pub cpu_hours_reserved: f64,
    pub memory_gib_hours_reserved: f64,
    pub memory_gib_hours_used: f64,
    pub gpu_hours: f64,
}

/// What was used and reserved with `from <= t < to` (Unix seconds), per
/// account: from the hourly rows when the range is within their keeping
/// and not whole days, else the daily rows.
pub async fn per_account(
    ctx: &Arc<Context>,
    from: i64,
    to: i64,
) -> Result<BTreeMap<String, Amounts>> {
    let now = now_ms() / 1000;
    let days = from % 86_400 == 0 && to % 86_400 == 0;
    let rollup = if !days && from >= now - crate::store::HOURLY_KEPT {
        Rollup::Hourly
    } else {
        Rollup::Daily
    };
    let rows = ctx
        .store
        .call(move |s| s.usage_rows(rollup, from, to))
        .await?;
    let mut out: BTreeMap<String, Amounts> = BTreeMap::new();
    for ((account, _), a) in rows {
        out.entry(account).or_default().add(&a);
    }
    Ok(out)
}

/// The report: per account, or summed by group or course (membership as
/// the directory says now).
pub async fn report(ctx: &Arc<Context>, from: i64, to: i64, by: By) -> Result<Vec<Line>> {
    let accounts = per_account(ctx, from, to).await?;
    let mut lines: BTreeMap<String, (usize, Amounts)> = BTreeMap::new();
    for (account, a) in &accounts {
        let keys: Vec<String> = match by {
            By::Account => vec![account.clone()],
            By::Group | By::Course => {
                let groups = ctx
                    .directory
                    .lookup(account)
                    .await?
                    .map(|e| e.groups)
                    .unwrap_or_default();
                match by {
                    By::Group => vec![
                        berth_spec::policy::effective_quota(&ctx.site, &groups)
                            .map(|q| q.group)
                            .unwrap_or_else(|| "(no quota group)".into()),
                    ],
                    _ => ctx
                        .site
                        .policy
                        .usage
                        .courses
                        .iter()
                        .filter(|c| groups.contains(c))
                        .cloned()
                        .collect(),
                }
            }
        };
        for key in keys {
            let line = lines.entry(key).or_default();
            line.0 += 1;
            line.1.add(a);
        }
    }
    Ok(lines
        .into_iter()
        .map(|(key, (n, a))| Line {
            key,
            accounts: n,
            cpu_hours_used: a.cpu_used / 3600.0,
            cpu_hours_reserved: a.cpu_reserved / 3600.0,
            memory_gib_hours_reserved: a.memory_reserved / 3600.0,
            memory_gib_hours_used: a.memory_used / 3600.0,
            gpu_hours: a.gpu_reserved / 3600.0,
        })
        .collect())
}
