//! The console's usage pages: a student's own CPU and GPU hours this
//! month, day by day; and for admins, every group's reserved CPU-hours per
//! day (stacked), storage per day, the groups' totals and the top
//! accounts. The numbers are the report's (`reconciler usage`,
//! `GET /api/v1/usage`) and the charts are SVG drawn on the server
//! ([`super::chart`]).

use super::chart::{Series, stacked_bars};
use super::{Console, Me, not_found, render, to_login};
use crate::ops::usage::{By, Line};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use berth_core::usage::Amounts;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How many accounts the admin page lists.
const TOP: usize = 10;

#[derive(askama::Template)]
#[template(path = "usage.html")]
struct MyUsage {
    me: Option<Me>,
    from: String,
    to: String,
    line: Option<Vec<String>>,
    cpu_chart: String,
    gpu_chart: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "admin_usage.html")]
struct AdminUsage {
    me: Option<Me>,
    from: String,
    to: String,
    groups: Vec<Vec<String>>,
    top: Vec<Vec<String>>,
    cpu_chart: String,
    storage_chart: String,
}

/// This month so far: the range (Unix seconds) and its days.
fn this_month() -> (i64, i64, Vec<(i64, String)>) {
    let (from, to) =
        crate::ops::usage::range(None, None, jiff::Timestamp::now()).unwrap_or((0, 86_400));
    let days = (from..to)
        .step_by(86_400)
        .map(|d| (d, crate::base::time::rfc3339(d)[..10].to_string()))
        .collect();
    (from, to, days)
}

fn per_day(days: &[(i64, String)], rows: &BTreeMap<i64, f64>) -> Vec<f64> {
    days.iter()
        .map(|(d, _)| rows.get(d).copied().unwrap_or(0.0))
        .collect()
}

pub(super) async fn mine(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some(s) = c.session(&headers).await else {
        return to_login();
    };
    let (from, to, days) = this_month();
    let rows = crate::ops::usage::daily(&c.ctx, from, to)
        .await
        .unwrap_or_default();
    let mine: BTreeMap<i64, &Amounts> = rows
        .iter()
        .filter(|((a, _), _)| *a == s.account)
        .map(|((_, d), a)| (*d, a))
        .collect();
    let hours = |f: fn(&Amounts) -> f64| -> BTreeMap<i64, f64> {
        mine.iter().map(|(d, a)| (*d, f(a) / 3600.0)).collect()
    };
    let labels: Vec<String> = days.iter().map(|(_, l)| l.clone()).collect();
    let reserved = hours(|a| a.cpu_reserved);
    let used = hours(|a| a.cpu_used);
    let cpu_chart = stacked_bars(
        "my-cpu",
        &labels,
        &[
            Series {
                name: "used".into(),
                values: per_day(&days, &used),
            },
            Series {
                name: "reserved, not used".into(),
                values: per_day(&days, &reserved)
                    .iter()
                    .zip(per_day(&days, &used))
                    .map(|(r, u)| (r - u).max(0.0))
                    .collect(),
            },
        ],
        "CPU-hours",
    );
    let gpus = hours(|a| a.gpu_reserved);
    let gpu_chart = gpus.values().any(|v| *v > 0.0).then(|| {
        stacked_bars(
            "my-gpu",
            &labels,
            &[Series {
                name: "GPUs held".into(),
                values: per_day(&days, &gpus),
            }],
            "GPU-hours",
        )
    });
    let line = crate::ops::usage::report(&c.ctx, from, to, By::Account)
        .await
        .ok()
        .and_then(|r| r.lines.into_iter().find(|l| l.key == s.account))
        .map(|l| l.cells().to_vec());
    render(MyUsage {
        me: Some(Me::from(&s)),
        from: crate::base::time::rfc3339(from),
        to: crate::base::time::rfc3339(to),
        line,
        cpu_chart,
        gpu_chart,
    })
}

pub(super) async fn admin(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some(s) = c.session(&headers).await else {
        return to_login();
    };
    if !s.admin {
        return not_found(Some(Me::from(&s)));
    }
    let (from, to, days) = this_month();
    let labels: Vec<String> = days.iter().map(|(_, l)| l.clone()).collect();
    let rows = crate::ops::usage::daily(&c.ctx, from, to)
        .await
        .unwrap_or_default();
    // Reserved CPU-hours per group and day.
    let mut by_group: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    for ((account, day), a) in &rows {
        let group = crate::ops::usage::keys_of(&c.ctx, account, By::Group)
            .await
            .ok()
            .and_then(|k| k.into_iter().next())
            .unwrap_or_else(|| "(unknown)".into());
        *by_group.entry(group).or_default().entry(*day).or_default() += a.cpu_reserved / 3600.0;
    }
    let series: Vec<Series> = by_group
        .iter()
        .map(|(g, v)| Series {
            name: g.clone(),
            values: per_day(&days, v),
        })
        .collect();
    let cpu_chart = stacked_bars("groups-cpu", &labels, &series, "CPU-hours reserved");
    let storage = c
        .ctx
        .store
        .call(move |st| st.storage_by_day(from, to))
        .await
        .unwrap_or_default();
    let (mut volumes, mut registry): (BTreeMap<i64, f64>, BTreeMap<i64, f64>) = Default::default();
    let gib = (1u64 << 30) as f64;
    for (_, day, v, r) in storage {
        *volumes.entry(day).or_default() += v as f64 / gib;
        *registry.entry(day).or_default() += r as f64 / gib;
    }
    let storage_chart = stacked_bars(
        "storage",
        &labels,
        &[
            Series {
                name: "volumes".into(),
                values: per_day(&days, &volumes),
            },
            Series {
                name: "registry".into(),
                values: per_day(&days, &registry),
            },
        ],
        "GiB",
    );
    let cells = |lines: Vec<Line>| -> Vec<Vec<String>> {
        lines.iter().map(|l| l.cells().to_vec()).collect()
    };
    let groups = crate::ops::usage::report(&c.ctx, from, to, By::Group)
        .await
        .map(|r| cells(r.lines))
        .unwrap_or_default();
    let mut accounts = crate::ops::usage::report(&c.ctx, from, to, By::Account)
        .await
        .map(|r| r.lines)
        .unwrap_or_default();
    accounts.sort_by(|a, b| b.cpu_hours_reserved.total_cmp(&a.cpu_hours_reserved));
    accounts.truncate(TOP);
    render(AdminUsage {
        me: Some(Me::from(&s)),
        from: crate::base::time::rfc3339(from),
        to: crate::base::time::rfc3339(to),
        groups,
        top: cells(accounts),
        cpu_chart,
        storage_chart,
    })
}
