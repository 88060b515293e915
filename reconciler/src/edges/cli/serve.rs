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
    // Taken first: a SIGTERM while the context opens or the server starts
    // (a unit stopping early, a test done with it) is then a graceful stop.
    let stop = shutdown_signal();
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
    match crate::edges::server::serve(ctx, opts, stop).await {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("reconciler serve: {e}");
            exit::ERROR
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT. The handlers are installed
/// when this is called, not when the future is first polled: until then
/// the default action would kill serve without its grace or a log line.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        match handlers {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SIGTERM that arrives after serve is answering but before it first
    /// awaits the stop must stop it gracefully, not kill it silently.
    #[tokio::test]
    async fn a_sigterm_before_the_stop_is_awaited_is_not_lost() {
        let stop = shutdown_signal();
        let sent = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(std::process::id().to_string())
            .status()
            .expect("kill runs");
        assert!(sent.success());
        tokio::time::timeout(std::time::Duration::from_secs(10), stop)
            .await
            .expect("the SIGTERM sent before the first poll stops serve");
    }
}
