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
use crate::store::StoredRunner;
use berth_spec::{Backend, State};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

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
    /// From a site endpoint (`unix://…`, `tcp://…`, or `env`).
    pub fn from_endpoint(endpoint: &berth_spec::site::DockerEndpoint) -> DockerAccess {
        let resolved = if endpoint.endpoint.as_str() == "env" {
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
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

/// Per-container limits that keep the whole runner inside the quota:
/// `CONCURRENT` jobs, each a build container and up to `SERVICES_LIMIT`
/// services. Half a job's share goes to its build container, the other half
/// is split among its services, so `CONCURRENT × (job + SERVICES_LIMIT ×
/// service)` equals the quota.
pub fn limits(cpus: f64, memory: u64) -> ((f64, u64), (f64, u64)) {
    let jobs = f64::from(CONCURRENT);
    let job = (cpus / jobs / 2.0, memory / u64::from(CONCURRENT) / 2);
    let service = (
        job.0 / f64::from(SERVICES_LIMIT),
        job.1 / u64::from(SERVICES_LIMIT),
    );
    // dockerd refuses limits under 6 MiB; CPU shares below 0.01 round to 0.
    let floor = |(c, m): (f64, u64)| ((c * 100.0).floor().max(1.0) / 100.0, m.max(6 << 20));
    (floor(job), floor(service))
}

/// The image patterns (GitLab Runner's `allowed_images` / `allowed_services`
/// syntax) an account's jobs may use: the site's allowed registries, the
/// account's own namespace of the department registry, and the
/// repositories other accounts share with it, the same rules as
/// `image:` in `workspace.yaml`. Docker Hub images need their full name
/// (`docker.io/user/image`) except for official ones (`alpine:3.20`),
/// because a pattern cannot tell `user/image` from `host/image`.
pub fn allowed_images(
    site: &berth_spec::Site,
    account: &str,
    shared: &berth_spec::policy::Shared,
) -> Vec<String> {
    let mut out = Vec::new();
    for reg in &site.policy.allowed_registries {
        if reg.value == "docker.io" {
            out.push("*".to_string());
        }
        out.push(format!("{}/**", reg.value));
    }
    if let Some(reg) = &site.registry {
        out.push(format!("{}/{account}/**", reg.host.value));
    }
    for repo in shared {
        out.push(repo.clone());
        out.push(format!("{repo}:*"));
        out.push(format!("{repo}@*"));
    }
    out
}

/// Registration actions that take `stored` to `wanted` tags.
pub fn registration(
    wanted: Option<&[String]>,
    stored: Option<&StoredRunner>,
    project: Option<u64>,
) -> Result<Vec<Action>, String> {
    let register = |tags: &[String]| match project {
        Some(project) => Ok(Action::RegisterRunner {
            project,
            tags: tags.to_vec(),
        }),
        None => Err("the runner waits for the project id, learnt from the first push".to_string()),
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

/// GitLab Runner's `config.toml`, as much of it as Berth sets.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Config {
    pub concurrent: u32,
    pub check_interval: u32,
    pub shutdown_timeout: u32,
    pub runners: Vec<RunnerConfig>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct RunnerConfig {
    pub name: String,
    pub url: String,
    pub token: String,
    pub executor: String,
    pub limit: u32,
    pub docker: DockerConfig,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct DockerConfig {
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_verify: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert_path: Option<String>,
    pub image: String,
    pub privileged: bool,
    pub network_mode: String,
    pub cpus: String,
    pub memory: String,
    pub memory_swap: String,
    pub services_limit: u32,
    pub service_cpus: String,
    pub service_memory: String,
    pub security_opt: Vec<String>,
    pub cap_drop: Vec<String>,
    pub volumes: Vec<String>,
    pub pull_policy: Vec<String>,
    pub allowed_pull_policies: Vec<String>,
    pub allowed_images: Vec<String>,
    pub allowed_services: Vec<String>,
}

fn mib(bytes: u64) -> String {
    format!("{}m", (bytes >> 20).max(6))
}

/// The runner's config for `token`.
pub fn config(settings: &Settings, account: &str, token: &str) -> Config {
    let (host, tls_verify, tls_cert_path) = match &settings.docker {
        DockerAccess::Socket(_) => ("unix:///var/run/docker.sock".to_string(), None, None),
        DockerAccess::Tcp { url, tls_dir } => {
            (url.clone(), tls_dir.as_ref().map(|_| true), tls_dir.clone())
        }
    };
    let ((job_cpus, job_memory), (service_cpus, service_memory)) =
        limits(settings.quota_cpus, settings.quota_memory);
    // `always`: a copy cached on the host (pulled for another account) never
    // stands in for the right to use an image.
    let always = vec!["always".to_string()];
    Config {
        concurrent: CONCURRENT,
        check_interval: 3,
        shutdown_timeout: 30,
        runners: vec![RunnerConfig {
            name: format!("berth-{account}"),
            url: settings.gitlab_url.clone(),
            token: token.to_string(),
            executor: "docker".into(),
            limit: CONCURRENT,
            docker: DockerConfig {
                host,
                tls_verify,
                tls_cert_path,
                image: "alpine:3.20".into(),
                privileged: false,
                network_mode: network_name(account),
                cpus: job_cpus.to_string(),
                memory: mib(job_memory),
                // No swap beyond the memory limit.
                memory_swap: mib(job_memory),
                services_limit: SERVICES_LIMIT,
                service_cpus: service_cpus.to_string(),
                service_memory: mib(service_memory),
                security_opt: vec!["no-new-privileges:true".into()],
                cap_drop: vec!["NET_RAW".into()],
                volumes: vec!["/cache".into()],
                pull_policy: always.clone(),
                allowed_pull_policies: always,
                allowed_images: settings.allowed.clone(),
                allowed_services: settings.allowed.clone(),
            },
        }],
    }
}

/// The runner's `config.toml` for `token`.
pub fn config_toml(settings: &Settings, account: &str, token: &str) -> String {
    toml::to_string(&config(settings, account, token)).unwrap_or_default()
}

/// Hash of the config a runner container should hold (token left out).
/// When it differs from what was last written but the container's spec is
/// the same (only the allow-lists changed), the file is rewritten in the
/// running container, which GitLab Runner reloads without a restart.
pub fn config_hash(d: &DesiredContainer) -> String {
    let files: Vec<(&str, String)> = d
        .uploads
        .iter()
        .map(|(path, content)| (path.as_str(), String::from_utf8_lossy(content).into_owned()))
        .collect();
    crate::desired::short_hash(&files)
}

/// The runner container. Its config file is named by a hash of the config
/// without the token and without the allow-lists, so tags or limits
/// changing recreate it; a token rotation or a share added or removed does
/// not (the runner reloads a rewritten `config.toml` by itself).
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

/// A config template with the real token in place of the placeholder.
pub fn fill_token(template: &[u8], token: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(template);
    match toml::from_str::<Config>(&text) {
        Ok(mut config) => {
            for r in &mut config.runners {
                if r.token == TOKEN_PLACEHOLDER {
                    r.token = token.to_string();
                }
            }
            toml::to_string(&config).unwrap_or_default().into_bytes()
        }
        Err(_) => template.to_vec(),
    }
}

pub fn is_runner(d: &DesiredContainer) -> bool {
    d.name == RUNNER_NAME
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            gitlab_url: "https://gitlab.example".into(),
            image: "gitlab/gitlab-runner:alpine".into(),
            docker: DockerAccess::Socket("/run/docker.sock".into()),
            quota_cpus: 4.0,
            quota_memory: 4 << 30,
            allowed: vec!["*".into(), "docker.io/**".into()],
        }
    }

    #[test]
    fn config_confines_jobs_and_services_to_the_account() {
        let text = config_toml(&settings(), "alice", "glrt-abc\"x");
        let parsed: toml::Value = toml::from_str(&text).expect("valid TOML");
        let runner = &parsed["runners"][0];
        let d = &runner["docker"];
        let strings = |v: &toml::Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(parsed["concurrent"].as_integer(), Some(2));
        assert_eq!(runner["token"].as_str(), Some("glrt-abc\"x"));
        assert_eq!(runner["executor"].as_str(), Some("docker"));
        assert_eq!(runner["limit"].as_integer(), Some(2));
        assert_eq!(d["host"].as_str(), Some("unix:///var/run/docker.sock"));
        assert_eq!(d["privileged"].as_bool(), Some(false));
        assert_eq!(d["network_mode"].as_str(), Some("berth-alice"));
        // 2 jobs × (1 CPU + 2 services × 0.5 CPU) = the quota's 4 CPUs.
        assert_eq!(d["cpus"].as_str(), Some("1"));
        assert_eq!(d["memory"].as_str(), Some("1024m"));
        assert_eq!(d["memory_swap"].as_str(), Some("1024m"));
        assert_eq!(d["services_limit"].as_integer(), Some(2));
        assert_eq!(d["service_cpus"].as_str(), Some("0.5"));
        assert_eq!(d["service_memory"].as_str(), Some("512m"));
        assert_eq!(strings(&d["security_opt"]), ["no-new-privileges:true"]);
        assert_eq!(strings(&d["cap_drop"]), ["NET_RAW"]);
        assert_eq!(strings(&d["pull_policy"]), ["always"]);
        assert_eq!(strings(&d["allowed_pull_policies"]), ["always"]);
        assert_eq!(strings(&d["allowed_images"]), ["*", "docker.io/**"]);
        assert_eq!(strings(&d["allowed_services"]), ["*", "docker.io/**"]);
        assert!(d.get("tls_verify").is_none());
        // Every key Berth writes is one it means to: nothing else appears.
        let keys: Vec<&String> = d.as_table().expect("table").keys().collect();
        assert_eq!(keys.len(), 17, "{keys:?}");
    }

    #[test]
    fn the_whole_runner_stays_inside_the_quota() {
        for (cpus, memory) in [(4.0, 4u64 << 30), (1.0, 512 << 20), (16.0, 32 << 30)] {
            let ((jc, jm), (sc, sm)) = limits(cpus, memory);
            let jobs = f64::from(CONCURRENT);
            let services = f64::from(SERVICES_LIMIT);
            assert!(jobs * (jc + services * sc) <= cpus + 1e-9, "{cpus}");
            assert!(
                u64::from(CONCURRENT) * (jm + u64::from(SERVICES_LIMIT) * sm) <= memory,
                "{memory}"
            );
        }
    }

    #[test]
    fn allow_lists_follow_the_image_rules() {
        let site = crate::fixtures::example_site();
        let shared: berth_spec::policy::Shared = ["127.0.0.1:5000/bob/tools".to_string()].into();
        assert_eq!(
            allowed_images(&site, "alice", &shared),
            [
                "*",
                "docker.io/**",
                "127.0.0.1:5000/alice/**",
                "127.0.0.1:5000/bob/tools",
                "127.0.0.1:5000/bob/tools:*",
                "127.0.0.1:5000/bob/tools@*",
            ]
        );
    }

    #[test]
    fn a_tls_endpoint_hands_the_runner_its_certificates() {
        let s = Settings {
            docker: DockerAccess::Tcp {
                url: "tcp://10.0.0.5:2376".into(),
                tls_dir: Some(TLS_DIR.into()),
            },
            ..settings()
        };
        let parsed: toml::Value =
            toml::from_str(&config_toml(&s, "alice", "t")).expect("valid TOML");
        let d = &parsed["runners"][0]["docker"];
        assert_eq!(d["host"].as_str(), Some("tcp://10.0.0.5:2376"));
        assert_eq!(d["tls_verify"].as_bool(), Some(true));
        assert_eq!(d["tls_cert_path"].as_str(), Some(TLS_DIR));
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
