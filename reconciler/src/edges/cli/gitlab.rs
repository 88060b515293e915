//! `reconciler gitlab …`: one-off GitLab administration. `install-hooks`
//! creates or updates the Berth webhook (push events only, with the site's
//! secret) on every workspace project of the configured groups; `poll`
//! runs one polling round and shows what `serve` would reconcile.

use super::{exit, open_context};
use berth_spec::site::Repositories;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create or update the push webhook on every workspace project.
    InstallHooks {
        /// Where GitLab should deliver, e.g. https://berth.example/hooks/gitlab
        #[arg(long)]
        url: String,
    },
    /// Ask every known workspace repository where its default branch
    /// points and who pushed what moved; applies nothing.
    Poll {
        /// Discover the groups' workspace projects first (otherwise only
        /// those Berth already knows are asked).
        #[arg(long)]
        discover: bool,
    },
}

pub async fn run(config: Option<&std::path::Path>, command: &Command) -> u8 {
    match command {
        Command::InstallHooks { url } => install_hooks(config, url).await,
        Command::Poll { discover } => poll(config, *discover).await,
    }
}

async fn poll(config: Option<&std::path::Path>, discover: bool) -> u8 {
    let ctx = match open_context(config).await {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    if discover {
        let started = std::time::Instant::now();
        let observed = crate::clients::Observed::default();
        match crate::ops::discovery::list(&ctx, None, &observed).await {
            Ok(accounts) => println!(
                "discovered {} account(s) in {} ms",
                accounts.len(),
                started.elapsed().as_millis()
            ),
            Err(e) => {
                eprintln!("reconciler gitlab poll: {e}");
                return exit::ERROR;
            }
        }
    }
    let round = match crate::ops::poll::Poller::default().round(&ctx).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("reconciler gitlab poll: {e}");
            return exit::ERROR;
        }
    };
    for p in &round.pushes {
        println!(
            "{}: moved to {}, pushed by {}",
            p.account,
            p.revision
                .as_deref()
                .map(crate::engine::reconcile::short)
                .unwrap_or("-"),
            p.pusher.as_deref().unwrap_or("?")
        );
    }
    for (account, sha) in &round.unattributed {
        println!(
            "{account}: moved to {}, GitLab names no pusher yet",
            crate::engine::reconcile::short(sha)
        );
    }
    for (account, why) in &round.failed {
        println!("{account}: error: {why}");
    }
    println!(
        "polled {} repositories in {} ms: {} moved; asked GitLab who pushed in {} ms; {} failed",
        round.polled,
        round.asked.as_millis(),
        round.pushes.len() + round.unattributed.len(),
        round.attributed.as_millis(),
        round.failed.len()
    );
    if round.failed.is_empty() {
        exit::OK
    } else {
        exit::ERROR
    }
}

async fn install_hooks(config: Option<&std::path::Path>, url: &str) -> u8 {
    let ctx = match open_context(config).await {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    let (Some(gl), Some(site_gl)) = (&ctx.gitlab, &ctx.site.gitlab) else {
        eprintln!(
            "reconciler gitlab: the site configures no GitLab API (gitlab.url, gitlab.token_env)"
        );
        return exit::ERROR;
    };
    let Repositories::Gitlab { groups, .. } = &ctx.site.repositories else {
        eprintln!(
            "reconciler gitlab: repositories come from a local directory, not from GitLab groups"
        );
        return exit::ERROR;
    };
    let Some(secret_env) = &site_gl.webhook_secret_env else {
        eprintln!(
            "reconciler gitlab: the site takes no webhooks (gitlab.webhook_secret_env is not set)"
        );
        return exit::ERROR;
    };
    let Ok(secret) = std::env::var(&secret_env.value) else {
        eprintln!("reconciler gitlab: {} is not set", secret_env.value);
        return exit::ERROR;
    };
    let projects = match crate::ops::discovery::workspace_projects(&ctx, groups).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("reconciler gitlab: {e}");
            return exit::ERROR;
        }
    };
    let mut failed = 0;
    for (account, project) in projects {
        match gl.ensure_hook(project.id, url, &secret).await {
            Ok(id) => println!("{account}: {} hook {id}", project.path_with_namespace),
            Err(e) => {
                failed += 1;
                println!("{account}: {} error: {e}", project.path_with_namespace);
            }
        }
    }
    if failed > 0 { exit::ERROR } else { exit::OK }
}
