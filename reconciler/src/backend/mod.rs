//! Backends: where containers run. Each observes only objects carrying
//! Berth's labels and executes plan actions; neither decides anything.

pub mod docker;
pub mod kube_apply;

pub use docker::{DockerBackend, DockerError};
