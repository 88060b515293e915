//! Runs reconciles over many accounts: observe every endpoint once, evaluate
//! accounts concurrently, then execute their plans with bounded concurrency.
//! One account's failure is reported and never stops the others.

use crate::engine::reconcile::{self, AccountPlan, AccountReport};

use crate::clients::{Context, Observed, ReconcileError};
use futures::StreamExt;
use std::sync::Arc;

/// Accounts known to Berth (see [`crate::ops::discovery`]) and one observation
/// of every backend, which names labelled owners and feeds the plans.
pub async fn accounts(
    ctx: &Context,
    only: Option<&str>,
) -> Result<(Vec<String>, Observed), ReconcileError> {
    let observed = ctx.observe_all().await;
    let accounts = crate::ops::discovery::accounts(ctx, only, &observed).await?;
    Ok((accounts, observed))
}

/// A plan per account against `observed`, or the error that prevented
/// computing it.
pub async fn plan_all(
    ctx: &Arc<Context>,
    accounts: &[String],
    observed: &Observed,
    concurrency: usize,
) -> Vec<(String, Result<AccountPlan, ReconcileError>)> {
    plan_each(ctx, accounts, observed, concurrency, |_| {}).await
}

/// [`plan_all`], telling `planned` each account as its plan is ready
/// (planning builds images, which can take minutes).
pub async fn plan_each(
    ctx: &Arc<Context>,
    accounts: &[String],
    observed: &Observed,
    concurrency: usize,
    mut planned: impl FnMut(&str),
) -> Vec<(String, Result<AccountPlan, ReconcileError>)> {
    let mut plans = std::pin::pin!(
        futures::stream::iter(accounts.iter().cloned())
            .map(|account| async move {
                let plan = reconcile::evaluate(ctx, &account, observed, None).await;
                (account, plan)
            })
            .buffer_unordered(concurrency.max(1))
    );
    let mut out = Vec::with_capacity(accounts.len());
    while let Some((account, plan)) = plans.next().await {
        planned(&account);
        out.push((account, plan));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Executes plans, `concurrency` accounts at a time, handing each
/// account's report to `done` as soon as that account finishes.
pub async fn execute_each(
    ctx: &Arc<Context>,
    plans: Vec<AccountPlan>,
    concurrency: usize,
    mut done: impl FnMut(String, Result<AccountReport, ReconcileError>),
) {
    let mut reports = std::pin::pin!(
        futures::stream::iter(plans)
            .map(|plan| async move {
                let report = reconcile::execute(ctx, &plan).await;
                if let Err(e) = &report {
                    let (account, detail) = (plan.account.clone(), e.to_string());
                    let _ = ctx
                        .store
                        .call(move |s| {
                            s.set_last_error(
                                &account,
                                Some(crate::store::Problem {
                                    detail: &detail,
                                    student: "a service Berth needs is unavailable",
                                }),
                            )
                        })
                        .await;
                }
                (plan.account.clone(), report)
            })
            .buffer_unordered(concurrency.max(1))
    );
    while let Some((account, report)) = reports.next().await {
        done(account, report);
    }
}
