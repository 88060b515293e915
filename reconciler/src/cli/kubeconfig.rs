//! `reconciler kubeconfig --account NAME`: prints a kubeconfig for the
//! student's service account in their namespace, with a bound token
//! (TokenRequest API) that expires after the site's `token_lifetime`.

use super::{exit, open_context};
use crate::backend::kube_apply::KubeBackend;
use crate::desired::kube::{Settings, kubeconfig};

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
    let (Some(settings), Some(k)) = (
        Settings::from_site(&ctx.site),
        ctx.site.backends.kubernetes.as_ref(),
    ) else {
        eprintln!("reconciler kubeconfig: the site has no Kubernetes cluster");
        return exit::ERROR;
    };
    let lifetime = berth_spec::site::parse_duration(&k.token_lifetime)
        .unwrap_or(std::time::Duration::from_secs(8 * 3600));
    let config =
        match crate::context::kube_config(k.kubeconfig.as_deref(), k.context.as_deref()).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("reconciler kubeconfig: no cluster configuration: {e}");
                return exit::ERROR;
            }
        };
    let client = match kube::Client::try_from(config.clone()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("reconciler kubeconfig: {e}");
            return exit::ERROR;
        }
    };
    let namespace = settings.namespace(&args.account);
    match KubeBackend::new(client)
        .student_token(&namespace, lifetime)
        .await
    {
        Ok(token) => {
            let ca = config.root_cert.clone().unwrap_or_default();
            print!(
                "{}",
                kubeconfig(
                    &config.cluster_url.to_string(),
                    &ca,
                    &namespace,
                    &args.account,
                    &token
                )
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("reconciler kubeconfig: {e}");
            exit::ERROR
        }
    }
}
