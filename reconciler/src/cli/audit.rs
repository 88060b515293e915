//! `reconciler audit`: the audit log, newest first: every accepted and
//! rejected revision and every action applied, with time and reason.
//! Reads the store only.

use super::{Output, exit, open_store, output::rfc3339};
use crate::store::{AuditEntry, Store};
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
}

pub fn run(config: Option<&Path>, args: &Args) -> u8 {
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
        return follow(&store, args, entries);
    }
    match args.output {
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
            for e in &entries {
                println!("{}", line(e, Output::Text));
            }
        }
    }
    exit::OK
}

fn line(e: &AuditEntry, output: Output) -> String {
    match output {
        Output::Json => serde_json::to_string(e).unwrap_or_default(),
        Output::Text => {
            let rev = e
                .revision
                .as_deref()
                .map(crate::reconcile::short)
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

/// Prints `seen` oldest first, then whatever is written after, every
/// second, until Ctrl-C (SIGINT ends the process).
fn follow(store: &Store, args: &Args, seen: Vec<AuditEntry>) -> u8 {
    let key = |e: &AuditEntry| format!("{}\0{}\0{}\0{}", e.at, e.account, e.event, e.detail);
    let mut known: std::collections::HashSet<String> = seen.iter().map(key).collect();
    for e in seen.iter().rev() {
        println!("{}", line(e, args.output));
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let Ok(latest) = store.audit_log(args.account.as_deref(), 500) else {
            continue;
        };
        for e in latest.iter().rev() {
            if known.insert(key(e)) {
                println!("{}", line(e, args.output));
            }
        }
    }
}
