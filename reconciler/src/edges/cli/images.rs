//! `reconciler images`: the department registry's catalogue with owners,
//! digests, sizes, share descriptions and users. Reads only.

use super::{Output, exit, open_context};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only images their owners share.
    #[arg(long)]
    pub shared: bool,
    /// Only images owned by this account.
    #[arg(long)]
    pub account: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn run(config: Option<&std::path::Path>, args: &Args) -> u8 {
    let ctx = match open_context(config).await {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    let entries = match crate::ops::catalogue::catalogue(&ctx).await {
        Ok(Some(e)) => e,
        Ok(None) => {
            eprintln!("reconciler images: the site names no department registry");
            return exit::ERROR;
        }
        Err(e) => {
            eprintln!("reconciler images: {e}");
            return exit::ERROR;
        }
    };
    let entries: Vec<_> = entries
        .into_iter()
        .filter(|e| !args.shared || e.shared)
        .filter(|e| args.account.as_ref().is_none_or(|a| *a == e.owner))
        .collect();
    match args.output {
        Output::Json => {
            match serde_json::to_string_pretty(&serde_json::json!({ "images": entries })) {
                Ok(s) => println!("{s}"),
                Err(e) => {
                    eprintln!("reconciler images: {e}");
                    return exit::ERROR;
                }
            }
        }
        Output::Text => {
            println!(
                "{:<48} {:<20} {:>9}  {:<8} USERS / DESCRIPTION",
                "IMAGE", "DIGEST", "SIZE", "SHARED"
            );
            for e in &entries {
                let digest = e.digest.get(..19).unwrap_or(&e.digest);
                let size = format!("{:.1}M", e.size as f64 / 1_048_576.0);
                let shared = if e.shared { "yes" } else { "-" };
                let mut tail = e.users.join(",");
                if let Some(d) = &e.description {
                    tail = if tail.is_empty() {
                        d.clone()
                    } else {
                        format!("{tail} / {d}")
                    };
                }
                println!(
                    "{:<48} {digest:<20} {size:>9}  {shared:<8} {tail}",
                    e.reference
                );
            }
        }
    }
    exit::OK
}
