//! `reconciler gitlab …`: one-off GitLab administration. `install-hooks`
//! creates or updates the Berth webhook (push events only, with the site's
//! secret) on every workspace project of the configured groups.

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
}

pub async fn run(config: Option<&std::path::Path>, command: &Command) -> u8 {
    let Command::InstallHooks { url } = command;
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
    let Ok(secret) = std::env::var(&site_gl.webhook_secret_env.value) else {
        eprintln!(
            "reconciler gitlab: {} is not set",
            site_gl.webhook_secret_env.value
        );
        return exit::ERROR;
    };
    let projects = match crate::discovery::workspace_projects(&ctx, groups).await {
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
