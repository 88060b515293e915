//! `reconciler drain HOST [--to HOST]`: moves every account off a Docker
//! host, with its volumes' data (see [`crate::ops::drain`]). Run it again to
//! resume one that stopped midway. Each account is reported as it lands
//! (under a progress bar on a terminal, or as a JSON line).

use super::progress::Live;
use super::{Output, exit, open_context};
use crate::ops::drain::Step;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The endpoint (its `name` in site.yaml) to empty.
    pub host: String,
    /// Where to move the accounts (default: the least-loaded host that has
    /// the GPUs each needs).
    #[arg(long)]
    pub to: Option<String>,
    /// Result lines as text, or one JSON object per account moved.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn run(config: Option<&std::path::Path>, args: &Args) -> u8 {
    let ctx = match open_context(config).await {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    ctx.enable_builds();
    let live = Live::counting(0, "accounts", args.output);
    let result =
        crate::ops::drain::drain(&ctx, &args.host, args.to.as_deref(), |step| match step {
            Step::Accounts(n) => live.grow(n as u64),
            Step::Moving { account, to } => live.status(format!("{account} → {to}")),
            Step::Copied {
                account,
                volume,
                bytes,
            } => live.status(format!(
                "{account}: copied and checked {volume} ({})",
                indicatif::HumanBytes(bytes)
            )),
            Step::Moved(m) => {
                live.line(&format!(
                    "{}: moved to {} ({} volume(s), {})",
                    m.account,
                    m.to,
                    m.volumes,
                    indicatif::HumanBytes(m.bytes)
                ));
                live.json(&serde_json::json!(m));
                live.advance(1);
            }
        })
        .await;
    let elapsed = live.finish();
    match result {
        Ok(moved) => {
            live.summary(&format!(
                "Drain: {} account(s) moved off {} in {:.1} s; nothing is placed there now.",
                moved.len(),
                args.host,
                elapsed.as_secs_f64()
            ));
            exit::OK
        }
        Err(e) => {
            eprintln!("reconciler drain: {e}");
            exit::ERROR
        }
    }
}
