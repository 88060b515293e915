//! `reconciler status`: per account, the accepted revision, its containers
//! as the backends report them (Docker: state, `host:port` for each
//! published port; Kubernetes: readiness, pod phase, restarts, Service
//! address and Ingress URL) and the last error or rejection, which names
//! the object and the API's reason. Reads the store and the backends only,
//! or with `--server` a running `serve`'s API; the view itself is the
//! library's read model ([`crate::ops::view`]).

use super::remote::Remote;
use super::{Output, exit, open_context};
use crate::ops::view::AccountView;
use std::collections::BTreeSet;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub account: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    /// Redraw every few seconds as reconciles happen, until Ctrl-C (with
    /// `--output json`: one compact object per redraw and line).
    #[arg(long)]
    pub watch: bool,
    /// Read serve's read model at this URL instead of this machine's
    /// store and backends (admin token from BERTH_ADMIN_TOKEN); with
    /// `--watch`, redraws as each reconcile is audited.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Seconds between redraws with `--watch`.
    #[arg(long, default_value_t = 2)]
    pub interval: u64,
}

/// Where the views come from: this machine's store and backends, or a
/// running `serve`'s read model.
enum Source {
    Local(std::sync::Arc<crate::clients::Context>),
    Remote(Remote),
}

pub async fn run(config: Option<&std::path::Path>, args: &Args) -> u8 {
    let source = match &args.server {
        Some(url) => match super::remote::connect(config, url, "status") {
            Ok(client) => Source::Remote(client),
            Err(code) => return code,
        },
        None => match open_context(config).await {
            Ok(ctx) => Source::Local(ctx),
            Err(code) => return code,
        },
    };
    if !args.watch {
        return once(&source, args).await;
    }
    // From a server, every audit line (a revision accepted, an action
    // applied) redraws at once; the interval is the fallback.
    let (wake, mut woken) = tokio::sync::mpsc::channel::<()>(1);
    if let Source::Remote(client) = &source {
        let client = client.clone();
        let account = args.account.clone();
        tokio::spawn(async move {
            let e = client
                .follow_audit(account.as_deref(), None, |_| {
                    let _ = wake.try_send(());
                })
                .await;
            tracing::warn!(cause = %e, "status --watch: the audit event stream ended");
        });
    }
    let json = matches!(args.output, Output::Json);
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    loop {
        // JSON: one object per redraw and line, like `kubectl get -w -o
        // json` streams; no heading, no clearing, for scripts.
        if !json {
            if terminal {
                // Home and clear, like watch(1).
                print!("\x1b[H\x1b[2J");
            }
            let from = match &args.server {
                Some(url) => url.as_str(),
                None => "local store",
            };
            println!(
                "reconciler status ({from}), every {} s (Ctrl-C to stop) — {}",
                args.interval,
                crate::base::time::rfc3339(crate::store::now())
            );
        }
        once(&source, args).await;
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(args.interval.max(1))) => {}
            Some(()) = woken.recv() => {}
            _ = tokio::signal::ctrl_c() => return exit::OK,
        }
    }
}

async fn once(source: &Source, args: &Args) -> u8 {
    let (views, mut code) = match source {
        Source::Local(ctx) => local(ctx, args).await,
        Source::Remote(client) => match client.accounts(args.account.as_deref()).await {
            Ok(views) => (views, exit::OK),
            Err(e) => {
                eprintln!("reconciler status: {e}");
                (Vec::new(), exit::ERROR)
            }
        },
    };
    let document = serde_json::json!({ "accounts": views });
    match args.output {
        Output::Json => {
            let written = if args.watch {
                serde_json::to_string(&document)
            } else {
                serde_json::to_string_pretty(&document)
            };
            match written {
                Ok(s) => println!("{s}"),
                Err(e) => {
                    eprintln!("reconciler status: {e}");
                    code = exit::ERROR;
                }
            }
        }
        Output::Text => print!("{}", super::paint::paint(&text(&views))),
    }
    code
}

/// The views read here, and exit 2 if a backend or the store failed.
async fn local(ctx: &crate::clients::Context, args: &Args) -> (Vec<AccountView>, u8) {
    let mut code = exit::OK;
    // Status reads; but an admin asking wants to know the store cannot
    // take the next reconcile's writes.
    if let Err(why) = ctx.store.check_writable() {
        eprintln!("reconciler status: {why}");
        code = exit::ERROR;
    }
    let observed = ctx.observe_all().await;
    // Status reads what is on disk (mirrors in GitLab mode) and fetches
    // nothing. With --account, that account is the whole list.
    let all = args.account.is_none();
    let mut accounts: BTreeSet<String> = match &args.account {
        Some(only) => BTreeSet::from([only.clone()]),
        None => ctx
            .source
            .accounts()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    };
    match &observed.kube {
        Some(Ok(map)) if all => accounts.extend(map.keys().cloned()),
        Some(Err(e)) => {
            eprintln!("reconciler status: kubernetes: {e}");
            code = exit::ERROR;
        }
        _ => {}
    }
    for (endpoint, obs) in &observed.docker {
        match obs {
            Ok(map) if all => accounts.extend(map.keys().cloned()),
            Ok(_) => {}
            Err(e) => {
                eprintln!("reconciler status: endpoint {endpoint}: {e}");
                code = exit::ERROR;
            }
        }
    }
    let mut out = Vec::new();
    for account in accounts {
        match crate::ops::view::account(
            &ctx.store,
            &observed,
            &account,
            &crate::engine::reconcile::lending::cards(&ctx.site),
        ) {
            Ok(v) => out.push(v),
            Err(e) => {
                eprintln!("reconciler status: {account}: {e}");
                code = exit::ERROR;
            }
        }
    }
    (out, code)
}

/// The text `status` prints (uncoloured): per account a heading, a line
/// per container, then its warnings and last error.
fn text(accounts: &[AccountView]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for a in accounts {
        let rev = a
            .revision
            .as_deref()
            .map(crate::engine::reconcile::short)
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
        let _ = writeln!(out, "{}  revision {rev}{when}{on}", a.account);
        for c in &a.containers {
            let mut extra = c.ports.clone();
            if let Some(r) = &c.ready {
                extra.insert(0, format!("ready {r}"));
            }
            if let Some(n) = c.restarts.filter(|n| *n > 0) {
                extra.push(format!("{n} restart(s)"));
            }
            extra.extend(c.url.clone());
            extra.extend(c.gpu_devices.as_ref().map(|g| format!("GPU {g}")));
            extra.extend(c.culled.as_ref().map(|w| format!("culled {w}")));
            extra.extend(
                c.stops_at
                    .as_ref()
                    .map(|t| format!("idle: will stop at {t}")),
            );
            extra.extend(c.why.clone());
            let _ = writeln!(
                out,
                "  {:<24} {:<10} {}",
                c.container,
                c.state,
                extra.join(", ")
            );
        }
        for g in &a.gpus {
            let _ = writeln!(out, "  {}", crate::ops::lending::line(g));
        }
        if !a.archived.is_empty() {
            let _ = writeln!(out, "  archived volumes: {}", a.archived.join(", "));
        }
        for w in &a.warnings {
            let _ = writeln!(out, "{}: warning: {w}", a.account);
        }
        if let Some(e) = &a.last_error {
            let _ = writeln!(out, "{}: error: {e}", a.account);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn views() -> Vec<AccountView> {
        serde_json::from_value(serde_json::json!([
            {
                "account": "alice",
                "revision": "0bae7ada5a5f0000",
                "accepted_at": "2026-11-26T01:29:02Z",
                "endpoint": "local",
                "containers": [
                    { "name": "web", "backend": "docker", "container": "alice--web",
                      "state": "running", "image": "docker.io/library/nginx:1.27",
                      "revision": "0bae", "ports": ["127.0.0.1:20000->8080"],
                      "gpu_devices": "0" },
                    { "name": "api", "backend": "kubernetes", "container": "berth-alice/api",
                      "state": "running", "ready": "1/1", "restarts": 2,
                      "url": "http://alice--api.apps.example.edu/",
                      "image": "docker.io/library/python:3.12", "revision": "0bae",
                      "ports": [] }
                ],
                "last_error": null, "last_error_student": null, "last_error_at": null,
                "warnings": ["image `r/bob/x` is no longer shared"]
            },
            {
                "account": "bob", "revision": null, "accepted_at": null, "endpoint": null,
                "containers": [],
                "last_error": "revision 1234 rejected: workspace.yaml:3:5: unknown field `prots`",
                "last_error_student": null, "last_error_at": null, "warnings": []
            }
        ]))
        .expect("views")
    }

    #[test]
    fn status_text_plain_coloured_and_json() {
        let plain = text(&views());
        insta::assert_snapshot!("status_plain", plain);
        insta::assert_snapshot!(
            "status_coloured",
            super::super::paint::paint_with(&plain, true)
        );
        let json = serde_json::to_string_pretty(&serde_json::json!({ "accounts": views() }))
            .expect("json");
        insta::assert_snapshot!("status_json", json);
    }
}
