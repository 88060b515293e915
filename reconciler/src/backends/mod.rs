//! Backends: where containers run. Each observes only objects carrying
//! Berth's labels and executes plan actions; neither decides anything.

pub mod docker;
#[cfg(test)]
pub mod fake;
pub mod kube_apply;

pub use docker::{DockerBackend, DockerError};
pub use kube_apply::KubeError;

use berth_core::plan::{Action, ObservedAccount};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One Docker endpoint as a reconcile uses it: observe Berth's objects,
/// carry out plan actions, write files into a container. The seam that
/// lets the engine run in-process against objects kept in memory
/// ([`fake`] in tests); whatever else only dockerd does (the console's
/// logs and terminals, builds, volume copies, image collection) is asked
/// of the real client, [`Containers::docker`].
pub trait Containers: Send + Sync {
    /// Berth's objects by account (one account's, with `account`).
    fn observe<'a>(
        &'a self,
        account: Option<&'a str>,
    ) -> BoxFuture<'a, Result<BTreeMap<String, ObservedAccount>, DockerError>>;
    fn execute<'a>(
        &'a self,
        account: &'a str,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<(), DockerError>>;
    /// Writes `files` into the container `id` (named `name`).
    fn upload<'a>(
        &'a self,
        id: &'a str,
        name: &'a str,
        files: &'a [(String, Vec<u8>)],
    ) -> BoxFuture<'a, Result<(), DockerError>>;
    /// Images pulled since last asked (for the collector's bookkeeping).
    fn take_pulled(&self) -> Vec<String>;
    /// The dockerd client behind the endpoint, when there is one.
    fn docker(&self) -> Option<&DockerBackend>;
}

impl Containers for DockerBackend {
    fn observe<'a>(
        &'a self,
        account: Option<&'a str>,
    ) -> BoxFuture<'a, Result<BTreeMap<String, ObservedAccount>, DockerError>> {
        Box::pin(DockerBackend::observe(self, account))
    }

    fn execute<'a>(
        &'a self,
        account: &'a str,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<(), DockerError>> {
        Box::pin(DockerBackend::execute(self, account, action))
    }

    fn upload<'a>(
        &'a self,
        id: &'a str,
        name: &'a str,
        files: &'a [(String, Vec<u8>)],
    ) -> BoxFuture<'a, Result<(), DockerError>> {
        Box::pin(DockerBackend::upload(self, id, name, files))
    }

    fn take_pulled(&self) -> Vec<String> {
        DockerBackend::take_pulled(self)
    }

    fn docker(&self) -> Option<&DockerBackend> {
        Some(self)
    }
}

/// A Docker endpoint: the real client, or (in tests) a fake.
pub type Endpoint = Arc<dyn Containers>;

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
