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
    let now = now_ms();
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
            let groups = ctx
                .directory
                .lookup(account)
                .await?
                .map(|e| e.groups)
                .unwrap_or_default();
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

/// How a report sums accounts.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
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
    pub builds: u64,
    pub build_minutes: f64,
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

impl Line {
    /// The line as text cells: key, accounts, then the amounts (3 decimals).
    pub fn cells(&self) -> [String; 9] {
        [
            self.key.clone(),
            self.accounts.to_string(),
            format!("{:.3}", self.cpu_hours_used),
            format!("{:.3}", self.cpu_hours_reserved),
            format!("{:.3}", self.memory_gib_hours_reserved),
            format!("{:.3}", self.memory_gib_hours_used),
            format!("{:.3}", self.gpu_hours),
            self.builds.to_string(),
            format!("{:.1}", self.build_minutes),
        ]
    }
}

/// The report as CSV (RFC 4180: a field with a comma, quote or newline is
/// quoted), a header line first.
pub fn csv(report: &Report) -> String {
    let row = |cells: &[String]| {
        cells
            .iter()
            .map(|c| {
                if c.contains([',', '"', '\n']) {
                    format!("\"{}\"", c.replace('"', "\"\""))
                } else {
                    c.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(",")
            + "\n"
    };
    let header = [
        "key",
        "accounts",
        "cpu_hours_used",
        "cpu_hours_reserved",
        "memory_gib_hours_reserved",
        "memory_gib_hours_used",
        "gpu_hours",
        "builds",
        "build_minutes",
    ]
    .map(String::from);
    std::iter::once(row(&header))
        .chain(report.lines.iter().map(|l| row(&l.cells())))
        .collect()
}

/// Writes last month's report by account to
/// `<state_dir>/usage/usage-YYYY-MM.csv` once the month is over, unless it
/// is there already; the file written, if one was.
pub async fn monthly_csv(
    ctx: &Arc<Context>,
    now: jiff::Timestamp,
) -> Result<Option<std::path::PathBuf>> {
    let this_month = now
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .first_of_month();
    let Ok(last_month) = this_month.yesterday().map(|d| d.first_of_month()) else {
        return Ok(None);
    };
    let dir = std::path::Path::new(&ctx.site.state_dir.value).join("usage");
    let path = dir.join(format!("usage-{}.csv", &last_month.to_string()[..7]));
    if path.exists() {
        return Ok(None);
    }
    let (from, to) = range(
        Some(&last_month.to_string()),
        Some(&this_month.to_string()),
        now,
    )
    .map_err(|why| ReconcileError::Invalid {
        what: "the monthly usage report's range".into(),
        why,
    })?;
    let text = csv(&report(ctx, from, to, By::Account).await?);
    let written = path.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        let partial = dir.join(".usage.csv.partial");
        std::fs::write(&partial, text)?;
        std::fs::rename(&partial, &path)
    })
    .await
    .map_err(|e| ReconcileError::Join(e.to_string()))?
    .map_err(|e| ReconcileError::Invalid {
        what: format!("writing {}", written.display()),
        why: e.to_string(),
    })?;
    Ok(Some(written))
}

/// The lines `account` counts in when summing `by`: itself, its quota
/// group, or each course it is in (membership as the directory says now).
pub async fn keys_of(ctx: &Arc<Context>, account: &str, by: By) -> Result<Vec<String>> {
    if by == By::Account {
        return Ok(vec![account.to_string()]);
    }
    let groups = ctx
        .directory
        .lookup(account)
        .await?
        .map(|e| e.groups)
        .unwrap_or_default();
    Ok(match by {
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
    })
}

/// Per account and day (Unix seconds of its start), `from <= day < to`.
pub async fn daily(
    ctx: &Arc<Context>,
    from: i64,
    to: i64,
) -> Result<BTreeMap<(String, i64), Amounts>> {
    Ok(ctx
        .store
        .call(move |s| s.usage_rows(Rollup::Daily, from, to))
        .await?)
}

/// A report: its range (RFC 3339), how it sums, its lines.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub by: By,
    pub lines: Vec<Line>,
}

/// Unix seconds of a date (midnight UTC) or an RFC 3339 time.
fn instant(text: &str) -> std::result::Result<i64, String> {
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        return date
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp().as_second())
            .map_err(|e| e.to_string());
    }
    text.parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|_| format!("`{text}` is neither a date (2026-12-01) nor an RFC 3339 time"))
}

/// The range asked for (Unix seconds, `to` exclusive): from the first day
/// of this month and to the end of today (UTC) unless given.
pub fn range(
    from: Option<&str>,
    to: Option<&str>,
    now: jiff::Timestamp,
) -> std::result::Result<(i64, i64), String> {
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let from = match from {
        Some(t) => instant(t)?,
        None => instant(&today.first_of_month().to_string())?,
    };
    let to = match to {
        Some(t) => instant(t)?,
        None => instant(&today.tomorrow().map_err(|e| e.to_string())?.to_string())?,
    };
    if to <= from {
        return Err("`to` must be after `from`".into());
    }
    Ok((from, to))
}

/// The report: per account, or summed by group or course (membership as
/// the directory says now).
pub async fn report(ctx: &Arc<Context>, from: i64, to: i64, by: By) -> Result<Report> {
    Ok(Report {
        from: crate::base::time::rfc3339(from),
        to: crate::base::time::rfc3339(to),
        by,
        lines: lines(ctx, from, to, by).await?,
    })
}

async fn lines(ctx: &Arc<Context>, from: i64, to: i64, by: By) -> Result<Vec<Line>> {
    let accounts = per_account(ctx, from, to).await?;
    let mut lines: BTreeMap<String, (usize, Amounts)> = BTreeMap::new();
    for (account, a) in &accounts {
        let keys = keys_of(ctx, account, by).await?;
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
            builds: a.builds.round() as u64,
            build_minutes: a.build_seconds / 60.0,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_default_to_this_month_and_take_dates_or_times() {
        let now: jiff::Timestamp = "2026-12-03T05:00:00Z".parse().expect("time");
        let (from, to) = range(None, None, now).expect("defaults");
        assert_eq!(crate::base::time::rfc3339(from), "2026-12-01T00:00:00Z");
        assert_eq!(crate::base::time::rfc3339(to), "2026-12-04T00:00:00Z");
        let (from, _) = range(Some("2026-11-30T12:00:00Z"), None, now).expect("time");
        assert_eq!(crate::base::time::rfc3339(from), "2026-11-30T12:00:00Z");
        assert!(range(Some("yesterday"), None, now).is_err());
        assert!(range(Some("2026-12-03"), Some("2026-12-02"), now).is_err());
    }

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

    #[test]
    fn csv_has_a_header_and_quotes_what_needs_it() {
        let report = Report {
            from: "a".into(),
            to: "b".into(),
            by: By::Course,
            lines: vec![Line {
                key: "ml, \"advanced\"".into(),
                accounts: 2,
                cpu_hours_used: 1.0,
                cpu_hours_reserved: 2.5,
                memory_gib_hours_reserved: 0.0,
                memory_gib_hours_used: 0.0,
                gpu_hours: 0.25,
                builds: 3,
                build_minutes: 1.5,
            }],
        };
        assert_eq!(
            csv(&report),
            "key,accounts,cpu_hours_used,cpu_hours_reserved,memory_gib_hours_reserved,memory_gib_hours_used,gpu_hours,builds,build_minutes\n\"ml, \"\"advanced\"\"\",2,1.000,2.500,0.000,0.000,0.250,3,1.5\n"
        );
    }
}
