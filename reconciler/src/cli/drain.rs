//! `reconciler drain HOST [--to HOST]`: moves every account off a Docker
//! host, with its volumes' data (see [`crate::drain`]). Run it again to
//! resume one that stopped midway.

use super::{exit, open_context};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The endpoint (its `name` in site.yaml) to empty.
    pub host: String,
    /// Where to move the accounts (default: the least-loaded host that has
    /// the GPUs each needs).
    #[arg(long)]
    pub to: Option<String>,
}

pub async fn run(config: Option<&std::path::Path>, args: &Args) -> u8 {
    let ctx = match open_context(config).await {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    ctx.enable_builds();
    match crate::drain::drain(&ctx, &args.host, args.to.as_deref()).await {
        Ok(moved) => {
            for m in &moved {
                println!(
                    "{}: moved to {} ({} volume(s), {} bytes)",
                    m.account, m.to, m.volumes, m.bytes
                );
            }
            println!(
                "{}: {} account(s) moved; nothing is placed there now",
                args.host,
                moved.len()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("reconciler drain: {e}");
            exit::ERROR
        }
    }
}
