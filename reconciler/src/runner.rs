//! The per-account GitLab CI runner: registration decisions (pure), the
//! runner container's desired state, and its `config.toml`. Jobs run with
//! the docker executor on the account's network, with the account's quota
//! as per-job limits, never privileged, at most two at a time. The runner
//! token exists only in the store and inside the runner's own container.

use crate::desired::{ContainerSpec, DesiredContainer, network_name};
use crate::plan::Action;
use crate::store::StoredRunner;
use berth_spec::{Backend, State};
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
    pub job_cpus: f64,
    pub job_memory: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DockerAccess {
    Socket(String),
    Tcp(String),
}

impl DockerAccess {
    /// From a site endpoint (`unix://…`, `tcp://…`, or `env`).
    pub fn from_endpoint(endpoint: &str) -> DockerAccess {
        let resolved = if endpoint == "env" {
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
        } else {
            endpoint.to_string()
        };
        match resolved.strip_prefix("unix://") {
            Some(path) => DockerAccess::Socket(path.to_string()),
            None => DockerAccess::Tcp(resolved),
        }
    }
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

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The runner's `config.toml` for `token`.
pub fn config_toml(settings: &Settings, account: &str, token: &str) -> String {
    let (host, _) = match &settings.docker {
        DockerAccess::Socket(_) => ("unix:///var/run/docker.sock".to_string(), ()),
        DockerAccess::Tcp(url) => (url.clone(), ()),
    };
    format!(
        "concurrent = {CONCURRENT}
check_interval = 3
shutdown_timeout = 30

[[runners]]
  name = {name}
  url = {url}
  token = {token}
  executor = \"docker\"
  limit = {CONCURRENT}
  [runners.docker]
    host = {host}
    image = \"alpine:3.20\"
    privileged = false
    network_mode = {network}
    cpus = {cpus}
    memory = {memory}
    security_opt = [\"no-new-privileges:true\"]
    cap_drop = [\"NET_RAW\"]
    volumes = [\"/cache\"]
    pull_policy = [\"if-not-present\"]
    allowed_pull_policies = [\"if-not-present\"]
",
        name = quote(&format!("berth-{account}")),
        url = quote(&settings.gitlab_url),
        token = quote(token),
        host = quote(&host),
        network = quote(&network_name(account)),
        cpus = quote(&format!("{}", settings.job_cpus)),
        memory = quote(&format!("{}m", (settings.job_memory >> 20).max(6))),
    )
}

/// The runner container. Its config file is named by a hash of the config
/// without the token, so tags or limits changing recreate it, a token
/// rotation alone does not.
pub fn desired(
    settings: &Settings,
    account: &str,
    workspace: &str,
    revision: &str,
    tags: &[String],
    disabled: bool,
) -> DesiredContainer {
    let template = config_toml(settings, account, TOKEN_PLACEHOLDER);
    let hash: String = Sha256::digest(format!("{template}\ntags={}", tags.join(",")).as_bytes())
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
        volumes: BTreeMap::new(),
        network: network_name(account),
        docker_socket: match &settings.docker {
            DockerAccess::Socket(path) => Some(path.clone()),
            DockerAccess::Tcp(_) => None,
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

/// The container with the real token in its config, just before creation.
pub fn with_token(d: &DesiredContainer, token: &str) -> DesiredContainer {
    let mut d = d.clone();
    for (_, content) in &mut d.uploads {
        let text =
            String::from_utf8_lossy(content).replace(&quote(TOKEN_PLACEHOLDER), &quote(token));
        *content = text.into_bytes();
    }
    d
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
            job_cpus: 2.0,
            job_memory: 4 << 30,
        }
    }

    #[test]
    fn config_confines_jobs_to_the_account() {
        let toml = config_toml(&settings(), "alice", "glrt-abc\"x");
        for line in [
            "concurrent = 2",
            "  token = \"glrt-abc\\\"x\"",
            "  executor = \"docker\"",
            "    host = \"unix:///var/run/docker.sock\"",
            "    privileged = false",
            "    network_mode = \"berth-alice\"",
            "    cpus = \"2\"",
            "    memory = \"4096m\"",
            "    security_opt = [\"no-new-privileges:true\"]",
        ] {
            assert!(
                toml.lines().any(|l| l == line),
                "missing {line:?} in\n{toml}"
            );
        }
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
        assert_eq!(a.full_name, "alice.runner");
        assert_eq!(a.spec.docker_socket.as_deref(), Some("/run/docker.sock"));
        let real = with_token(&a, "glrt-real");
        let text = String::from_utf8_lossy(&real.uploads[0].1).into_owned();
        assert!(
            text.contains("  token = \"glrt-real\"") && !text.contains(TOKEN_PLACEHOLDER),
            "{text}"
        );
        assert!(
            String::from_utf8_lossy(&a.uploads[0].1).contains(TOKEN_PLACEHOLDER),
            "the plan never holds the token"
        );
    }
}
