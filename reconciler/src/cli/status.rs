//! `reconciler status`: per account, the accepted revision, its containers
//! as the backend reports them (state, `host:port` for each published port)
//! and the last error or rejection. Reads the store and the backends only.

use super::{Output, exit, open_context, output::rfc3339};
use serde::Serialize;
use std::collections::BTreeSet;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub account: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Serialize)]
pub struct ContainerStatus {
    pub name: String,
    pub container: String,
    pub state: String,
    /// The image reference the container runs (with `@sha256:` when pinned).
    pub image: String,
    pub revision: String,
    /// `host_ip:host_port->container_port`.
    pub ports: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct AccountStatus {
    pub account: String,
    pub revision: Option<String>,
    pub accepted_at: Option<String>,
    pub endpoint: Option<String>,
    pub containers: Vec<ContainerStatus>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub warnings: Vec<String>,
}

pub async fn run(config: Option<&std::path::Path>, args: &Args) -> u8 {
    let ctx = match open_context(config).await {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    let mut code = exit::OK;
    let observed = ctx.observe_all().await;
    // Status reads what is on disk (mirrors in GitLab mode) and fetches nothing.
    let mut accounts: BTreeSet<String> = ctx
        .source
        .accounts()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| args.account.as_ref().is_none_or(|only| only == a))
        .collect();
    if let Some(only) = &args.account {
        accounts.insert(only.clone());
    }
    for (endpoint, obs) in &observed {
        match obs {
            Ok(map) => accounts.extend(
                map.keys()
                    .filter(|a| args.account.as_ref().is_none_or(|only| only == *a))
                    .cloned(),
            ),
            Err(e) => {
                eprintln!("reconciler status: endpoint {endpoint}: {e}");
                code = exit::ERROR;
            }
        }
    }
    let mut out = Vec::new();
    for account in accounts {
        let accepted = ctx.store.accepted(&account).ok().flatten();
        let warnings = ctx.store.warnings(&account).unwrap_or_default();
        let last = ctx.store.last_error(&account).ok().flatten();
        let endpoint = ctx.store.placement(&account).ok().flatten();
        let mut containers: Vec<ContainerStatus> = observed
            .values()
            .filter_map(|o| o.as_ref().ok())
            .filter_map(|m| m.get(&account))
            .flat_map(|o| o.containers.iter())
            .map(|c| ContainerStatus {
                name: c.name.clone(),
                container: c.full_name.clone(),
                state: c.state.clone(),
                image: c.image.clone(),
                revision: c.revision.clone(),
                ports: c
                    .ports
                    .iter()
                    .map(|(cp, host)| format!("{host}->{cp}"))
                    .collect(),
            })
            .collect();
        containers.sort_by(|a, b| a.container.cmp(&b.container));
        out.push(AccountStatus {
            account,
            revision: accepted.as_ref().map(|a| a.revision.clone()),
            accepted_at: accepted.as_ref().map(|a| rfc3339(a.at)),
            endpoint,
            containers,
            last_error: last.as_ref().map(|l| l.1.clone()),
            last_error_at: last.as_ref().map(|l| rfc3339(l.0)),
            warnings,
        });
    }
    match args.output {
        Output::Json => match serde_json::to_string_pretty(&serde_json::json!({ "accounts": out }))
        {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("reconciler status: {e}");
                return exit::ERROR;
            }
        },
        Output::Text => print_text(&out),
    }
    code
}

fn print_text(accounts: &[AccountStatus]) {
    for a in accounts {
        let rev = a
            .revision
            .as_deref()
            .map(crate::reconcile::short)
            .unwrap_or("none accepted");
        let when = a
            .accepted_at
            .as_deref()
            .map(|t| format!(" (accepted {t})"))
            .unwrap_or_default();
        let on = a
            .endpoint
            .as_deref()
            .map(|e| format!(" on {e}"))
            .unwrap_or_default();
        println!("{}  revision {rev}{when}{on}", a.account);
        for c in &a.containers {
            println!(
                "  {:<24} {:<10} {}",
                c.container,
                c.state,
                c.ports.join(", ")
            );
        }
        for w in &a.warnings {
            println!("  warning: {w}");
        }
        if let Some(e) = &a.last_error {
            println!("  last error: {e}");
        }
    }
}
