//! Types of `workspace.yaml`, the student's file (version 1). Parsing rules
//! live in `load`, structural checks in `validate`, site rules in `policy`.

use crate::located::Located;
use crate::quantity::Memory;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The versions of `workspace.yaml` this build understands.
pub const SUPPORTED_VERSIONS: &[u64] = &[1];

/// A student's workspace: the containers, CI runner and image shares that
/// Berth converges for the account owning the repository.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Berth workspace.yaml")]
pub struct Workspace {
    /// Format version; only `1` exists.
    #[schemars(range(min = 1, max = 1))]
    pub version: Located<u64>,
    /// Containers to run; each becomes `<account>-<name>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<Container>,
    /// A GitLab CI runner registered for this account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<Runner>,
    /// Images this account publishes to others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Images>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Docker,
    Kubernetes,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Docker => "docker",
            Backend::Kubernetes => "kubernetes",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
    Running,
    Stopped,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Container {
    /// DNS label of at most 30 characters; the real name is `<account>-<name>`.
    #[schemars(
        length(min = 1, max = 30),
        regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    )]
    pub name: Located<String>,
    /// An image from an allowed registry, an own image, or one shared with you.
    pub image: Located<String>,
    /// Where it runs; the site's default when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Located<Backend>>,
    /// Replaces the image's command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Located<Vec<String>>>,
    /// Environment variables (numbers and booleans are taken as their text).
    #[schemars(extend("additionalProperties" = {"type": ["string", "number", "boolean"]}))]
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, Located<String>>,
    /// Container ports to publish; host ports are allocated and shown in status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Located<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Persistent per-account volumes; never deleted when a container is removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// `running` (default) or `stopped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Located<State>>,
    /// Mount your department home directory (where the site's Docker host
    /// keeps it) and run as your own uid and gid from the directory.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub home: bool,
    /// A long quiet job: the idle culler leaves the container running
    /// until then (`2026-12-10`, to the end of that day UTC, or
    /// `2026-12-10T18:00:00Z`), at most the site's `policy.idle.keep_max`
    /// from the push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_until: Option<Located<String>>,
    /// Let a TA (an account or a group the site lets you grant) read the
    /// logs of, open a terminal in, or use the files of this Docker
    /// container until a date.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<Access>,
}

/// One grant of access to a container: to `account` or to the members of
/// `group` (one of the two), for what `allow` says, until `until`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Access {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Located<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Located<String>>,
    /// `logs`, `terminal`, `files`.
    pub allow: Vec<Located<Allow>>,
    /// `2026-12-20` (to the end of that day, UTC) or an instant
    /// `2026-12-20T18:00:00Z`; at most the site's `access.max` from the push.
    pub until: Located<String>,
}

/// What a grant lets its grantee do with a container.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Allow {
    Logs,
    Terminal,
    Files,
}

impl Allow {
    pub fn as_str(self) -> &'static str {
        match self {
            Allow::Logs => "logs",
            Allow::Terminal => "terminal",
            Allow::Files => "files",
        }
    }
}

impl Container {
    pub fn state(&self) -> State {
        self.state.as_ref().map(|s| s.value).unwrap_or_default()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU cores (fractions allowed); the site's default when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Located<f64>>,
    /// Memory limit; the site's default when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Located<Memory>>,
    /// Number of GPUs, if the site grants them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<Located<u32>>,
    /// Only cards of this model (as the site lists them, e.g. `A100`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_model: Option<Located<String>>,
    /// How long the GPUs are wanted at a time, e.g. `2h` (at most the
    /// group's `gpu_time_max`; the group's `gpu_time` when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_time: Option<Located<String>>,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// Volume name, a DNS label; the real volume is `berth-<account>-<name>`.
    pub name: Located<String>,
    /// Absolute mount path inside the container.
    pub path: Located<String>,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Runner {
    /// Register and run a GitLab runner for this account.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Runner tags jobs can select.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Located<String>>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Images {
    /// Own images published to every account of the site.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub share: Vec<Share>,
    /// Images Berth builds from this repository and pushes to
    /// `<registry>/<account>/<name>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build: Vec<Build>,
}

/// An image built from a Dockerfile of the repository.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// Repository name under the account's namespace: `tools` becomes
    /// `<registry>/<account>/tools`.
    pub name: Located<String>,
    /// Directory of the repository sent as the build context (default: the
    /// repository's root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Located<String>>,
    /// The Dockerfile, relative to the context.
    #[serde(default = "default_dockerfile")]
    pub dockerfile: Located<String>,
    /// Build arguments (`ARG`); nothing secret: they stay in the image.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub args: std::collections::BTreeMap<String, String>,
    /// Tags pushed besides the revision's short sha (default: `latest`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Located<String>>,
}

fn default_dockerfile() -> Located<String> {
    Located::new("Dockerfile".to_string())
}

impl Build {
    /// The tags pushed: the declared ones (or `latest`), then the short sha.
    pub fn tags_for(&self, revision: &str) -> Vec<String> {
        let mut tags: Vec<String> = if self.tags.is_empty() {
            vec!["latest".to_string()]
        } else {
            self.tags.iter().map(|t| t.value.clone()).collect()
        };
        tags.push(revision.chars().take(12).collect());
        tags
    }

    /// The context directory, `""` for the repository's root.
    pub fn context_dir(&self) -> &str {
        self.context
            .as_ref()
            .map(|c| c.value.trim_matches('/'))
            .filter(|c| *c != ".")
            .unwrap_or("")
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Share {
    /// An image in your own namespace of the department registry.
    pub image: Located<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}
