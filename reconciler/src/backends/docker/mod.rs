//! The Docker backend (bollard): observes Berth-labelled containers,
//! networks and volumes on one dockerd, and executes plan actions there.
//! The only module that mutates Docker. Works against API 1.41 (Debian's
//! dockerd 20.10) and newer: the version is negotiated on connect, and GPU
//! device requests (API ≥ 1.40) are refused on older daemons.

use berth_core::desired::{DesiredContainer, LABEL_HOME, LABEL_OWNER};
use berth_core::plan::Action;
use berth_spec::State;
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

mod archive;
mod body;
mod build;
mod console;
mod images;
mod stats;
mod usage;
mod volumes;

pub use archive::{available, part_of};
pub use build::BuildJob;
pub use console::{ByteStream, Owned, Purpose};
pub use images::Exported;
pub(crate) use images::split_tag;
pub use stats::{STATS_AT_ONCE, Usage};
pub use volumes::Deletion;
mod observe;

/// Where an unreachable endpoint was looked for: the address (`DOCKER_HOST`'s
/// value for `env`) and the site setting it came from.
#[derive(Clone, Debug)]
pub struct Looked {
    pub address: String,
    pub setting: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "docker endpoint `{endpoint}` at {} unreachable: {}; is dockerd running there? check {}",
        looked.address,
        crate::base::hint::cause(source),
        looked.setting
    )]
    Unreachable {
        endpoint: String,
        looked: Box<Looked>,
        #[source]
        source: BollardError,
    },
    #[error("docker {op} {target}: {source}")]
    Api {
        op: &'static str,
        target: String,
        #[source]
        source: BollardError,
    },
    #[error("a container named {0} exists that Berth did not create; rename or remove it by hand")]
    NameTaken(String),
    #[error("volume `{0}` binds a home directory; it is never mounted as a data volume")]
    HomeVolume(String),
    #[error("{kind} `{name}` exists and belongs to {owner}, not to this account; left alone")]
    NotOwned {
        kind: &'static str,
        name: String,
        owner: String,
    },
    #[error("dockerd API {0} is too old for GPUs (needs 1.40)")]
    NoGpuSupport(String),
    #[error("pulling {image}: {message}")]
    Pull { image: String, message: String },
    #[error("packing files for {name}: {message}")]
    Upload { name: String, message: String },
    #[error("docker's answer to {what} is unusable: {message}")]
    Answer { what: String, message: String },
    #[error("archive of volume `{volume}`: {message}")]
    Archive { volume: String, message: String },
}

pub type Result<T, E = DockerError> = std::result::Result<T, E>;

/// One dockerd.
#[derive(Clone)]
pub struct DockerBackend {
    pub name: String,
    docker: Docker,
    api_version: String,
    /// Pulls in progress, so many accounts needing one image at once cause
    /// one pull on this host.
    pulls: Arc<std::sync::Mutex<HashMap<String, Arc<PullOnce>>>>,
    /// Images pulled since the last [`DockerBackend::take_pulled`].
    pulled: Arc<std::sync::Mutex<Vec<String>>>,
    /// The department registry's host and Berth's credentials there.
    registry_auth: Option<(String, crate::inputs::registry::Credentials)>,
    /// Image builds allowed to run at once on this host.
    build_slots: Arc<tokio::sync::Semaphore>,
    /// `json-file` rotation of the containers it creates: size in bytes,
    /// files kept.
    log_limits: (u64, u32),
}

/// Docker's own default is no rotation at all; Berth's, without a site.
const DEFAULT_LOG_LIMITS: (u64, u32) = (10 << 20, 3);

/// The outcome of one pull, shared by everyone waiting for it.
type PullOnce = tokio::sync::OnceCell<Result<(), String>>;

const STOP_TIMEOUT_SECS: i32 = 10;

/// The name a replacement container has until the old one is gone.
pub const TEMP_SUFFIX: &str = ".berth-next";

impl DockerBackend {
    /// Connects to the endpoint's address (`unix://…`, `tcp://…`, or `env`
    /// for DOCKER_HOST) and negotiates the API version.
    pub async fn connect(ep: &berth_spec::site::DockerEndpoint) -> Result<DockerBackend> {
        let (name, endpoint, tls) = (ep.name.as_str(), ep.endpoint.as_str(), ep.tls.as_ref());
        let address = match endpoint {
            "env" => match std::env::var("DOCKER_HOST") {
                Ok(host) if !host.is_empty() => format!("{host} (DOCKER_HOST)"),
                _ => "unix:///var/run/docker.sock (DOCKER_HOST unset)".to_string(),
            },
            other => other.to_string(),
        };
        let looked = Looked {
            address,
            setting: ep
                .endpoint
                .setting(&format!("backends.docker[{name}].endpoint")),
        };
        let unreachable = |source| DockerError::Unreachable {
            endpoint: name.to_string(),
            looked: Box::new(looked.clone()),
            source,
        };
        let docker = match tls {
            // dockerd `--tlsverify`: the daemon proves itself with the CA,
            // Berth with its client certificate.
            Some(t) => {
                crate::base::tls::install_provider();
                Docker::connect_with_ssl(
                    endpoint,
                    std::path::Path::new(&t.key),
                    std::path::Path::new(&t.cert),
                    std::path::Path::new(&t.ca),
                    120,
                    bollard::API_DEFAULT_VERSION,
                )
            }
            None if endpoint == "env" => Docker::connect_with_defaults(),
            None => Docker::connect_with_host(endpoint),
        }
        .map_err(unreachable)?
        .with_timeout(Duration::from_secs(120));
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        let api_version = docker.client_version().to_string();
        Ok(DockerBackend {
            name: name.to_string(),
            docker,
            api_version,
            pulls: Default::default(),
            pulled: Default::default(),
            registry_auth: None,
            build_slots: Arc::new(tokio::sync::Semaphore::new(2)),
            log_limits: DEFAULT_LOG_LIMITS,
        })
    }

    /// Containers it creates keep at most `files` log files of `size` bytes.
    pub fn with_log_limits(mut self, size: u64, files: u32) -> Self {
        self.log_limits = (size.max(1), files.max(1));
        self
    }

    /// At most `n` image builds at once on this host.
    pub fn with_build_slots(mut self, n: u32) -> Self {
        self.build_slots = Arc::new(tokio::sync::Semaphore::new(n.max(1) as usize));
        self
    }

    /// Pulls from (and pushes to) `host` use these credentials.
    pub fn with_registry_auth(
        mut self,
        host: &str,
        auth: crate::inputs::registry::Credentials,
    ) -> Self {
        self.registry_auth = Some((host.to_string(), auth));
        self
    }

    /// Berth's credentials for `image` if it lives in the department
    /// registry, for `actions` (`pull` or `pull,push`).
    pub(super) fn credentials_for(
        &self,
        image: &str,
        actions: &str,
    ) -> Option<bollard::auth::DockerCredentials> {
        let (host, auth) = self.registry_auth.as_ref()?;
        let rest = image.strip_prefix(host.as_str())?.strip_prefix('/')?;
        let repository = rest.split_once('@').map(|(r, _)| r).unwrap_or(rest);
        let repository = match repository.rsplit_once(':') {
            Some((r, tag)) if !tag.contains('/') => r,
            _ => repository,
        };
        Some(auth.docker(host, repository, actions))
    }

    fn api<'a>(op: &'static str, target: &'a str) -> impl Fn(BollardError) -> DockerError + 'a {
        move |source| DockerError::Api {
            op,
            target: target.to_string(),
            source,
        }
    }

    /// Executes one action for `account`.
    #[tracing::instrument(skip(self, action), fields(endpoint = %self.name, action = action.kind(), target = action.target()))]
    pub async fn execute(&self, account: &str, action: &Action) -> Result<()> {
        match action {
            Action::CreateNetwork { name } => {
                let req = NetworkCreateRequest {
                    name: name.clone(),
                    driver: Some("bridge".into()),
                    labels: Some(HashMap::from([(
                        LABEL_OWNER.to_string(),
                        account.to_string(),
                    )])),
                    ..Default::default()
                };
                match self.docker.create_network(req).await {
                    Ok(_) => Ok(()),
                    // Created concurrently or by a killed earlier run:
                    // converged, if it is this account's.
                    Err(BollardError::DockerResponseServerError {
                        status_code: 409, ..
                    }) => {
                        let found = self
                            .docker
                            .inspect_network(name, None)
                            .await
                            .map_err(Self::api("inspect network", name))?;
                        owned("network", name, found.labels.as_ref(), account)
                    }
                    Err(e) => Err(Self::api("create network", name)(e)),
                }
            }
            Action::CreateVolume { name } => {
                // Docker answers a create of an existing volume with that
                // volume: never mount one that is not this account's.
                if self.volume_owner_check(account, name).await? {
                    return Ok(());
                }
                self.create_owned_volume(account, name).await
            }
            Action::Create { container } => self.create(container).await,
            Action::Recreate { id, container, .. } => self.recreate(id, container).await,
            Action::Start { id, name } => self.start(id, name).await,
            Action::Stop { id, name } => self.stop_by_id(id, name).await,
            Action::Remove { id, name } => self.remove(id, name).await,
            // GitLab's and the cluster's business, not this daemon's.
            Action::RegisterRunner { .. }
            | Action::UnregisterRunner { .. }
            | Action::UpdateRunnerConfig { .. }
            | Action::KubeApply { .. }
            | Action::KubeDelete { .. } => Ok(()),
        }
    }

    /// `true` when volume `name` exists and is `account`'s, `false` when it
    /// does not exist; an error when it is someone else's.
    /// A home directory's volume is refused as well: it is never a data
    /// volume.
    pub(super) async fn volume_owner_check(&self, account: &str, name: &str) -> Result<bool> {
        match self.docker.inspect_volume(name).await {
            Ok(v) if v.labels.contains_key(LABEL_HOME) => {
                Err(DockerError::HomeVolume(name.to_string()))
            }
            Ok(v) => owned("volume", name, Some(&v.labels), account).map(|()| true),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(Self::api("inspect volume", name)(e)),
        }
    }

    /// Creates volume `name`, labelled as `account`'s.
    pub(super) async fn create_owned_volume(&self, account: &str, name: &str) -> Result<()> {
        let req = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(HashMap::from([(
                LABEL_OWNER.to_string(),
                account.to_string(),
            )])),
            ..Default::default()
        };
        self.docker
            .create_volume(req)
            .await
            .map(drop)
            .map_err(Self::api("create volume", name))
    }

    /// Puts `files` (absolute path → content, mode 0600) into a container,
    /// running or not.
    pub async fn upload(&self, id: &str, name: &str, files: &[(String, Vec<u8>)]) -> Result<()> {
        let tar = archive(files).map_err(|e| DockerError::Upload {
            name: name.to_string(),
            message: e.to_string(),
        })?;
        let opts = bollard::query_parameters::UploadToContainerOptionsBuilder::default()
            .path("/")
            .build();
        self.docker
            .upload_to_container(id, Some(opts), bollard::body_full(tar.into()))
            .await
            .map_err(Self::api("upload files into", name))
    }

    /// Stops a container (already stopped is fine), giving it
    /// `STOP_TIMEOUT_SECS` before it is killed.
    pub async fn stop_by_id(&self, id: &str, name: &str) -> Result<()> {
        let opts = StopContainerOptionsBuilder::default()
            .t(STOP_TIMEOUT_SECS)
            .build();
        match self.docker.stop_container(id, Some(opts)).await {
            Ok(())
            | Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(Self::api("stop", name)(e)),
        }
    }

    async fn start(&self, id: &str, name: &str) -> Result<()> {
        match self.docker.start_container(id, None).await {
            Ok(())
            | Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(Self::api("start", name)(e)),
        }
    }

    async fn remove(&self, id: &str, name: &str) -> Result<()> {
        // Never `v: true`: named volumes outlive containers by design.
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(false)
            .build();
        match self.docker.remove_container(id, Some(opts)).await {
            Ok(())
            | Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(Self::api("remove", name)(e)),
        }
    }

    async fn create(&self, d: &DesiredContainer) -> Result<()> {
        let id = self.create_stopped(d, &d.full_name).await?;
        if d.state == State::Running {
            self.start(&id, &d.full_name).await?;
        }
        Ok(())
    }

    /// Replaces container `old` with `d` for the least downtime: the
    /// replacement is created (image pulled, files put in) under a
    /// temporary name while the old one still runs; only then is the old
    /// one removed, the new one renamed and started. A crash in between
    /// leaves `<name>.berth-next`, which no desired container is named, so
    /// the next reconcile removes it and starts over.
    async fn recreate(&self, old: &str, d: &DesiredContainer) -> Result<()> {
        let temp = format!("{}{TEMP_SUFFIX}", d.full_name);
        self.remove(&temp, &temp).await?;
        let timer = std::time::Instant::now();
        let id = self.create_stopped(d, &temp).await?;
        let created = timer.elapsed();
        self.remove(old, &d.full_name).await?;
        let removed = timer.elapsed();
        let opts = bollard::query_parameters::RenameContainerOptionsBuilder::default()
            .name(&d.full_name)
            .build();
        self.docker
            .rename_container(&id, opts)
            .await
            .map_err(Self::api("rename", &temp))?;
        if d.state == State::Running {
            self.start(&id, &d.full_name).await?;
        }
        tracing::debug!(
            container = %d.full_name,
            create_ms = created.as_millis() as u64,
            remove_ms = (removed - created).as_millis() as u64,
            rename_start_ms = (timer.elapsed() - removed).as_millis() as u64,
            "recreated"
        );
        Ok(())
    }

    /// Creates `d` under `name` (pulling its image if this host lacks it)
    /// with its files in, not started; returns the id.
    async fn create_stopped(&self, d: &DesiredContainer, name: &str) -> Result<String> {
        let body = self.create_body(d)?;
        let opts = CreateContainerOptionsBuilder::default().name(name).build();
        let created = match self
            .docker
            .create_container(Some(opts.clone()), body.clone())
            .await
        {
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                self.pull(&d.spec.image).await?;
                self.docker.create_container(Some(opts), body).await
            }
            other => other,
        };
        let created = match created {
            Ok(c) => c,
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => {
                return Err(DockerError::NameTaken(d.full_name.clone()));
            }
            Err(e) => return Err(Self::api("create", &d.full_name)(e)),
        };
        if !d.uploads.is_empty() {
            self.upload(&created.id, &d.full_name, &d.uploads).await?;
        }
        Ok(created.id)
    }
}

/// Ok when `labels` say `account` owns the object, else why not.
fn owned(
    kind: &'static str,
    name: &str,
    labels: Option<&HashMap<String, String>>,
    account: &str,
) -> Result<()> {
    match labels.and_then(|l| l.get(LABEL_OWNER)) {
        Some(owner) if owner == account => Ok(()),
        Some(owner) => Err(DockerError::NotOwned {
            kind,
            name: name.to_string(),
            owner: format!("account `{owner}`"),
        }),
        None => Err(DockerError::NotOwned {
            kind,
            name: name.to_string(),
            owner: "nobody Berth knows (no berth.owner label)".to_string(),
        }),
    }
}

/// A tar archive of `files` (absolute path → content), mode 0600, owned
/// by root, with their parent directories.
fn archive(files: &[(String, Vec<u8>)]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let rel = path.trim_start_matches('/');
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, rel, content.as_slice())?;
    }
    builder.into_inner()
}

fn api_at_least(version: &str, major: u32, minor: u32) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (ma, mi) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (ma, mi) >= (major, minor)
}

#[cfg(test)]
mod tests;
