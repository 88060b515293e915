//! `reconciler serve`: runs the webhook server, queue, workers and resync
//! loop until SIGTERM or SIGINT, then finishes in-flight work and exits 0.

use super::{exit, open_context};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address of the webhook, health and metrics server.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Accounts reconciled at once.
    #[arg(long, default_value_t = 8)]
    pub workers: usize,
    /// Watch local bare repositories under DIR and reconcile on change
    /// (development and demos without GitLab).
    #[arg(long, value_name = "DIR")]
    pub watch: Option<PathBuf>,
    /// After SIGTERM, how long in-flight reconciles and builds may run
    /// before `serve` exits anyway (they are converged again at the next
    /// start), e.g. `25s`.
    #[arg(long, default_value = "25s", value_parser = grace)]
    pub shutdown_grace: std::time::Duration,
}

fn grace(text: &str) -> Result<std::time::Duration, String> {
    berth_spec::site::parse_duration(text)
}

pub async fn run(config: Option<&std::path::Path>, args: &Args) -> u8 {
    let ctx = match open_context(config).await {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    ctx.enable_builds();
    let opts = crate::edges::server::Options {
        listen: args.listen,
        workers: args.workers,
        watch: args.watch.clone(),
        grace: args.shutdown_grace,
    };
    match crate::edges::server::serve(ctx, opts, shutdown_signal()).await {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("reconciler serve: {e}");
            exit::ERROR
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
