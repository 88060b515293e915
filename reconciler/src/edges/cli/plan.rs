//! `reconciler plan --account A --ref BRANCH|SHA`: what a branch or commit
//! would do were it pushed to the account's default branch — the same
//! checks and plan as an accepted push, nothing applied, built or reserved
//! (see [`crate::engine::reconcile::preview`]). In GitLab mode the ref is fetched
//! into the mirror first (a commit id: every branch is). Exit codes as
//! `diff`: 0 nothing would change, 1 changes (or a refusal), 2 error.

use super::{Output, exit, open_context};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub account: String,
    /// A branch, a full ref (`refs/merge-requests/7/head`) or a commit id.
    #[arg(long = "ref")]
    pub git_ref: String,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn run(config: Option<&std::path::Path>, args: &Args) -> u8 {
    let ctx = match open_context(config).await {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    let is_sha = args.git_ref.len() == 40 && args.git_ref.bytes().all(|b| b.is_ascii_hexdigit());
    let fetched = if is_sha {
        crate::ops::discovery::refresh(&ctx, &args.account).await
    } else {
        crate::ops::discovery::refresh_ref(&ctx, &args.account, &args.git_ref).await
    };
    if let Err(e) = fetched {
        eprintln!("reconciler plan: {e}; planning from the mirror as it is");
    }
    let sha = match ctx.source.resolve(&args.account, &args.git_ref) {
        Ok(Some(sha)) => sha,
        Ok(None) => {
            eprintln!(
                "reconciler plan: `{}` names no commit of {}'s repository",
                args.git_ref, args.account
            );
            return exit::ERROR;
        }
        Err(e) => {
            eprintln!("reconciler plan: {e}");
            return exit::ERROR;
        }
    };
    let observed = ctx.observe_account(&args.account).await;
    let plan = crate::engine::reconcile::preview(&ctx, &args.account, &observed, None, &sha).await;
    let failed = plan.is_err();
    let plans = vec![(args.account.clone(), plan)];
    let summary = crate::ops::report::summarize(&plans);
    match args.output {
        Output::Text => print!(
            "{}",
            super::paint::paint(&crate::ops::report::plan_text(&plans))
        ),
        Output::Json => {
            match serde_json::to_string_pretty(&crate::ops::report::plan_json(&plans)) {
                Ok(text) => println!("{text}"),
                Err(e) => {
                    eprintln!("reconciler plan: {e}");
                    return exit::ERROR;
                }
            }
        }
    }
    if failed {
        exit::ERROR
    } else if summary.changes() > 0 || summary.rejected > 0 {
        exit::CHANGES_OR_INVALID
    } else {
        exit::OK
    }
}
