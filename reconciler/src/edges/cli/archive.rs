//! `reconciler archive --account A` and `reconciler unarchive --account A
//! [--discard]`: an admin archives a workspace's Docker volumes now (the
//! account must have nothing running), brings them back, or deletes the
//! archives for good (see [`crate::engine::archive`]). Archive and
//! unarchive may be run again after a failure or a kill: what was not
//! finished is redone, the volume never lost.

use super::{Output, exit, open_context};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub account: String,
    /// Text, or one JSON object.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, clap::Args)]
pub struct UnarchiveArgs {
    #[command(flatten)]
    pub base: Args,
    /// Delete the account's archives instead of restoring them: their data
    /// is gone for good, and the next push starts with empty volumes.
    #[arg(long)]
    pub discard: bool,
}

#[derive(Clone, Copy)]
enum Act {
    Archive,
    Unarchive,
    Discard,
}

pub async fn archive(config: Option<&std::path::Path>, args: &Args) -> u8 {
    run(config, args, Act::Archive).await
}

pub async fn unarchive(config: Option<&std::path::Path>, args: &UnarchiveArgs) -> u8 {
    let act = if args.discard {
        Act::Discard
    } else {
        Act::Unarchive
    };
    run(config, &args.base, act).await
}

async fn run(config: Option<&std::path::Path>, args: &Args, act: Act) -> u8 {
    let ctx = match open_context(config).await {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    let account = args.account.as_str();
    let (cmd, verb, result) = match act {
        Act::Archive => (
            "archive",
            "archived",
            crate::engine::archive::archive(&ctx, account).await,
        ),
        Act::Unarchive => (
            "unarchive",
            "restored",
            crate::engine::archive::unarchive(&ctx, account).await,
        ),
        Act::Discard => (
            "unarchive --discard",
            "deleted the archive of",
            crate::engine::archive::discard(&ctx, account).await,
        ),
    };
    match result {
        Ok(done) => {
            match args.output {
                Output::Json => println!("{}", serde_json::json!(done)),
                Output::Text if done.volumes.is_empty() => {
                    println!("{account}: nothing to do");
                }
                Output::Text => {
                    // A deleted archive was not read back: nothing to check.
                    let checked = if matches!(act, Act::Discard) {
                        ""
                    } else {
                        ", checked"
                    };
                    for (volume, files) in &done.volumes {
                        println!("{account}: {verb} {volume} ({files} file(s){checked})");
                    }
                }
            }
            exit::OK
        }
        Err(e) => {
            eprintln!("reconciler {cmd}: {e}");
            exit::ERROR
        }
    }
}
