//! The reconcile [`Context`]: every client Berth works through, built
//! from a site file (the store, the git source and the directory opened,
//! every Docker endpoint and the Kubernetes cluster connected), and what
//! was [`Observed`] of the backends through it.
//! Configuration problems are errors here, before anything is touched.

use super::error::{ActionError, ReconcileError, Result};
use crate::backends::kube_apply::KubeBackend;
use crate::backends::{ClusterConfigError, DockerBackend, Unavailable};
use crate::inputs::gitlab::GitLab;
use crate::inputs::identity::Directory;
use crate::inputs::mirror::Mirrors;
use crate::inputs::source::LocalSource;
use crate::inputs::source::SourceError;
use crate::store::PortKey;
use crate::store::Store;
use berth_core::desired::kube::Settings as KubeSettings;
use berth_core::plan::{KubeObserved, ObservedAccount};
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
    GitLab(#[from] crate::inputs::gitlab::GitLabError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Identity(#[from] crate::inputs::identity::IdentityError),
    #[error(transparent)]
    Signer(#[from] crate::inputs::keys::SignerError),
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
    let registry_keys = crate::inputs::keys::Keys::load(&site)?.map(std::sync::Arc::new);
    let credentials = crate::inputs::registry::Credentials::from_site(&site, registry_keys.clone());
    let site_registry = site
        .registry
        .as_ref()
        .map(|r| crate::inputs::registry::Registry::from_site(r, credentials.clone()));
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
            .map(|b| std::sync::Arc::new(b) as crate::backends::Endpoint)
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
                .map(crate::backends::kube_apply::KubeBackend::new)
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

/// Clients and configuration shared by every reconcile. No globals.
pub struct Context {
    pub site: Site,
    pub store: Store,
    pub source: LocalSource,
    pub directory: Directory,
    /// Docker endpoints by name; an unreachable one keeps its error so only
    /// its accounts fail.
    pub docker: BTreeMap<String, std::result::Result<crate::backends::Endpoint, Unavailable>>,
    /// Placements and host ports handed out by evaluations not yet
    /// persisted, so accounts evaluated concurrently never get the same port.
    pub reservations: std::sync::Mutex<Reservations>,
    /// Local mirrors of GitLab repositories (GitLab mode only).
    pub mirrors: Option<crate::inputs::mirror::Mirrors>,
    /// The GitLab API, when the site configures URL and token.
    pub gitlab: Option<crate::inputs::gitlab::GitLab>,
    /// The department registry, when the site names one.
    pub registry: Option<crate::inputs::registry::Registry>,
    /// The registry token service's keys, when Berth serves its tokens.
    pub registry_keys: Option<std::sync::Arc<crate::inputs::keys::Keys>>,
    /// Whether evaluations build images (`apply`, `serve`) or only say
    /// which builds are pending (`diff`, `status`).
    pub builds_enabled: std::sync::atomic::AtomicBool,
    /// The Kubernetes cluster, when the site has one.
    pub kube: Option<KubeCluster>,
    /// Image builds as they start, step and end (see
    /// [`BuildEvent`]).
    pub build_events: tokio::sync::broadcast::Sender<BuildEvent>,
}

/// The site's cluster: its settings, and a client or why there is none
/// (only accounts with Kubernetes containers fail then).
pub struct KubeCluster {
    pub settings: KubeSettings,
    pub backend: std::result::Result<KubeBackend, Unavailable>,
}

#[derive(Clone, Debug, Default)]
pub struct Reservations {
    pub(crate) placements: BTreeMap<String, String>,
    pub(crate) ports: BTreeMap<String, BTreeMap<PortKey, u16>>,
}

impl Context {
    /// Lets evaluations build images (see [`Context::builds_enabled`]).
    pub fn enable_builds(&self) {
        self.builds_enabled
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn run_builds(&self) -> bool {
        self.builds_enabled
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The dockerd client of `endpoint`, when it is reachable (and real).
    pub(crate) fn dockerd(&self, endpoint: &str) -> Option<&DockerBackend> {
        self.docker.get(endpoint)?.as_ref().ok()?.docker()
    }

    pub(crate) fn backend(&self, endpoint: &str) -> Result<&crate::backends::Endpoint> {
        match self.docker.get(endpoint) {
            Some(Ok(b)) => Ok(b),
            Some(Err(reason)) => Err(ReconcileError::EndpointDown {
                endpoint: endpoint.into(),
                reason: reason.clone(),
            }),
            None => Err(ReconcileError::NoEndpoint(endpoint.into())),
        }
    }

    pub(crate) fn kube_backend(&self) -> std::result::Result<&KubeBackend, ActionError> {
        match &self.kube {
            Some(k) => k
                .backend
                .as_ref()
                .map_err(|e| ActionError::Unavailable(e.clone())),
            None => Err(ActionError::NoCluster),
        }
    }

    /// Observes every reachable endpoint once: endpoint → account → objects.
    pub async fn observe_all(&self) -> Observed {
        self.observe(None).await
    }

    /// Observes one account's objects on every endpoint (cheap: filtered
    /// by label on the daemon).
    pub async fn observe_account(&self, account: &str) -> Observed {
        self.observe(Some(account)).await
    }

    async fn observe(&self, account: Option<&str>) -> Observed {
        let mut docker = BTreeMap::new();
        for (name, backend) in &self.docker {
            let observed = match backend {
                Ok(b) => b.observe(account).await.map_err(Unavailable::from),
                Err(e) => Err(e.clone()),
            };
            docker.insert(name.clone(), observed);
        }
        let kube = match &self.kube {
            Some(k) => Some(match &k.backend {
                Ok(b) => b
                    .observe(&k.settings.namespace_prefix, account)
                    .await
                    .map_err(Unavailable::from),
                Err(e) => Err(e.clone()),
            }),
            None => None,
        };
        Observed { docker, kube }
    }

    pub(crate) async fn read_source<T: Send + 'static>(
        &self,
        f: impl FnOnce(&LocalSource) -> std::result::Result<T, SourceError> + Send + 'static,
    ) -> Result<T> {
        let source = self.source.clone();
        Ok(tokio::task::spawn_blocking(move || f(&source))
            .await
            .map_err(|e| ReconcileError::Join(e.to_string()))??)
    }
}

/// Observed state of every backend, by account. An unreachable backend
/// keeps its error so that only the accounts using it fail.
#[derive(Debug, Default)]
pub struct Observed {
    /// By Docker endpoint, then by account.
    pub docker: BTreeMap<String, Result<BTreeMap<String, ObservedAccount>, Unavailable>>,
    /// By account; `None` when the site has no cluster.
    pub kube: Option<Result<BTreeMap<String, KubeObserved>, Unavailable>>,
}

impl Observed {
    /// The data volumes of `account` on every Docker host that answered.
    pub fn volumes_of(&self, account: &str) -> Vec<String> {
        self.docker
            .values()
            .filter_map(|seen| seen.as_ref().ok()?.get(account))
            .flat_map(|o| o.volumes.iter().cloned())
            .collect()
    }

    /// What was observed of `account` alone (and every backend's
    /// reachability): what one account's plan needs, without a copy of
    /// every other account's objects.
    pub fn only(&self, account: &str) -> Observed {
        fn mine<T: Clone>(
            seen: &std::result::Result<BTreeMap<String, T>, Unavailable>,
            account: &str,
        ) -> std::result::Result<BTreeMap<String, T>, Unavailable> {
            seen.as_ref()
                .map(|m| {
                    m.get(account)
                        .map(|v| (account.to_string(), v.clone()))
                        .into_iter()
                        .collect()
                })
                .map_err(Clone::clone)
        }
        Observed {
            docker: self
                .docker
                .iter()
                .map(|(endpoint, seen)| (endpoint.clone(), mine(seen, account)))
                .collect(),
            kube: self.kube.as_ref().map(|seen| mine(seen, account)),
        }
    }
}

/// What a build is doing, told as it happens to whoever watches
/// ([`Context::build_events`]; `apply`'s live view). Nobody listening is
/// fine: the builds never wait for a watcher.
#[derive(Clone, Debug, PartialEq)]
pub enum BuildEvent {
    Started {
        account: String,
        image: String,
    },
    /// A Dockerfile step began (`Step 2/4 : RUN make`).
    Step {
        account: String,
        image: String,
        step: String,
    },
    /// The build ended: built and pushed, or why not.
    Finished {
        account: String,
        image: String,
        outcome: Result<(), String>,
        seconds: f64,
    },
}

#[cfg(test)]
impl Context {
    /// A context for in-process tests: `site` with local repositories under
    /// `repos`, an in-memory store, the given directory and Docker
    /// endpoints (fakes), and no GitLab, registry or cluster.
    pub(crate) fn for_tests(
        mut site: Site,
        repos: &Path,
        directory: Directory,
        docker: BTreeMap<String, crate::backends::Endpoint>,
    ) -> Context {
        site.repositories = Repositories::Local {
            root: repos.display().to_string(),
            repository: "workspace".into(),
        };
        site.registry = None;
        site.backends.kubernetes = None;
        Context {
            store: Store::in_memory().expect("an in-memory store"),
            source: LocalSource::new(repos, "workspace"),
            directory,
            docker: docker.into_iter().map(|(k, v)| (k, Ok(v))).collect(),
            reservations: Default::default(),
            mirrors: None,
            gitlab: None,
            registry: None,
            registry_keys: None,
            builds_enabled: std::sync::atomic::AtomicBool::new(false),
            kube: None,
            build_events: tokio::sync::broadcast::channel(16).0,
            site,
        }
    }
}
