//! Usage reports: what the store holds for a time range, per account or
//! summed by quota group or course; as lines, CSV, the monthly file
//! `serve` writes; and the range rules `reconciler usage` and the API
//! share.

use crate::clients::{Context, ReconcileError, Result};
use crate::store::Rollup;
use berth_core::usage::Amounts;
use std::collections::BTreeMap;
use std::sync::Arc;

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
    let now = crate::store::now_ms() / 1000;
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
    let groups = ctx.directory.groups(account).await?;
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
