//! What can go wrong in a reconcile and in one action of it: the errors
//! of every client, in one place, so every operation (reconcile, builds,
//! gc, drain, cull, the console) shares them without reaching into one.

use crate::backends::{DockerError, KubeError, Unavailable};
use crate::inputs::identity::IdentityError;
use crate::inputs::source::SourceError;
use crate::store::StoreError;
use berth_core::desired;

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
    Fetch(crate::inputs::mirror::FetchError),
    #[error(transparent)]
    GitLab(#[from] crate::inputs::gitlab::GitLabError),
    #[error("repositories from GitLab need the GitLab API (gitlab.url and gitlab.token_env)")]
    NoGitLab,
    #[error(transparent)]
    Registry(#[from] crate::inputs::registry::RegistryError),
    #[error("kubernetes cluster is unavailable: {0}")]
    ClusterDown(Unavailable),
    /// The account's home directory cannot be mounted as it is; nothing
    /// changes until it can (an admin creates or fixes it).
    #[error("home directory of `{account}`: {why}")]
    Home { account: String, why: String },
    #[error("{what} took longer than {} s", after.as_secs())]
    Timeout {
        what: String,
        after: std::time::Duration,
    },
    /// An accepted file that no longer reads as it did (a bug or a
    /// changed rule).
    #[error("{what}: {why}")]
    Invalid { what: String, why: String },
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
    GitLab(#[from] crate::inputs::gitlab::GitLabError),
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
