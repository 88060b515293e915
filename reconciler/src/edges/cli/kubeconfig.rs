//! `reconciler kubeconfig --account NAME`: prints a kubeconfig for the
//! student's service account in their namespace, with a bound token
//! (TokenRequest API) that expires after the site's `token_lifetime`.

use super::{exit, open_context};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub account: String,
}

pub async fn run(config: Option<&std::path::Path>, args: &Args) -> u8 {
    let ctx = match open_context(config).await {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    match crate::backends::kube_apply::student_kubeconfig(&ctx.site, &args.account).await {
        Ok(text) => {
            print!("{text}");
            exit::OK
        }
        Err(e) => {
            eprintln!("reconciler kubeconfig: {e}");
            exit::ERROR
        }
    }
}
