//! `reconciler apply`: converge every account (or one) to its accepted
//! revision. `--dry-run` prints the plan through the same code path and
//! changes nothing. Exit 2 if any account failed; the others still converge.

use super::{exit, open_with_accounts};
use crate::apply;
use crate::reconcile::{Decision, short};

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
    let plans = apply::plan_all(&ctx, &accounts, &observed, args.concurrency.max(16)).await;
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
                println!("{account}: error: {e}");
            }
        }
    }
    for (account, report) in apply::execute_all(&ctx, ready, args.concurrency).await {
        match report {
            Ok(r) => {
                if let Decision::Reject { revision, reason } = &r.decision {
                    println!(
                        "{account}: ! revision {} rejected: {reason}",
                        short(revision)
                    );
                }
                if let Decision::Accept { revision, .. } = &r.decision {
                    println!("{account}: accepted {}", short(revision));
                }
                for line in &r.applied {
                    println!("{account}: {line}");
                }
                for line in &r.errors {
                    println!("{account}: error: {line}");
                }
                if !r.errors.is_empty() {
                    failed += 1;
                }
            }
            Err(e) => {
                failed += 1;
                println!("{account}: error: {e}");
            }
        }
    }
    if failed > 0 {
        eprintln!("reconciler apply: {failed} account(s) failed");
        exit::ERROR
    } else {
        exit::OK
    }
}
