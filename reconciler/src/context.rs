//! Builds the reconcile [`Context`] from a site file: opens the store,
//! the git source and the directory, and connects every Docker endpoint and
//! the Kubernetes cluster.
//! Configuration problems are errors here, before anything is touched.

use crate::backend::{ClusterConfigError, DockerBackend, Unavailable};
use crate::gitlab::GitLab;
use crate::identity::Directory;
use crate::mirror::Mirrors;
use crate::reconcile::{Context, KubeCluster};
use crate::source::LocalSource;
use crate::store::Store;
use berth_spec::Site;
use berth_spec::site::Repositories;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    GitLab(#[from] crate::gitlab::GitLabError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error(transparent)]
    Signer(#[from] crate::token::SignerError),
}

/// Reads and validates `site.yaml`, rendering problems as `path:line:col: message`.
pub fn load_site(path: &Path) -> Result<Site, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let site = berth_spec::parse_site(&bytes).map_err(|d| {
        ConfigError::Invalid(
            d.iter()
                .map(|d| d.render(&path.display().to_string()))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    for warning in berth_spec::site::warnings(&site) {
        tracing::warn!(site = %path.display(), "{warning}");
    }
    Ok(site)
}

/// Opens everything a reconcile needs. Unreachable Docker endpoints are
/// kept as errors so that only their accounts fail.
pub async fn connect(site: Site) -> Result<Context, ConfigError> {
    let gitlab = match &site.gitlab {
        Some(gl) => match (&gl.url, &gl.token_env) {
            (Some(url), Some(token_env)) => Some(GitLab::from_env(url, token_env)?),
            _ => None,
        },
        None => None,
    };
    let (source, mirrors) = match &site.repositories {
        Repositories::Local { root, repository } => {
            (LocalSource::new(root, repository.as_str()), None)
        }
        Repositories::Gitlab {
            repository,
            clone_url,
            ..
        } => {
            let root = Path::new(&site.state_dir.value).join("mirrors");
            let url = site
                .gitlab
                .as_ref()
                .and_then(|g| g.url.as_ref())
                .map(|u| u.value.clone())
                .unwrap_or_default();
            let template = clone_url
                .clone()
                .unwrap_or_else(|| format!("{}/{{path}}.git", url.trim_end_matches('/')));
            let token = site
                .gitlab
                .as_ref()
                .and_then(|g| g.token_env.as_ref())
                .and_then(|v| std::env::var(&v.value).ok());
            let mirrors = Mirrors::new(&root, repository, &template, token);
            (LocalSource::new(root, repository.as_str()), Some(mirrors))
        }
    };
    let registry_keys = crate::token::Keys::load(&site)?.map(std::sync::Arc::new);
    let credentials = crate::registry::Credentials::from_site(&site, registry_keys.clone());
    let site_registry = site
        .registry
        .as_ref()
        .map(|r| crate::registry::Registry::from_site(r, credentials.clone()));
    let store = Store::open(Path::new(&site.state_dir.value))?;
    let directory = Directory::from_site(&site)?;
    let mut docker = BTreeMap::new();
    for ep in &site.backends.docker {
        let backend = DockerBackend::connect(ep)
            .await
            .map(|b| b.with_build_slots(site.policy.builds.per_host))
            .map(|b| {
                let logs = &site.policy.container_logs;
                b.with_log_limits(logs.max_size.bytes().unwrap_or(10 << 20), logs.max_files)
            })
            .map(|b| match (&site.registry, &credentials) {
                (Some(r), Some(c)) => b.with_registry_auth(&r.host.value, c.clone()),
                _ => b,
            })
            .map_err(Unavailable::from);
        docker.insert(ep.name.value.clone(), backend);
    }
    let kube = match (
        &site.backends.kubernetes,
        berth_core::desired::kube::Settings::from_site(&site),
    ) {
        (Some(k), Some(settings)) => {
            let client = kube_config(k.kubeconfig.as_deref(), k.context.as_deref())
                .await
                .and_then(|c| kube::Client::try_from(c).map_err(ClusterConfigError::from))
                .map(crate::backend::kube_apply::KubeBackend::new)
                .map_err(Unavailable::from);
            Some(KubeCluster {
                settings,
                backend: client,
            })
        }
        _ => None,
    };
    Ok(Context {
        site,
        kube,
        store,
        source,
        directory,
        docker,
        reservations: Default::default(),
        mirrors,
        gitlab,
        registry: site_registry,
        registry_keys,
        builds_enabled: Default::default(),
        // A watcher that falls this far behind skips steps, never a build.
        build_events: tokio::sync::broadcast::channel(256).0,
    })
}

/// The site's kubeconfig file and context, else the usual inference
/// (in-cluster, then `KUBECONFIG` / `~/.kube/config`).
pub async fn kube_config(
    path: Option<&str>,
    context: Option<&str>,
) -> Result<kube::Config, ClusterConfigError> {
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    Ok(match path {
        Some(p) => {
            let file = kube::config::Kubeconfig::read_from(p)?;
            kube::Config::from_custom_kubeconfig(file, &options).await?
        }
        None if context.is_some() => kube::Config::from_kubeconfig(&options).await?,
        None => kube::Config::infer().await?,
    })
}
