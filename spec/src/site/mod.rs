//! Types and validation of `site.yaml`, the admin's file: GitLab, LDAP,
//! backends, policy (registries, per-group quotas), repository source,
//! resync interval and state directory (the console's and logins' settings
//! in `console.rs`, what accounts may use in `policy.rs`, the department
//! registry in `registry.rs`, the directory in `ldap.rs`). Secrets are
//! never in the file, only the names of environment variables that hold
//! them.

use crate::located::Located;
use crate::quantity::Memory;
use crate::workspace::Backend;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

mod access;
mod check;
mod console;
mod dormancy;
mod gpus;
mod ldap;
mod notify;
mod policy;
mod registry;

pub use access::Access;
pub use check::{
    apps_on_console_host, duration_or, millis_or, parse_duration, secs_or, validate, warnings,
};
pub use console::{Console, Login};
pub use dormancy::Dormancy;
pub use gpus::{
    DEFAULT_GRANT, GpuCard, GpuPolicy, LONGEST_GRANT_SECS, Lendable, MigInstance, UNNAMED_MODEL,
    lendable,
};
pub use ldap::{Disabled, GroupLookup, Ldap};
pub use notify::{CHAT_CATEGORIES, Chat, Notify, Smtp, SmtpSecurity};
pub use policy::{
    BudgetPeriod, Builds, DefaultResources, Idle, OverBudget, Policy, Quota, Storage, Usage,
};
pub use registry::{Registry, RegistryToken, personal_lifetimes};

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Berth site.yaml")]
pub struct Site {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitlab: Option<GitLab>,
    pub ldap: Ldap,
    pub backends: Backends,
    pub policy: Policy,
    /// The department registry in which each account owns `<registry>/<account>/…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<Registry>,
    pub repositories: Repositories,
    /// How often every account is reconciled even without a push, e.g. `5m`.
    #[serde(default = "default_resync")]
    pub resync_interval: Located<String>,
    /// Where the state store and caches live.
    pub state_dir: Located<String>,
    /// Environment variable holding the admin API token: sent as
    /// `Authorization: Bearer <token>`, it unlocks the admin HTTP endpoints
    /// (the full image catalogue, and later the accounts API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token_env: Option<Located<String>>,
    /// Reverse proxies in front of `serve` (addresses or CIDR ranges): only
    /// from these is `X-Forwarded-For` believed for the client's address,
    /// which login throttling counts by. Behind a proxy that is not listed,
    /// every client shares the proxy's address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<Located<String>>,
    /// Where students reach Berth, e.g. `https://berth.example`: the
    /// registry token realm is `<public_url>/registry/token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<Located<String>>,
    /// Logins with the department account (console, registry).
    #[serde(default)]
    pub login: Login,
    /// The student console `serve` offers under `/`.
    #[serde(default)]
    pub console: Console,
    /// Mail to students (see `docs/admin/notifications.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Notify>,
    /// Archiving dormant workspaces' volumes (see
    /// `docs/admin/dormancy.md`); off when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dormancy: Option<Dormancy>,
    /// Which groups students may let into their containers (see
    /// `docs/admin/access.md`); no grants when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
}

fn default_resync() -> Located<String> {
    Located::new("5m".to_string())
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GitLab {
    /// API base, e.g. `https://gitlab.example`. Without it (and a token)
    /// Berth still takes webhooks but posts no commit statuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Located<String>>,
    /// Environment variable holding the API token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<Located<String>>,
    /// Environment variable holding the webhook secret. Without it `serve`
    /// takes no webhook (every delivery is refused): for a site GitLab
    /// cannot reach, which notices pushes with `repositories.gitlab.poll`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_env: Option<Located<String>>,
    /// Image of the per-account runner container.
    #[serde(default = "default_runner_image")]
    pub runner_image: String,
    /// GitLab's name of the LDAP provider whose `identities` entry binds a
    /// GitLab user to a directory DN (`ldapmain` unless GitLab's
    /// `gitlab.yml` names it otherwise). Used when `token_env` is set.
    #[serde(default = "default_ldap_provider")]
    pub ldap_provider: String,
}

fn default_ldap_provider() -> String {
    "ldapmain".to_string()
}

fn default_runner_image() -> String {
    "gitlab/gitlab-runner:alpine-v17.5.0".to_string()
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backends {
    /// Backend of containers that do not name one.
    #[serde(default = "default_backend")]
    pub default: Located<Backend>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub docker: Vec<DockerEndpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<Kubernetes>,
}

fn default_backend() -> Located<Backend> {
    Located::new(Backend::Docker)
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DockerEndpoint {
    pub name: Located<String>,
    /// `unix:///var/run/docker.sock`, `tcp://host:2376`, or `env` for DOCKER_HOST.
    pub endpoint: Located<String>,
    /// Address published ports bind to.
    #[serde(default = "default_bind")]
    pub bind_address: Located<String>,
    pub host_ports: Located<PortRange>,
    /// GPUs this host can hand out (device ids `0`..`gpus-1`).
    #[serde(default)]
    pub gpus: u32,
    /// Whether two accounts may be given the same GPU of this host.
    #[serde(default)]
    pub gpu_sharing: bool,
    /// The host's cards by id, with model and memory, and their MIG
    /// instances (instead of `gpus: N`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpu_cards: Vec<GpuCard>,
    /// The NVIDIA DCGM exporter's Prometheus endpoint on this host
    /// (`http://host:9400/metrics`): grants whose cards stay idle end
    /// early (`policy.gpus.idle_after`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_metrics: Option<Located<String>>,
    /// Client certificates for a `tcp://` endpoint (dockerd `--tlsverify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<DockerTls>,
    /// Memory this host offers accounts; an account whose containers ask
    /// for more is not placed here. No limit when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Located<Memory>>,
    /// The host name students reach published ports at (console links);
    /// default: `bind_address` unless it is a wildcard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_host: Option<String>,
    /// Allows `tcp://` without TLS: whoever reaches that port is root on
    /// the host, so only for a port reachable from this machine alone.
    #[serde(default)]
    pub insecure: bool,
    /// Students' home directories on this host, for containers with
    /// `home: true`. None: this host mounts no home directories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homes: Option<Homes>,
}

/// Where students' directories are on a Docker host and where they appear
/// in a container. `{account}` is the account's name.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Homes {
    /// On the host (and, for the ownership check, on Berth's machine at the
    /// same path, as NFS homes are), e.g. `/srv/home/{account}`.
    pub source: Located<String>,
    /// In the container.
    #[serde(default = "default_home_target")]
    pub target: Located<String>,
}

fn default_home_target() -> Located<String> {
    Located::new("/home/{account}".to_string())
}

/// PEM files that authenticate Berth to a dockerd and dockerd to Berth.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DockerTls {
    /// CA that signed the daemon's certificate.
    pub ca: String,
    /// Berth's client certificate and key.
    pub cert: String,
    pub key: String,
}

fn default_bind() -> Located<String> {
    Located::new("127.0.0.1".to_string())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Kubernetes {
    /// Kubeconfig file; in-cluster or `KUBECONFIG` when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Namespaces are `<prefix><account>`.
    #[serde(default = "default_ns_prefix")]
    pub namespace_prefix: Located<String>,
    /// Ingress hosts are `<account>-<name>.<domain>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_domain: Option<String>,
    /// Container ports served over HTTP get an Ingress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_ports: Vec<u16>,
    /// Lifetime of student tokens, e.g. `8h`.
    #[serde(default = "default_token_ttl")]
    pub token_lifetime: Located<String>,
    /// Namespace of the ingress controller: the only one outside a
    /// student's namespace whose pods may reach the student's pods.
    #[serde(default = "default_ingress_namespace")]
    pub ingress_namespace: String,
}

fn default_ingress_namespace() -> String {
    "ingress-nginx".to_string()
}

fn default_ns_prefix() -> Located<String> {
    Located::new("berth-".to_string())
}
fn default_token_ttl() -> Located<String> {
    Located::new("8h".to_string())
}

/// Exactly one source of repositories.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Repositories {
    /// Bare repositories on disk at `<root>/<account>/<repository>.git`;
    /// each account has one workspace repository.
    Local {
        root: String,
        #[serde(default = "default_repository")]
        repository: String,
    },
    /// Projects of these GitLab groups.
    Gitlab {
        groups: Vec<String>,
        /// Name of each account's workspace project (`<account>/<repository>`).
        #[serde(default = "default_repository")]
        repository: String,
        /// Clone URL template; `{path}` (the project's path, e.g.
        /// `students/alice/workspace`), `{account}` and `{repository}` are
        /// replaced. Defaults to `<gitlab url>/{path}.git`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clone_url: Option<String>,
        /// How often `serve` asks every known repository where its default
        /// branch points (`git ls-remote`, nothing fetched), e.g. `3m`, and
        /// reconciles what moved as a push by the user GitLab names for it.
        /// For a site GitLab's webhooks cannot reach; off when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        poll: Option<Located<String>>,
    },
}

impl Repositories {
    /// The site's name of every account's workspace repository.
    pub fn repository(&self) -> &str {
        match self {
            Repositories::Local { repository, .. } | Repositories::Gitlab { repository, .. } => {
                repository
            }
        }
    }

    /// The account a project path belongs to, or `None` when the path is
    /// no workspace of this site. The one rule for the webhook, discovery
    /// and mirrors: `<account>/<repository>`, or under a configured GitLab
    /// group `<group>/…/<account>/<repository>`, with the site's repository
    /// name and an account name Berth can manage. Anything else (another
    /// repository of the account, a project deeper in someone's namespace,
    /// a group the site does not list) is not a workspace at all.
    pub fn account_of<'p>(&self, path: &'p str) -> Option<&'p str> {
        let (namespace, name) = path.rsplit_once('/')?;
        if name != self.repository() {
            return None;
        }
        let (parents, account) = match namespace.rsplit_once('/') {
            Some((parents, account)) => (Some(parents), account),
            None => (None, namespace),
        };
        if crate::names::dns_label_problem(account, crate::names::MAX_ACCOUNT).is_some() {
            return None;
        }
        match (parents, self) {
            (None, _) => Some(account),
            (Some(parents), Repositories::Gitlab { groups, .. })
                if groups.iter().any(|g| {
                    let g = g.trim_matches('/');
                    parents == g || parents.starts_with(&format!("{g}/"))
                }) =>
            {
                Some(account)
            }
            _ => None,
        }
    }
}

fn default_repository() -> String {
    "workspace".to_string()
}

impl Site {
    /// How often `serve` polls GitLab for pushes, when it does.
    pub fn poll_interval(&self) -> Option<Duration> {
        match &self.repositories {
            Repositories::Gitlab {
                poll: Some(every), ..
            } => parse_duration(every).ok(),
            _ => None,
        }
    }

    pub fn resync_interval(&self) -> Duration {
        duration_or(&self.resync_interval, Duration::from_secs(300))
    }

    /// How often `serve` samples containers for usage accounting.
    pub fn usage_sample_every(&self) -> Duration {
        duration_or(&self.policy.usage.sample_every, Duration::from_secs(60))
    }

    /// How often `serve` measures the volumes' sizes.
    pub fn storage_measure_every(&self) -> Duration {
        duration_or(&self.policy.storage.measure_every, Duration::from_secs(900))
    }

    pub fn image_gc_after(&self) -> Duration {
        duration_or(&self.policy.image_gc_after, Duration::from_secs(7 * 86_400))
    }

    /// How long `account` (in `groups`) may leave a container idle before
    /// it is stopped: the most generous of its groups (a group without a
    /// limit means never), `None` when never or exempt.
    pub fn idle_stop_after(&self, account: &str, groups: &[String], gpu: bool) -> Option<Duration> {
        let idle = &self.policy.idle;
        if idle
            .exempt
            .iter()
            .any(|e| e == account || groups.contains(e))
        {
            return None;
        }
        let mut most: Option<Duration> = None;
        let mut any = false;
        for (group, q) in &self.policy.quotas {
            if !groups.contains(group) {
                continue;
            }
            any = true;
            let text = if gpu {
                q.gpu_idle_stop_after
                    .as_ref()
                    .or(q.idle_stop_after.as_ref())
            } else {
                q.idle_stop_after.as_ref()
            };
            let d = parse_duration(text?).ok()?;
            most = Some(most.map_or(d, |m| m.max(d)));
        }
        if any { most } else { None }
    }

    pub fn build_timeout(&self) -> Duration {
        duration_or(&self.policy.builds.timeout, Duration::from_secs(600))
    }

    pub fn ldap_cache_ttl(&self) -> Duration {
        duration_or(&self.ldap.cache_ttl, Duration::from_secs(60))
    }
}

#[cfg(test)]
mod tests;
