//! `reconciler usage [--from D] [--to D] [--by account|group|course]
//! [--output text|json|csv]`: CPU, memory and GPU hours used and reserved
//! in a time range, as `serve`'s sampling counted them.

use super::exit;
use crate::ops::usage::{By, Line};
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

/// Unix seconds of a date (midnight UTC) or an RFC 3339 time.
fn instant(text: &str) -> Result<i64, String> {
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        return date
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp().as_second())
            .map_err(|e| e.to_string());
    }
    text.parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|_| format!("`{text}` is neither a date (2026-12-01) nor an RFC 3339 time"))
}

/// The range asked for, defaults filled in.
fn range(args: &Args, now: jiff::Timestamp) -> Result<(i64, i64), String> {
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let from = match &args.from {
        Some(t) => instant(t)?,
        None => instant(&today.first_of_month().to_string())?,
    };
    let to = match &args.to {
        Some(t) => instant(t)?,
        None => instant(&today.tomorrow().map_err(|e| e.to_string())?.to_string())?,
    };
    if to <= from {
        return Err("--to must be after --from".into());
    }
    Ok((from, to))
}

pub async fn run(config: Option<&Path>, args: &Args) -> u8 {
    let (from, to) = match range(args, jiff::Timestamp::now()) {
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
    let lines = match crate::ops::usage::report(&ctx, from, to, args.by).await {
        Ok(lines) => lines,
        Err(e) => {
            eprintln!("reconciler usage: {e}");
            return exit::ERROR;
        }
    };
    let (from_text, to_text) = (
        crate::base::time::rfc3339(from),
        crate::base::time::rfc3339(to),
    );
    match args.output {
        Format::Json => println!(
            "{}",
            serde_json::json!({"from": from_text, "to": to_text, "by": args.by, "lines": lines})
        ),
        Format::Csv => {
            println!(
                "{}",
                csv_row(
                    &[
                        "key",
                        "accounts",
                        "cpu_hours_used",
                        "cpu_hours_reserved",
                        "memory_gib_hours_reserved",
                        "memory_gib_hours_used",
                        "gpu_hours"
                    ]
                    .map(String::from)
                )
            );
            for l in &lines {
                println!("{}", csv_row(&cells(l)));
            }
        }
        Format::Text => {
            println!(
                "Usage from {from_text} to {to_text} (Docker containers; Kubernetes workloads are not counted yet)"
            );
            println!(
                "{:<24} {:>8} {:>12} {:>12} {:>14} {:>14} {:>10}",
                "KEY",
                "ACCOUNTS",
                "CPU-H USED",
                "CPU-H RSVD",
                "MEM GIB-H RSVD",
                "MEM GIB-H USED",
                "GPU-H"
            );
            for l in &lines {
                let c = cells(l);
                println!(
                    "{:<24} {:>8} {:>12} {:>12} {:>14} {:>14} {:>10}",
                    c[0], c[1], c[2], c[3], c[4], c[5], c[6]
                );
            }
        }
    }
    exit::OK
}

fn cells(l: &Line) -> [String; 7] {
    [
        l.key.clone(),
        l.accounts.to_string(),
        format!("{:.3}", l.cpu_hours_used),
        format!("{:.3}", l.cpu_hours_reserved),
        format!("{:.3}", l.memory_gib_hours_reserved),
        format!("{:.3}", l.memory_gib_hours_used),
        format!("{:.3}", l.gpu_hours),
    ]
}

/// A CSV line (RFC 4180: a field with a comma, quote or newline is quoted).
fn csv_row(cells: &[String]) -> String {
    cells
        .iter()
        .map(|c| {
            if c.contains([',', '"', '\n']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_default_to_this_month_and_take_dates_or_times() {
        let now: jiff::Timestamp = "2026-12-03T05:00:00Z".parse().expect("time");
        let args = |from: Option<&str>, to: Option<&str>| Args {
            from: from.map(str::to_string),
            to: to.map(str::to_string),
            by: By::Account,
            output: Format::Text,
        };
        let (from, to) = range(&args(None, None), now).expect("defaults");
        assert_eq!(crate::base::time::rfc3339(from), "2026-12-01T00:00:00Z");
        assert_eq!(crate::base::time::rfc3339(to), "2026-12-04T00:00:00Z");
        let (from, _) = range(&args(Some("2026-11-30T12:00:00Z"), None), now).expect("time");
        assert_eq!(crate::base::time::rfc3339(from), "2026-11-30T12:00:00Z");
        assert!(range(&args(Some("yesterday"), None), now).is_err());
        assert!(range(&args(Some("2026-12-03"), Some("2026-12-02")), now).is_err());
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(
            csv_row(&["a".into(), "b,c".into(), "d\"e".into()]),
            "a,\"b,c\",\"d\"\"e\""
        );
    }
}
