//! `reconciler diff`: what `apply` would do, per account. Exit 0 when
//! nothing would change, 1 when something would, 2 when an account could
//! not be evaluated.

use super::{Output, exit, open_with_accounts};
use crate::ops::apply;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub account: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    /// Accounts evaluated at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

pub async fn run(config: Option<&std::path::Path>, args: &Args) -> u8 {
    let (ctx, accounts, observed) = match open_with_accounts(config, args.account.as_deref()).await
    {
        Ok(found) => found,
        Err(code) => return code,
    };
    let plans = apply::plan_all(&ctx, &accounts, &observed, args.concurrency).await;
    print_plans(&plans, args.output);
    let summary = crate::ops::report::summarize(&plans);
    if summary.errors > 0 {
        exit::ERROR
    } else if summary.changes() > 0
        || plans.iter().any(|(_, p)| {
            p.as_ref().is_ok_and(|p| {
                matches!(
                    p.decision,
                    crate::engine::reconcile::Decision::Accept { .. }
                )
            })
        })
    {
        exit::CHANGES_OR_INVALID
    } else {
        exit::OK
    }
}

pub fn print_plans(
    plans: &[(
        String,
        Result<crate::engine::reconcile::AccountPlan, crate::clients::ReconcileError>,
    )],
    format: Output,
) {
    match format {
        Output::Text => print!(
            "{}",
            super::paint::paint(&crate::ops::report::plan_text(plans))
        ),
        Output::Json => match serde_json::to_string_pretty(&crate::ops::report::plan_json(plans)) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("reconciler: cannot render JSON: {e}"),
        },
    }
}
