//! `reconciler apply`: converge every account (or one) to its accepted
//! revision. `--dry-run` prints the plan through the same code path and
//! changes nothing. Exit 2 if any account failed; the others still converge.
//! While accounts are planned a first bar counts them and shows the step of
//! any image being built. Each account's result is printed as soon as it
//! finishes: on a terminal under a live progress line (accounts done,
//! containers created, elapsed, an estimate), elsewhere as plain lines, or
//! with `--output json` as one JSON object per account per line.

use super::progress::Live;
use super::{Output, exit, open_with_accounts};
use crate::clients::BuildEvent;
use crate::clients::ReconcileError;
use crate::engine::reconcile::{AccountReport, Decision, short};
use crate::ops::apply;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub account: Option<String>,
    /// Show the plan, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Accounts converged at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Result lines as text, or one JSON object per account per line.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// What `apply` shows while it works: the live view, and the counts its
/// message and closing line give.
struct Progress {
    live: Live,
    done: usize,
    total: usize,
    created: usize,
    recreated: usize,
    removed: usize,
}

impl Progress {
    fn new(total: usize, output: Output) -> Progress {
        Progress {
            live: Live::counting(total as u64, "accounts", output),
            done: 0,
            total,
            created: 0,
            recreated: 0,
            removed: 0,
        }
    }

    fn account_done(&mut self, account: &str, report: &Result<AccountReport, ReconcileError>) {
        self.done += 1;
        if let Ok(r) = report {
            self.created += r.kinds.get("create").copied().unwrap_or(0);
            self.recreated += r.kinds.get("recreate").copied().unwrap_or(0);
            self.removed += r.kinds.get("remove").copied().unwrap_or(0);
        }
        let live = &self.live;
        if live.is_json() {
            live.json(&match report {
                Ok(r) => serde_json::json!({
                    "account": account,
                    "decision": r.decision,
                    "applied": r.applied,
                    "errors": r.errors,
                }),
                Err(e) => serde_json::json!({ "account": account, "error": e.to_string() }),
            });
            return;
        }
        match report {
            Ok(r) => {
                if let Decision::Reject { revision, reason } = &r.decision {
                    live.line(&format!(
                        "{account}: ! revision {} rejected: {reason}",
                        short(revision)
                    ));
                }
                if let Decision::Accept { revision, .. } = &r.decision {
                    live.line(&format!("{account}: accepted {}", short(revision)));
                }
                for l in &r.applied {
                    live.line(&format!("{account}: {l}"));
                }
                for l in &r.errors {
                    live.line(&format!("{account}: error: {l}"));
                }
            }
            Err(e) => live.line(&format!("{account}: error: {e}")),
        }
        live.status(format!(
            "{} created, {} recreated · last {account}",
            self.created, self.recreated
        ));
        live.advance(1);
    }

    fn finish(self, failed: usize) {
        let elapsed = self.live.finish();
        self.live.summary(&format!(
            "Apply: {}/{} account(s) in {:.1} s: {} created, {} recreated, {} removed, {failed} failed.",
            self.done,
            self.total,
            elapsed.as_secs_f64(),
            self.created,
            self.recreated,
            self.removed
        ));
    }
}

/// Plans every account under a live view of its own (accounts planned,
/// and the Dockerfile step of each image being built); each build that
/// ends is a line (`alice: built …`). JSON output gets no lines: a build's
/// outcome is in its account's object (accepted, or rejected with why).
async fn plan_with_progress(
    ctx: &std::sync::Arc<crate::clients::Context>,
    accounts: &[String],
    observed: &crate::clients::Observed,
    concurrency: usize,
    output: Output,
) -> Vec<(
    String,
    Result<crate::engine::reconcile::AccountPlan, ReconcileError>,
)> {
    use tokio::sync::broadcast::error::RecvError;
    let live = Live::counting(accounts.len() as u64, "accounts planned", output);
    let mut events = ctx.build_events.subscribe();
    let plans = apply::plan_each(ctx, accounts, observed, concurrency, |account| {
        live.advance(1);
        live.status(format!("planned {account}"));
    });
    let mut plans = std::pin::pin!(plans);
    let mut listening = true;
    let out = loop {
        tokio::select! {
            biased;
            event = events.recv(), if listening => match event {
                Ok(e) => show_build(&live, e),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => listening = false,
            },
            out = &mut plans => break out,
        }
    };
    while let Ok(e) = events.try_recv() {
        show_build(&live, e);
    }
    live.finish();
    out
}

fn show_build(live: &Live, event: BuildEvent) {
    match event {
        BuildEvent::Started { account, image } => {
            live.status(format!("{account}: building {image}"));
        }
        BuildEvent::Step {
            account,
            image,
            step,
        } => {
            // The step's command can be long; the bar has one line.
            let step: String = step.chars().take(60).collect();
            live.status(format!("{account}: building {image} · {step}"));
        }
        BuildEvent::Finished {
            account,
            image,
            outcome,
            seconds,
        } => live.line(&match outcome {
            Ok(()) => format!("{account}: built {image} in {seconds:.1} s"),
            Err(_) => format!("{account}: ! build of {image} failed after {seconds:.1} s"),
        }),
    }
}

pub async fn run(config: Option<&std::path::Path>, args: &Args) -> u8 {
    let (ctx, accounts, observed) = match open_with_accounts(config, args.account.as_deref()).await
    {
        Ok(found) => found,
        Err(code) => return code,
    };
    if !args.dry_run {
        ctx.enable_builds();
    }
    let plans = plan_with_progress(
        &ctx,
        &accounts,
        &observed,
        args.concurrency.max(16),
        if args.dry_run {
            Output::Json
        } else {
            args.output
        },
    )
    .await;
    if args.dry_run {
        super::diff::print_plans(&plans, super::Output::Text);
        return if plans.iter().any(|(_, p)| p.is_err()) {
            exit::ERROR
        } else {
            exit::OK
        };
    }
    let mut failed = 0;
    let mut ready = Vec::new();
    let mut progress = Progress::new(plans.len(), args.output);
    for (account, plan) in plans {
        match plan {
            Ok(p) => ready.push(p),
            Err(e) => {
                failed += 1;
                let _ = ctx.store.set_last_error(
                    &account,
                    Some(crate::store::Problem {
                        detail: &e.to_string(),
                        student: "a service Berth needs is unavailable",
                    }),
                );
                progress.account_done(&account, &Err(e));
            }
        }
    }
    apply::execute_each(&ctx, ready, args.concurrency, |account, report| {
        if report.as_ref().map_or(true, |r| !r.errors.is_empty()) {
            failed += 1;
        }
        progress.account_done(&account, &report);
    })
    .await;
    progress.finish(failed);
    if failed > 0 {
        eprintln!("reconciler apply: {failed} account(s) failed");
        exit::ERROR
    } else {
        exit::OK
    }
}
