//! `reconciler usage [--from D] [--to D] [--by account|group|course]
//! [--output text|json|csv]`: CPU, memory and GPU hours used and reserved
//! in a time range, as `serve`'s sampling counted them.

use super::exit;
use crate::ops::usage::By;
use std::path::Path;

#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Start (inclusive): a date (`2026-12-01`, midnight UTC) or an RFC 3339
    /// time; the first day of this month when left out.
    #[arg(long)]
    pub from: Option<String>,
    /// End (exclusive), the same way; the end of today (UTC) when left out.
    #[arg(long)]
    pub to: Option<String>,
    /// Sum per account, per quota group, or per course.
    #[arg(long, value_enum, default_value_t = By::Account)]
    pub by: By,
    #[arg(long, value_enum, default_value_t)]
    pub output: Format,
}

pub async fn run(config: Option<&Path>, args: &Args) -> u8 {
    let (from, to) = match crate::ops::usage::range(
        args.from.as_deref(),
        args.to.as_deref(),
        jiff::Timestamp::now(),
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("reconciler usage: {e}");
            return exit::ERROR;
        }
    };
    let ctx = match super::open_context(config).await {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    let report = match crate::ops::usage::report(&ctx, from, to, args.by).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("reconciler usage: {e}");
            return exit::ERROR;
        }
    };
    let lines = &report.lines;
    match args.output {
        Format::Json => println!("{}", serde_json::json!(report)),
        Format::Csv => print!("{}", crate::ops::usage::csv(&report)),
        Format::Text => {
            println!(
                "Usage from {} to {} (Docker containers; Kubernetes workloads are not counted yet)",
                report.from, report.to
            );
            println!(
                "{:<24} {:>8} {:>12} {:>12} {:>14} {:>14} {:>10} {:>7} {:>9}",
                "KEY",
                "ACCOUNTS",
                "CPU-H USED",
                "CPU-H RSVD",
                "MEM GIB-H RSVD",
                "MEM GIB-H USED",
                "GPU-H",
                "BUILDS",
                "BUILD-MIN"
            );
            for l in lines {
                let c = l.cells();
                println!(
                    "{:<24} {:>8} {:>12} {:>12} {:>14} {:>14} {:>10} {:>7} {:>9}",
                    c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]
                );
            }
        }
    }
    exit::OK
}
