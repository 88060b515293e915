//! One account's reconcile: gather → decide → act.
//!
//! - [`gather`] reads git, LDAP, the store and GitLab (IO) into the inputs
//!   of the pure [`decide`], which says what happens to the head revision
//!   and whether the account may run; [`build`] turns the decided revision
//!   into an [`AccountPlan`] against observed backend state. Together they
//!   are [`evaluate`]: `diff` and `apply --dry-run`, changing nothing.
//! - [`execute`] records the decision and runs the plan's actions.
//!
//! A rejected revision changes nothing: the last accepted one keeps running.

mod build;
mod execute;
mod gather;
pub mod pins;

pub use berth_core::decide::RejectReason;
pub use execute::execute;
pub use gather::{accepted_workspace_of, evaluate, preview};

use crate::backend::kube_apply::KubeBackend;
use crate::backend::{DockerBackend, DockerError, KubeError, Unavailable};
use crate::identity::{Directory, IdentityError};
use crate::source::{LocalSource, SourceError};
use crate::store::{GpuKey, PortKey, Store, StoreError};
use berth_core::desired;
use berth_core::desired::kube::Settings as KubeSettings;
use berth_core::plan::{Action, KubeObserved, ObservedAccount};
use berth_spec::Site;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Ports(#[from] desired::PortsExhausted),
    #[error(transparent)]
    Gpus(#[from] berth_core::desired::gpus::GpusExhausted),
    #[error("no docker endpoint is available for account `{0}`")]
    NoEndpoint(String),
    #[error("docker endpoint `{endpoint}` is unavailable: {reason}")]
    EndpointDown {
        endpoint: String,
        reason: Unavailable,
    },
    #[error("accepted revision {0} can no longer be read from the repository")]
    LostRevision(String),
    #[error("internal: {0}")]
    Join(String),
    #[error(transparent)]
    Fetch(crate::mirror::FetchError),
    #[error(transparent)]
    GitLab(#[from] crate::gitlab::GitLabError),
    #[error("repositories from GitLab need the GitLab API (gitlab.url and gitlab.token_env)")]
    NoGitLab,
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error("kubernetes cluster is unavailable: {0}")]
    ClusterDown(Unavailable),
}

pub type Result<T, E = ReconcileError> = std::result::Result<T, E>;

/// Why one action failed; the account's other actions still run.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error(transparent)]
    GitLab(#[from] crate::gitlab::GitLabError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unavailable(Unavailable),
    #[error("no docker endpoint was chosen for this account")]
    NoEndpoint,
    #[error("not run: `{0}` could not be made this account's, so nothing mounts or joins it")]
    NotOurs(String),
    #[error("no runner is registered (registration failed?)")]
    NoRunner,
    #[error("the site has no GitLab API")]
    NoGitLab,
    #[error("the site has no Kubernetes cluster")]
    NoCluster,
}

impl ReconcileError {
    /// Whether the failure is of a dependency every account shares (LDAP,
    /// GitLab, the registry, the store), so that one account's success
    /// shows it is back for all.
    pub fn is_shared_dependency(&self) -> bool {
        matches!(
            self,
            ReconcileError::Identity(_)
                | ReconcileError::Store(_)
                | ReconcileError::GitLab(_)
                | ReconcileError::Registry(_)
        )
    }
}

/// Clients and configuration shared by every reconcile. No globals.
pub struct Context {
    pub site: Site,
    pub store: Store,
    pub source: LocalSource,
    pub directory: Directory,
    /// Docker endpoints by name; an unreachable one keeps its error so only
    /// its accounts fail.
    pub docker: BTreeMap<String, std::result::Result<DockerBackend, Unavailable>>,
    /// Placements and host ports handed out by evaluations not yet
    /// persisted, so accounts evaluated concurrently never get the same port.
    pub reservations: std::sync::Mutex<Reservations>,
    /// Local mirrors of GitLab repositories (GitLab mode only).
    pub mirrors: Option<crate::mirror::Mirrors>,
    /// The GitLab API, when the site configures URL and token.
    pub gitlab: Option<crate::gitlab::GitLab>,
    /// The department registry, when the site names one.
    pub registry: Option<crate::registry::Registry>,
    /// The registry token service's keys, when Berth serves its tokens.
    pub registry_keys: Option<std::sync::Arc<crate::token::Keys>>,
    /// Whether evaluations build images (`apply`, `serve`) or only say
    /// which builds are pending (`diff`, `status`).
    pub builds_enabled: std::sync::atomic::AtomicBool,
    /// The Kubernetes cluster, when the site has one.
    pub kube: Option<KubeCluster>,
    /// Image builds as they start, step and end (see
    /// [`BuildEvent`](crate::imagebuild::BuildEvent)).
    pub build_events: tokio::sync::broadcast::Sender<crate::imagebuild::BuildEvent>,
}

/// The site's cluster: its settings, and a client or why there is none
/// (only accounts with Kubernetes containers fail then).
pub struct KubeCluster {
    pub settings: KubeSettings,
    pub backend: std::result::Result<KubeBackend, Unavailable>,
}

#[derive(Clone, Debug, Default)]
pub struct Reservations {
    placements: BTreeMap<String, String>,
    ports: BTreeMap<String, BTreeMap<PortKey, u16>>,
    gpus: BTreeMap<String, BTreeMap<GpuKey, Vec<u32>>>,
}

/// What happens to the revision at the head of the repository.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// The head is the accepted revision.
    Unchanged,
    /// The head will be (or was) accepted.
    Accept { revision: String, commits: usize },
    /// The head is refused; the last accepted revision stays.
    Reject {
        revision: String,
        reason: RejectReason,
    },
    /// No repository or no commit yet: nothing is touched.
    NoRepository,
    /// The head has no `workspace.yaml` and no revision was ever accepted:
    /// the account is not managed (nothing is reported as failed).
    NoWorkspace,
    /// With GitLab configured, only an authenticated push introduces a
    /// revision; this head has not come with one (yet).
    AwaitingPush { revision: String },
}

/// Everything `execute` needs, computed without side effects.
#[derive(Clone, Debug, Serialize)]
pub struct AccountPlan {
    pub account: String,
    pub repository: Option<String>,
    pub endpoint: Option<String>,
    pub decision: Decision,
    /// The revision desired state comes from (after the decision).
    pub revision: Option<String>,
    pub disabled: bool,
    /// Why the account is stopped (unknown in the directory, disabled, in
    /// no allowed group); `None` while it may run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    pub actions: Vec<Action>,
    #[serde(skip)]
    pub ports: BTreeMap<PortKey, u16>,
    /// GPU ids given to the account's GPU containers on its host.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub gpus: BTreeMap<GpuKey, Vec<u32>>,
    /// Department-registry images of the revision, pinned: share key → digest.
    pub pins: BTreeMap<String, String>,
    /// What an accepted revision shares (share key → description).
    #[serde(skip)]
    pub shares: BTreeMap<String, String>,
    /// Names the accepted revision builds (`images.build`).
    pub builds: Vec<String>,
    /// Images of the desired containers (for image GC bookkeeping).
    #[serde(skip)]
    pub images: Vec<String>,
    /// The pushed project's id and path, recorded once the push is
    /// accepted (never from a push that was not).
    #[serde(skip)]
    pub project: Option<(u64, String)>,
    pub warnings: Vec<String>,
}

impl Decision {
    /// A short, bounded label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Unchanged => "unchanged",
            Decision::Accept { .. } => "accepted",
            Decision::Reject { .. } => "rejected",
            Decision::NoRepository => "no_repository",
            Decision::NoWorkspace => "no_workspace",
            Decision::AwaitingPush { .. } => "awaiting_push",
        }
    }
}

impl AccountPlan {
    /// A plan that changes nothing yet.
    pub fn new(account: &str, repository: Option<String>) -> AccountPlan {
        AccountPlan {
            account: account.into(),
            repository,
            endpoint: None,
            decision: Decision::NoRepository,
            revision: None,
            disabled: false,
            stopped: None,
            actions: vec![],
            ports: BTreeMap::new(),
            gpus: BTreeMap::new(),
            pins: BTreeMap::new(),
            shares: BTreeMap::new(),
            builds: vec![],
            images: vec![],
            project: None,
            warnings: vec![],
        }
    }

    /// The head is refused; the accepted revision (if any) stays.
    fn reject(&mut self, revision: String, reason: RejectReason, accepted: Option<String>) {
        self.decision = Decision::Reject { revision, reason };
        self.revision = accepted;
    }
}

/// Outcome of executing one plan.
#[derive(Clone, Debug, Serialize)]
pub struct AccountReport {
    pub account: String,
    pub decision: Decision,
    pub applied: Vec<String>,
    pub errors: Vec<String>,
    /// The audit entry of the first failed action: what a student is shown
    /// instead of the backend's words (internal addresses, other services'
    /// answers stay in the audit log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_audit: Option<i64>,
    /// Applied actions by kind (`create`, `recreate`, …), for metrics and
    /// the reconcile's log line.
    #[serde(skip)]
    pub kinds: BTreeMap<&'static str, usize>,
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

    fn backend(&self, endpoint: &str) -> Result<&DockerBackend> {
        match self.docker.get(endpoint) {
            Some(Ok(b)) => Ok(b),
            Some(Err(reason)) => Err(ReconcileError::EndpointDown {
                endpoint: endpoint.into(),
                reason: reason.clone(),
            }),
            None => Err(ReconcileError::NoEndpoint(endpoint.into())),
        }
    }

    fn kube_backend(&self) -> std::result::Result<&KubeBackend, ActionError> {
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

/// One line for logs and the audit: `create alice-web`.
pub fn describe(action: &Action) -> String {
    format!("{} {}", action.kind(), action.target())
}

pub fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
