//! The per-account GitLab CI runner: registration decisions (pure), the
//! runner container's desired state, and its `config.toml` (typed, written
//! with `toml`). Jobs run with the docker executor on the account's
//! network, never privileged, at most two at a time, each with up to two
//! `services:`; every one of those containers is limited so that the whole
//! runner stays inside the account's quota. Jobs and services may only use
//! the images the account may use in `workspace.yaml`, always pulled (a
//! copy cached on the host never stands in for the right to use it). The
//! runner token exists only in the store and inside the runner's container.

use crate::desired::{ContainerSpec, DesiredContainer, network_name};
use crate::plan::Action;
use berth_spec::{Backend, State};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// A GitLab runner registered for an account. The token is a secret: it
/// never leaves the store except into the runner's own container.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredRunner {
    pub id: u64,
    pub token: String,
    pub tags: Vec<String>,
}

impl std::fmt::Debug for StoredRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredRunner")
            .field("id", &self.id)
            .field("tags", &self.tags)
            .finish_non_exhaustive()
    }
}

/// Where the config goes inside the runner container.
pub const CONFIG_PATH: &str = "/etc/gitlab-runner/config.toml";
/// The `berth.name` label of runner containers; the container itself is
/// `<account>.runner`, a name no workspace container can take (`.` is not
/// allowed in a DNS label).
pub const RUNNER_NAME: &str = ".runner";
/// Jobs at once per account.
pub const CONCURRENT: u32 = 2;
/// `services:` containers per job.
pub const SERVICES_LIMIT: u32 = 2;
const TOKEN_PLACEHOLDER: &str = "@@TOKEN@@";

mod config;

pub use config::{
    Config, DockerConfig, RunnerConfig, allowed_images, config, config_hash, config_toml,
    fill_token, limits,
};

pub fn container_name(account: &str) -> String {
    format!("{account}.runner")
}

/// What the runner needs to know about its site and account.
#[derive(Clone, Debug)]
pub struct Settings {
    pub gitlab_url: String,
    pub image: String,
    /// How job containers reach dockerd: a host socket path, or a tcp URL.
    pub docker: DockerAccess,
    /// The account's quota: all jobs and their services together stay in it.
    pub quota_cpus: f64,
    pub quota_memory: u64,
    /// Image patterns jobs and services may use (see [`allowed_images`]).
    pub allowed: Vec<String>,
    /// `NAME=value` of every job (the account's registry credential).
    pub environment: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DockerAccess {
    Socket(String),
    Tcp {
        url: String,
        /// Directory in the runner container holding `ca.pem`, `cert.pem`
        /// and `key.pem` for a TLS endpoint.
        tls_dir: Option<String>,
    },
}

/// Where a TLS endpoint's client certificates go in the runner container.
pub const TLS_DIR: &str = "/etc/gitlab-runner/docker-tls";

impl DockerAccess {
    /// From a site endpoint (`unix://…`, `tcp://…`, or `env`, which is
    /// `docker_host`: the reconciler's `DOCKER_HOST`, if set).
    pub fn from_endpoint(
        endpoint: &berth_spec::site::DockerEndpoint,
        docker_host: Option<&str>,
    ) -> DockerAccess {
        let resolved = if endpoint.endpoint.as_str() == "env" {
            docker_host
                .unwrap_or("unix:///var/run/docker.sock")
                .to_string()
        } else {
            endpoint.endpoint.value.clone()
        };
        match resolved.strip_prefix("unix://") {
            Some(path) => DockerAccess::Socket(path.to_string()),
            None => DockerAccess::Tcp {
                url: resolved,
                tls_dir: endpoint.tls.as_ref().map(|_| TLS_DIR.to_string()),
            },
        }
    }
}

/// Why a wanted runner cannot be registered yet (a warning, not an error).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationWaits {
    #[error("the runner waits for the project id, learnt from the first push")]
    NoProject,
}

/// Registration actions that take `stored` to `wanted` tags.
pub fn registration(
    wanted: Option<&[String]>,
    stored: Option<&StoredRunner>,
    project: Option<u64>,
) -> Result<Vec<Action>, RegistrationWaits> {
    let register = |tags: &[String]| match project {
        Some(project) => Ok(Action::RegisterRunner {
            project,
            tags: tags.to_vec(),
        }),
        None => Err(RegistrationWaits::NoProject),
    };
    match (wanted, stored) {
        (None, None) => Ok(vec![]),
        (None, Some(s)) => Ok(vec![Action::UnregisterRunner { id: s.id }]),
        (Some(tags), None) => Ok(vec![register(tags)?]),
        (Some(tags), Some(s)) if s.tags.as_slice() != tags => {
            Ok(vec![Action::UnregisterRunner { id: s.id }, register(tags)?])
        }
        (Some(_), Some(_)) => Ok(vec![]),
    }
}

/// The runner container. Its config file is named by a hash of the config
/// without the token, the allow-lists and the jobs' environment, so tags or
/// limits changing recreate it; a token or credential rotation or a share
/// added or removed does not (the runner reloads a rewritten `config.toml`
/// by itself).
pub fn desired(
    settings: &Settings,
    account: &str,
    workspace: &str,
    revision: &str,
    tags: &[String],
    disabled: bool,
) -> DesiredContainer {
    let template = config_toml(settings, account, TOKEN_PLACEHOLDER);
    let fixed = config_toml(
        &Settings {
            allowed: vec![],
            environment: vec![],
            ..settings.clone()
        },
        account,
        TOKEN_PLACEHOLDER,
    );
    let hash: String = Sha256::digest(format!("{fixed}\ntags={}", tags.join(",")).as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let spec = ContainerSpec {
        image: settings.image.clone(),
        command: None,
        env: BTreeMap::new(),
        ports: BTreeMap::new(),
        bind_address: String::new(),
        cpus: 0.5,
        memory: 256 << 20,
        gpus: 0,
        gpu_devices: vec![],
        volumes: BTreeMap::new(),
        network: network_name(account),
        docker_socket: match &settings.docker {
            DockerAccess::Socket(path) => Some(path.clone()),
            DockerAccess::Tcp { .. } => None,
        },
        files: BTreeMap::from([(CONFIG_PATH.to_string(), hash)]),
        home: None,
    };
    DesiredContainer {
        account: account.to_string(),
        name: RUNNER_NAME.to_string(),
        full_name: container_name(account),
        workspace: workspace.to_string(),
        revision: revision.to_string(),
        backend: Backend::Docker,
        state: if disabled {
            State::Stopped
        } else {
            State::Running
        },
        spec_hash: spec.hash(),
        spec,
        uploads: vec![(CONFIG_PATH.to_string(), template.into_bytes())],
    }
}

/// The runner container with the client certificates of a TLS endpoint
/// (`ca.pem`, `cert.pem`, `key.pem` under [`TLS_DIR`]), so its jobs reach
/// dockerd the way Berth does.
pub fn with_tls_files(mut d: DesiredContainer, files: [(&str, Vec<u8>); 3]) -> DesiredContainer {
    for (name, content) in files {
        let path = format!("{TLS_DIR}/{name}");
        let hash: String = Sha256::digest(&content)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        d.spec.files.insert(path.clone(), hash);
        d.uploads.push((path, content));
    }
    d.spec_hash = d.spec.hash();
    d
}

/// The container with the real token in its config, just before creation.
pub fn with_token(d: &DesiredContainer, token: &str) -> DesiredContainer {
    let mut d = d.clone();
    for (path, content) in &mut d.uploads {
        if path == CONFIG_PATH {
            *content = fill_token(content, token);
        }
    }
    d
}

pub fn is_runner(d: &DesiredContainer) -> bool {
    d.name == RUNNER_NAME
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn settings() -> Settings {
        Settings {
            gitlab_url: "https://gitlab.example".into(),
            image: "gitlab/gitlab-runner:alpine".into(),
            docker: DockerAccess::Socket("/run/docker.sock".into()),
            quota_cpus: 4.0,
            quota_memory: 4 << 30,
            allowed: vec!["*".into(), "docker.io/**".into()],
            environment: vec![],
        }
    }

    #[test]
    fn a_rotated_ci_credential_rewrites_the_config_but_keeps_the_container() {
        let tags = vec!["docker".to_string()];
        let with = |cred: &str| Settings {
            environment: vec![format!("DOCKER_AUTH_CONFIG={cred}")],
            ..settings()
        };
        let a = desired(&with("one"), "alice", "alice/workspace", "r1", &tags, false);
        let b = desired(&with("two"), "alice", "alice/workspace", "r1", &tags, false);
        assert_eq!(a.spec, b.spec, "the container is not recreated");
        assert_ne!(config_hash(&a), config_hash(&b), "the file is rewritten");
        let toml = config_toml(&with("one"), "alice", "t");
        assert!(
            toml.contains("environment = [\"DOCKER_AUTH_CONFIG=one\"]"),
            "{toml}"
        );
    }

    #[test]
    fn registration_follows_the_file() {
        let tags = vec!["docker".to_string()];
        let stored = StoredRunner {
            id: 5,
            token: "t".into(),
            tags: tags.clone(),
        };
        assert_eq!(
            registration(Some(&tags), None, Some(9)),
            Ok(vec![Action::RegisterRunner {
                project: 9,
                tags: tags.clone()
            }])
        );
        assert_eq!(
            registration(Some(&tags), Some(&stored), Some(9)),
            Ok(vec![])
        );
        assert_eq!(
            registration(None, Some(&stored), None),
            Ok(vec![Action::UnregisterRunner { id: 5 }])
        );
        let other = vec!["gpu".to_string()];
        assert_eq!(
            registration(Some(&other), Some(&stored), Some(9)),
            Ok(vec![
                Action::UnregisterRunner { id: 5 },
                Action::RegisterRunner {
                    project: 9,
                    tags: other
                }
            ])
        );
        assert!(registration(Some(&tags), None, None).is_err());
    }

    #[test]
    fn token_rotation_does_not_change_the_container_but_tags_do() {
        let a = desired(
            &settings(),
            "alice",
            "alice/workspace",
            "r",
            &["x".into()],
            false,
        );
        let b = desired(
            &settings(),
            "alice",
            "alice/workspace",
            "r2",
            &["x".into()],
            false,
        );
        let c = desired(
            &settings(),
            "alice",
            "alice/workspace",
            "r",
            &["y".into()],
            false,
        );
        assert_eq!(a.spec_hash, b.spec_hash);
        assert_ne!(a.spec_hash, c.spec_hash);
        // A share added or removed is rewritten in place, not recreated.
        let more = Settings {
            allowed: vec!["127.0.0.1:5000/bob/tools".into()],
            ..settings()
        };
        let d = desired(&more, "alice", "alice/workspace", "r", &["x".into()], false);
        assert_eq!(a.spec_hash, d.spec_hash);
        assert_ne!(config_hash(&a), config_hash(&d));
        assert_eq!(config_hash(&a), config_hash(&b));
        assert_eq!(a.full_name, "alice.runner");
        assert_eq!(a.spec.docker_socket.as_deref(), Some("/run/docker.sock"));
        let real = with_token(&a, "glrt-real");
        let text = String::from_utf8_lossy(&real.uploads[0].1).into_owned();
        assert!(
            text.contains("token = \"glrt-real\"") && !text.contains(TOKEN_PLACEHOLDER),
            "{text}"
        );
        assert!(
            String::from_utf8_lossy(&a.uploads[0].1).contains(TOKEN_PLACEHOLDER),
            "the plan never holds the token"
        );
    }
}
