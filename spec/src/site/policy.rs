//! The `policy:` section of `site.yaml`: what accounts may use: the
//! registries they may pull from, default resources, per-group quotas,
//! the idle culler's thresholds and the limits of image builds.

use crate::located::Located;
use crate::quantity::Memory;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Registries any account may pull from, e.g. `docker.io`.
    #[serde(default)]
    pub allowed_registries: Vec<Located<String>>,
    /// Resources of a container that declares none.
    #[serde(default)]
    pub default_resources: DefaultResources,
    /// Quota per LDAP group; an account gets the most generous of its groups.
    pub quotas: BTreeMap<String, Quota>,
    /// Images Berth pulled are removed by `gc` once no container uses them
    /// and no declared container has used them for this long.
    #[serde(default = "default_gc_after")]
    pub image_gc_after: Located<String>,
    /// Image builds (`images.build` in workspaces).
    #[serde(default)]
    pub builds: Builds,
    /// When a running container counts as idle (see the quotas'
    /// `idle_stop_after`).
    #[serde(default)]
    pub idle: Idle,
    /// How much of a container's output its Docker host keeps on disk.
    #[serde(default)]
    pub container_logs: ContainerLogs,
    /// How the volumes' sizes are measured (see the quotas' `storage`).
    #[serde(default)]
    pub storage: Storage,
    /// Usage accounting: how often containers are sampled, and which
    /// groups are courses in reports.
    #[serde(default)]
    pub usage: Usage,
    /// GPU lending: warnings, the shortest grant, idle give-back.
    #[serde(default)]
    pub gpus: super::GpuPolicy,
}

/// Usage accounting: `serve` samples every Berth container (runners
/// included) this often, and counts CPU, memory and GPUs used and
/// reserved per account (`reconciler usage`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// How often containers are sampled, e.g. `1m`.
    #[serde(default = "default_usage_every")]
    pub sample_every: Located<String>,
    /// LDAP groups that are courses: `reconciler usage --by course` sums
    /// their members' usage (an account in two courses counts in both).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub courses: Vec<String>,
    /// The share of a group's budget (percent) from which its students
    /// are told.
    #[serde(default = "default_warn_at")]
    pub budget_warn_at: f64,
}

impl Default for Usage {
    fn default() -> Self {
        Usage {
            sample_every: default_usage_every(),
            courses: vec![],
            budget_warn_at: default_warn_at(),
        }
    }
}

fn default_warn_at() -> f64 {
    80.0
}

fn default_usage_every() -> Located<String> {
    Located::new("1m".to_string())
}

/// Measuring students' Docker volumes: `serve` asks each Docker host for
/// its volumes' sizes (Docker's disk-usage walk) this often, one host at a
/// time, and stores what it says; quotas, the console and `reconciler
/// volumes` read the stored sizes.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// How often volumes are measured, e.g. `15m`.
    #[serde(default = "default_measure_every")]
    pub measure_every: Located<String>,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            measure_every: default_measure_every(),
        }
    }
}

fn default_measure_every() -> Located<String> {
    Located::new("15m".to_string())
}

/// Docker's `json-file` rotation for every container Berth creates: a
/// container that prints without end fills at most `max_size` times
/// `max_files` of the host's disk. Applied when a container is created
/// (existing ones keep theirs until they are next recreated).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerLogs {
    /// Size at which a container's log file is rotated.
    #[serde(default = "default_log_max_size")]
    pub max_size: Located<Memory>,
    /// Rotated files kept (the oldest is removed).
    #[serde(default = "default_log_max_files")]
    pub max_files: u32,
}

impl Default for ContainerLogs {
    fn default() -> Self {
        ContainerLogs {
            max_size: default_log_max_size(),
            max_files: default_log_max_files(),
        }
    }
}

fn default_log_max_size() -> Located<Memory> {
    Located::new(Memory::new("10Mi"))
}
fn default_log_max_files() -> u32 {
    3
}

/// Idle culling: a container whose CPU and network use stay under these
/// thresholds for its group's `idle_stop_after` is stopped (not removed).
/// Docker's stats do not show GPU use: GPU containers are judged on CPU
/// and network too, with the group's `gpu_idle_stop_after`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Idle {
    /// How often running containers' stats are sampled.
    #[serde(default = "default_sample_every")]
    pub sample_every: Located<String>,
    /// CPU (in cores) under which a container is idle.
    #[serde(default = "default_cpu_below")]
    pub cpu_below: f64,
    /// Network traffic (bytes per second, in and out) under which a
    /// container is idle.
    #[serde(default = "default_network_below")]
    pub network_below: Located<Memory>,
    /// Groups or accounts never culled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exempt: Vec<String>,
    /// A container about to be culled is marked "will stop at T" (console,
    /// status, mail) this long before T; activity in between keeps it.
    #[serde(default = "default_warn_before")]
    pub warn_before: Located<String>,
    /// The furthest a container's `keep_until` may be from the push.
    #[serde(default = "default_keep_max")]
    pub keep_max: Located<String>,
}

impl Default for Idle {
    fn default() -> Self {
        Idle {
            sample_every: default_sample_every(),
            cpu_below: default_cpu_below(),
            network_below: default_network_below(),
            exempt: vec![],
            warn_before: default_warn_before(),
            keep_max: default_keep_max(),
        }
    }
}

fn default_warn_before() -> Located<String> {
    Located::new("30m".to_string())
}
fn default_keep_max() -> Located<String> {
    Located::new("7d".to_string())
}
fn default_sample_every() -> Located<String> {
    Located::new("5m".to_string())
}
fn default_cpu_below() -> f64 {
    0.02
}
fn default_network_below() -> Located<Memory> {
    Located::new(Memory::new("1Ki"))
}

/// Limits of the images Berth builds for students.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Builds {
    /// Longest a build may run, e.g. `10m`.
    #[serde(default = "default_build_timeout")]
    pub timeout: Located<String>,
    /// Largest build context (the tar of the repository's directory).
    #[serde(default = "default_max_context")]
    pub max_context: Located<Memory>,
    /// Most files, symlinks and directories a build context may hold:
    /// reading it from git stops there (a few tree objects can name
    /// millions of paths).
    #[serde(default = "default_max_context_files")]
    pub max_context_files: u32,
    /// Deepest a build context's directories may nest.
    #[serde(default = "default_max_context_depth")]
    pub max_context_depth: u32,
    /// Builds running at once on one Docker host.
    #[serde(default = "default_builds_per_host")]
    pub per_host: u32,
}

impl Default for Builds {
    fn default() -> Self {
        Builds {
            timeout: default_build_timeout(),
            max_context: default_max_context(),
            max_context_files: default_max_context_files(),
            max_context_depth: default_max_context_depth(),
            per_host: default_builds_per_host(),
        }
    }
}

fn default_build_timeout() -> Located<String> {
    Located::new("10m".to_string())
}
fn default_max_context() -> Located<Memory> {
    Located::new(Memory::new("50Mi"))
}
fn default_max_context_files() -> u32 {
    20_000
}
fn default_max_context_depth() -> u32 {
    64
}
fn default_builds_per_host() -> u32 {
    2
}

fn default_gc_after() -> Located<String> {
    Located::new("7d".to_string())
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultResources {
    pub cpus: f64,
    pub memory: Located<Memory>,
}

impl Default for DefaultResources {
    fn default() -> Self {
        DefaultResources {
            cpus: 1.0,
            memory: Located::new(Memory::new("512Mi")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub containers: u32,
    pub cpus: f64,
    pub memory: Located<Memory>,
    #[serde(default)]
    pub gpus: u32,
    /// Storage the account's images may take in its registry namespace
    /// (sum of their compressed sizes); no limit when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<Located<Memory>>,
    /// Storage the account's Docker volumes may hold (as last measured,
    /// see `policy.storage`); a revision adding a volume while over it is
    /// refused. No limit when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Located<Memory>>,
    /// Stop a container idle for this long (see `policy.idle`); never
    /// when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_stop_after: Option<Located<String>>,
    /// The same for containers with GPUs (default: `idle_stop_after`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_idle_stop_after: Option<Located<String>>,
    /// CPU-hours the group's members may hold together (reserved: declared
    /// CPUs × time running) per `budget_period`; no budget when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_hours: Option<f64>,
    /// GPU-hours the group's members may hold together per `budget_period`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_hours: Option<f64>,
    /// How long GPUs are lent to a container that does not say
    /// (`resources.gpu_time`); default 4h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_time: Option<Located<String>>,
    /// The longest grant a container may ask for; default `gpu_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_time_max: Option<Located<String>>,
    /// Cards the group's containers may hold at once; no cap when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus_at_once: Option<u32>,
    /// `week` (from Monday 00:00 UTC) or `month` (from the 1st).
    #[serde(default)]
    pub budget_period: BudgetPeriod,
    /// Past the budget: `warn` (students are told) or `refuse` (also no
    /// revision that adds CPUs or GPUs, and no start from the console).
    #[serde(default)]
    pub over_budget: OverBudget,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPeriod {
    #[default]
    Week,
    Month,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OverBudget {
    #[default]
    Warn,
    Refuse,
}

impl Quota {
    pub fn registry_bytes(&self) -> Option<u64> {
        self.registry.as_ref().and_then(|m| m.bytes().ok())
    }

    pub fn storage_bytes(&self) -> Option<u64> {
        self.storage.as_ref().and_then(|m| m.bytes().ok())
    }
}
