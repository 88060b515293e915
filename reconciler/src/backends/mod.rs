//! Backends: where containers run. Each observes only objects carrying
//! Berth's labels and executes plan actions; neither decides anything.

pub mod docker;
pub mod kube_apply;

pub use docker::{DockerBackend, DockerError};
pub use kube_apply::KubeError;

use std::sync::Arc;

/// Why a backend could not be reached or observed. Cheap to clone: an
/// unreachable endpoint's error is reported for each of its accounts.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Unavailable {
    #[error(transparent)]
    Docker(Arc<DockerError>),
    #[error(transparent)]
    Kube(Arc<KubeError>),
    #[error(transparent)]
    ClusterConfig(Arc<ClusterConfigError>),
}

impl From<DockerError> for Unavailable {
    fn from(e: DockerError) -> Self {
        Unavailable::Docker(Arc::new(e))
    }
}

impl From<KubeError> for Unavailable {
    fn from(e: KubeError) -> Self {
        Unavailable::Kube(Arc::new(e))
    }
}

impl From<ClusterConfigError> for Unavailable {
    fn from(e: ClusterConfigError) -> Self {
        Unavailable::ClusterConfig(Arc::new(e))
    }
}

/// Why no client for the site's cluster could be made.
#[derive(Debug, thiserror::Error)]
pub enum ClusterConfigError {
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("no cluster configuration found: {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("kubernetes client: {0}")]
    Client(#[from] kube::Error),
}
