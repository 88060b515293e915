//! `reconciler gpu`: the cards and who holds them until when, who waits
//! (place, estimate), bookings (`book`, `unbook`) and extending a grant.

use super::{Output, exit, open_context};
use berth_core::lending::booking::Ask;
use std::path::Path;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Every card, its holder and until when; the queue; the bookings.
    List {
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Reserve N cards (of a model) for a group over a window; other
    /// groups' grants on them are shortened to end before it.
    Book {
        #[arg(long)]
        group: String,
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[arg(long)]
        model: Option<String>,
        /// A Docker host; any host with enough cards when left out.
        #[arg(long)]
        host: Option<String>,
        /// Start, RFC 3339 (`2026-12-07T09:00:00Z`).
        #[arg(long)]
        from: String,
        /// End, RFC 3339.
        #[arg(long)]
        to: String,
    },
    /// Cancel a booking.
    Unbook { id: i64 },
    /// Give a container's grant more time, when nobody waits for its host
    /// and no booking follows.
    Extend {
        #[arg(long)]
        account: String,
        #[arg(long)]
        container: String,
        /// How long from now, e.g. `2h` (at most the group's gpu_time_max).
        #[arg(long = "for", default_value = "1h")]
        length: String,
    },
}

fn instant(text: &str) -> Result<i64, String> {
    text.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|e| format!("`{text}` is not an RFC 3339 time: {e}"))
}

fn when(ms: Option<i64>) -> String {
    ms.map(|m| crate::base::time::rfc3339(m / 1000))
        .unwrap_or_else(|| "-".into())
}

pub async fn run(config: Option<&Path>, cmd: &Command) -> u8 {
    let ctx = match open_context(config).await {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    match cmd {
        Command::List { output } => {
            let o = match crate::ops::lending::overview(&ctx).await {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("reconciler gpu: {e}");
                    return exit::ERROR;
                }
            };
            if let Output::Json = output {
                println!("{}", serde_json::json!(o));
                return exit::OK;
            }
            println!(
                "{:<10} {:<16} {:<14} {:<28} {:<20}  BOOKED",
                "HOST", "CARD", "MODEL", "HOLDER", "UNTIL"
            );
            for c in &o.cards {
                println!(
                    "{:<10} {:<16} {:<14} {:<28} {:<20}  {}",
                    c.endpoint,
                    c.id,
                    c.model,
                    c.holder.as_deref().unwrap_or("free"),
                    when(c.until),
                    c.booked.as_deref().unwrap_or("-")
                );
            }
            for w in &o.waiting {
                println!(
                    "waiting: {}/{} for {} card(s) on {}: #{} in line, may start {}",
                    w.account,
                    w.container,
                    w.count,
                    w.endpoint,
                    w.position,
                    when(w.estimate)
                );
            }
            for b in &o.bookings {
                println!(
                    "booking #{}: {} card(s) {} of {} for `{}`, {} to {}",
                    b.id,
                    b.cards.len(),
                    b.cards.join(", "),
                    b.endpoint,
                    b.group,
                    when(Some(b.start)),
                    when(Some(b.end))
                );
            }
            exit::OK
        }
        Command::Book {
            group,
            count,
            model,
            host,
            from,
            to,
        } => {
            let (start, end) = match (instant(from), instant(to)) {
                (Ok(s), Ok(e)) => (s, e),
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("reconciler gpu book: {e}");
                    return exit::ERROR;
                }
            };
            let ask = Ask {
                group: group.clone(),
                endpoint: host.clone(),
                model: model.clone(),
                count: *count,
                start,
                end,
            };
            let by = std::env::var("USER").unwrap_or_else(|_| "admin".into());
            match crate::ops::lending::book(&ctx, ask, &by).await {
                Ok(b) => {
                    println!(
                        "booking #{}: {} of {} for `{group}` from {from} to {to}",
                        b.id,
                        b.cards.join(", "),
                        b.endpoint
                    );
                    exit::OK
                }
                Err(e) => {
                    eprintln!("reconciler gpu book: {e}");
                    exit::CHANGES_OR_INVALID
                }
            }
        }
        Command::Unbook { id } => {
            let id = *id;
            match ctx.store.call(move |s| s.gpu_unbook(id)).await {
                Ok(true) => exit::OK,
                Ok(false) => {
                    eprintln!("reconciler gpu unbook: no booking #{id}");
                    exit::ERROR
                }
                Err(e) => {
                    eprintln!("reconciler gpu unbook: {e}");
                    exit::ERROR
                }
            }
        }
        Command::Extend {
            account,
            container,
            length,
        } => match crate::ops::lending::extend(&ctx, account, container, length).await {
            Ok(end) => {
                println!("{account}/{container}: lent until {}", when(Some(end)));
                exit::OK
            }
            Err(e) => {
                eprintln!("reconciler gpu extend: {e}");
                exit::CHANGES_OR_INVALID
            }
        },
    }
}
