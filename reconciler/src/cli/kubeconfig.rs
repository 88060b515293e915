//! `reconciler kubeconfig --account NAME`: prints a kubeconfig for the
//! student's service account in their namespace, with a bound token
//! (TokenRequest API) that expires after the site's `token_lifetime`.

use super::{exit, open_context};
use crate::backend::kube::{Settings, kubeconfig};
use crate::backend::kube_apply::KubeBackend;

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
    let config = match load_config(k.kubeconfig.as_deref(), k.context.as_deref()).await {
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

/// The site's kubeconfig file and context, else the usual inference
/// (in-cluster, then `KUBECONFIG` / `~/.kube/config`).
async fn load_config(path: Option<&str>, context: Option<&str>) -> Result<kube::Config, String> {
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    match path {
        Some(p) => {
            let file = kube::config::Kubeconfig::read_from(p).map_err(|e| e.to_string())?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| e.to_string())
        }
        None => kube::Config::infer().await.map_err(|e| e.to_string()),
    }
}
