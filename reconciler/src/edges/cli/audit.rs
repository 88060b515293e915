//! `reconciler audit`: the audit log, newest first: every accepted and
//! rejected revision and every action applied, with time and reason.
//! Reads the store only, or with `--server` a running `serve`'s API.

use super::{Output, exit, open_store};
use crate::base::time::rfc3339;
use crate::store::{AuditCursor, AuditEntry, Store};
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub account: Option<String>,
    /// Most entries shown.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    /// Keep printing new entries as they are written (oldest first, one
    /// line or JSON object each), until Ctrl-C.
    #[arg(long)]
    pub follow: bool,
    /// Read from a running `reconciler serve` at this URL instead of the
    /// local store (admin token from BERTH_ADMIN_TOKEN).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
}

pub async fn run(config: Option<&Path>, args: &Args) -> u8 {
    if let Some(url) = &args.server {
        return remote(config, url, args).await;
    }
    let store = match open_store(config, "audit") {
        Ok((_, store)) => store,
        Err(code) => return code,
    };
    let entries = match store.audit_log(args.account.as_deref(), args.limit) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("reconciler audit: {e}");
            return exit::ERROR;
        }
    };
    if args.follow {
        return follow(&store, args, entries).await;
    }
    print(&entries, args.output)
}

/// The whole list (newest first), as one JSON document or text lines.
fn print(entries: &[AuditEntry], output: Output) -> u8 {
    match output {
        Output::Json => {
            match serde_json::to_string_pretty(&serde_json::json!({ "entries": entries })) {
                Ok(s) => println!("{s}"),
                Err(e) => {
                    eprintln!("reconciler audit: {e}");
                    return exit::ERROR;
                }
            }
        }
        Output::Text => {
            for e in entries {
                println!("{}", line(e, Output::Text));
            }
        }
    }
    exit::OK
}

/// `--server URL`: the same, read from a running `serve`.
async fn remote(config: Option<&Path>, url: &str, args: &Args) -> u8 {
    let client = match super::remote::connect(config, url, "audit") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let entries = match client.audit(args.account.as_deref(), args.limit).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("reconciler audit: {e}");
            return exit::ERROR;
        }
    };
    if !args.follow {
        return print(&entries, args.output);
    }
    for e in entries.iter().rev() {
        println!("{}", line(e, args.output));
    }
    let after = entries.first().map(|e| e.id);
    tokio::select! {
        e = client.follow_audit(args.account.as_deref(), after, |e| println!("{}", line(&e, args.output))) => {
            eprintln!("reconciler audit: {e}");
            exit::ERROR
        }
        _ = tokio::signal::ctrl_c() => exit::OK,
    }
}

fn line(e: &AuditEntry, output: Output) -> String {
    match output {
        Output::Json => serde_json::to_string(e).unwrap_or_default(),
        Output::Text => {
            let rev = e
                .revision
                .as_deref()
                .map(crate::engine::reconcile::short)
                .unwrap_or("-");
            format!(
                "{}  {:<14} {:<13} {rev:<12}  {}",
                rfc3339(e.at),
                e.account,
                e.event,
                e.detail
            )
        }
    }
}

/// Prints `seen` oldest first, then each line as it is written (and a
/// started action again when it ends), every second, until Ctrl-C.
async fn follow(store: &Store, args: &Args, seen: Vec<AuditEntry>) -> u8 {
    for e in seen.iter().rev() {
        println!("{}", line(e, args.output));
    }
    let account = args.account.clone();
    let cursor = match seen.first() {
        Some(newest) => AuditCursor::resume(store, account, newest.id),
        None => AuditCursor::from_now(store, account),
    };
    let mut cursor = match cursor {
        Ok(c) => c,
        Err(e) => {
            eprintln!("reconciler audit: {e}");
            return exit::ERROR;
        }
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = tokio::signal::ctrl_c() => return exit::OK,
        }
        // A store busy with a writer is read again at the next tick.
        let Ok(new) = cursor.poll(store) else {
            continue;
        };
        for e in &new {
            println!("{}", line(e, args.output));
        }
    }
}
