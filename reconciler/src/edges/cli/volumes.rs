//! `reconciler volumes [--account A] [--measure]`: every account's Docker
//! volumes as last measured (size, host, last use) and each account's
//! total against its storage quota; `--measure` measures every host first
//! (what `serve` does every `policy.storage.measure_every`).

use super::{Output, exit, open_context};
use berth_spec::quantity::describe_bytes;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this account's volumes.
    #[arg(long)]
    pub account: Option<String>,
    /// Measure every Docker host now, before listing.
    #[arg(long)]
    pub measure: bool,
    /// A table, or one JSON object per volume per line.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn run(config: Option<&Path>, args: &Args) -> u8 {
    let ctx = match open_context(config).await {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    if args.measure {
        for m in crate::ops::storage::measure(&ctx).await {
            match &m.error {
                Some(e) => eprintln!("reconciler volumes: {}: {e}", m.endpoint),
                None => eprintln!(
                    "measured {}: {} volume(s), {} in {:.2} s",
                    m.endpoint,
                    m.volumes,
                    describe_bytes(m.bytes),
                    m.seconds
                ),
            }
        }
    }
    let only = args.account.clone();
    let rows = match ctx
        .store
        .call(move |s| s.volume_usage(only.as_deref()))
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("reconciler volumes: {e}");
            return exit::ERROR;
        }
    };
    if let Output::Json = args.output {
        for r in &rows {
            println!("{}", serde_json::json!(r));
        }
        return exit::OK;
    }
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    println!(
        "{:<16} {:<32} {:<10} {:>10}  {:<20}  LAST USED",
        "ACCOUNT", "VOLUME", "HOST", "SIZE", "MEASURED"
    );
    for r in &rows {
        *totals.entry(&r.account).or_default() += r.bytes.unwrap_or(0);
        println!(
            "{:<16} {:<32} {:<10} {:>10}  {:<20}  {}",
            r.account,
            r.volume,
            r.endpoint,
            r.bytes.map(describe_bytes).unwrap_or_else(|| "?".into()),
            crate::base::time::rfc3339(r.measured_at),
            r.last_used
                .map(crate::base::time::rfc3339)
                .unwrap_or_else(|| "not seen in use".into())
        );
    }
    for (account, used) in totals {
        let quota = match crate::ops::storage::quota_of(&ctx, account).await {
            Ok(Some((limit, group))) => {
                let over = if used > limit { ", OVER" } else { "" };
                format!(" of {} (group {group}{over})", describe_bytes(limit))
            }
            Ok(None) => " (no storage quota)".into(),
            Err(e) => format!(" (quota unknown: {e})"),
        };
        println!("{account}: {}{quota}", describe_bytes(used));
    }
    exit::OK
}
