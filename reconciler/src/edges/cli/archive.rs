//! `reconciler archive --account A` and `reconciler unarchive --account A`:
//! an admin archives a workspace's Docker volumes now (the account must
//! have nothing running) or brings them back (see
//! [`crate::engine::archive`]). Either may be run again after a failure or a
//! kill: what was not finished is redone, the volume never lost.

use super::{Output, exit, open_context};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub account: String,
    /// Text, or one JSON object.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn archive(config: Option<&std::path::Path>, args: &Args) -> u8 {
    run(config, args, true).await
}

pub async fn unarchive(config: Option<&std::path::Path>, args: &Args) -> u8 {
    run(config, args, false).await
}

async fn run(config: Option<&std::path::Path>, args: &Args, archiving: bool) -> u8 {
    let ctx = match open_context(config).await {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    let (verb, result) = if archiving {
        (
            "archived",
            crate::engine::archive::archive(&ctx, &args.account).await,
        )
    } else {
        (
            "restored",
            crate::engine::archive::unarchive(&ctx, &args.account).await,
        )
    };
    match result {
        Ok(done) => {
            match args.output {
                Output::Json => println!("{}", serde_json::json!(done)),
                Output::Text if done.volumes.is_empty() => {
                    println!("{}: nothing to do", args.account);
                }
                Output::Text => {
                    for (volume, files) in &done.volumes {
                        println!(
                            "{}: {verb} {volume} ({files} file(s), checked)",
                            args.account
                        );
                    }
                }
            }
            exit::OK
        }
        Err(e) => {
            let cmd = if archiving { "archive" } else { "unarchive" };
            eprintln!("reconciler {cmd}: {e}");
            exit::ERROR
        }
    }
}
