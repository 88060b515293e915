//! The budgets of an account's groups (`cpu_hours`, `gpu_hours` in the
//! site's quotas) as spent this period, read from the store, where
//! `serve`'s usage loop keeps each group's total after every sampling
//! round; for the pure rules of [`berth_core::budget`]. Without `serve`
//! (an `apply` alone), what it last wrote stands.

use crate::clients::{Context, Result};
use berth_core::budget::{GroupBudget, Spent};
use berth_spec::site::{BudgetPeriod, OverBudget, Quota};
use std::sync::Arc;

/// The period of `q`'s budget holding `now` (Unix seconds): start, end,
/// and its name.
pub fn period(q: &Quota, now: i64) -> (i64, i64, &'static str) {
    match q.budget_period {
        BudgetPeriod::Week => {
            let (s, e) = berth_core::time::week_of(now);
            (s, e, "week")
        }
        BudgetPeriod::Month => {
            let (s, e) = berth_core::time::month_of(now);
            (s, e, "month")
        }
    }
}

/// The groups of the site with a budget, and their quotas.
pub fn budgeted(ctx: &Context) -> impl Iterator<Item = (&String, &Quota)> {
    ctx.site
        .policy
        .quotas
        .iter()
        .filter(|(_, q)| q.cpu_hours.is_some() || q.gpu_hours.is_some())
}

/// The budgets among `groups`, with what each group spent this period.
pub async fn of(ctx: &Arc<Context>, groups: &[String], now: i64) -> Result<Vec<GroupBudget>> {
    let mine: Vec<(String, Quota)> = budgeted(ctx)
        .filter(|(g, _)| groups.contains(g))
        .map(|(g, q)| (g.clone(), q.clone()))
        .collect();
    if mine.is_empty() {
        return Ok(vec![]);
    }
    let asked: Vec<(String, i64)> = mine
        .iter()
        .map(|(g, q)| (g.clone(), period(q, now).0))
        .collect();
    let spent = ctx
        .store
        .call(move |s| {
            asked
                .iter()
                .map(|(g, start)| s.budget_use(g, *start))
                .collect::<std::result::Result<Vec<_>, _>>()
        })
        .await?;
    Ok(mine
        .into_iter()
        .zip(spent)
        .map(|((group, q), (cpu, gpu))| {
            let (_, end, name) = period(&q, now);
            GroupBudget {
                group,
                period: name,
                ends: crate::base::time::rfc3339(end),
                cpu: q.cpu_hours.map(|limit| Spent {
                    used: cpu / 3600.0,
                    limit,
                }),
                gpu: q.gpu_hours.map(|limit| Spent {
                    used: gpu / 3600.0,
                    limit,
                }),
                refuse: q.over_budget == OverBudget::Refuse,
            }
        })
        .collect())
}
