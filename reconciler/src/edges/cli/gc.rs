//! `reconciler gc [--dry-run] [--older-than DURATION]`: removes unused
//! images Berth pulled and reports the bytes freed, each image as it goes
//! (under a progress bar on a terminal).

use super::progress::Live;
use super::{Output, exit, open_context};
use crate::ops::gc::Step;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Idle time before an image goes (`0s`, `30m`, `7d`); the site's
    /// `policy.image_gc_after` when omitted.
    #[arg(long)]
    pub older_than: Option<String>,
    /// Result lines as text, or one JSON object per image per line.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn run(config: Option<&std::path::Path>, args: &Args) -> u8 {
    let ctx = match open_context(config).await {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    let age = match args.older_than.as_deref() {
        None => ctx.site.image_gc_after(),
        Some("0" | "0s") => std::time::Duration::ZERO,
        Some(text) => match berth_spec::site::parse_duration(text) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("reconciler gc: {e}");
                return exit::ERROR;
            }
        },
    };
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let live = Live::counting(0, "images", args.output);
    let result = crate::ops::gc::collect_with(&ctx, age, args.dry_run, |step| match step {
        Step::Looking { place, candidates } => {
            live.grow(candidates as u64);
            live.status(format!("looking at {place}"));
        }
        Step::Checked => live.advance(1),
        Step::Collected(item) => {
            live.line(&format!(
                "{}: {verb} {} ({})",
                item.endpoint,
                item.image,
                indicatif::HumanBytes(item.bytes)
            ));
            live.json(&serde_json::json!(item));
        }
    })
    .await;
    let elapsed = live.finish();
    match result {
        Ok(items) => {
            let total: u64 = items.iter().map(|i| i.bytes).sum();
            live.summary(&format!(
                "Gc: {} image(s), {} {} in {:.1} s.",
                items.len(),
                indicatif::HumanBytes(total),
                if args.dry_run { "reclaimable" } else { "freed" },
                elapsed.as_secs_f64()
            ));
            exit::OK
        }
        Err(e) => {
            eprintln!("reconciler gc: {e}");
            exit::ERROR
        }
    }
}
