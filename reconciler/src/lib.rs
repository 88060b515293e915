//! Berth's reconciler: from a student's repository to running containers.
//!
//! # Layout
//! - [`source`] reads workspaces from git, [`identity`] asks LDAP who an
//!   account is and decides admission, [`store`] keeps accepted revisions,
//!   the audit log and port allocations.
//! - [`desired`] turns a workspace into containers, [`plan`] diffs them
//!   against what [`backend`]s observe, [`reconcile`] runs one account,
//!   [`apply`] runs many.
//! - [`cli`] is the `reconciler` binary's command line.

/// Many accounts at once, bounded.
pub mod apply;
/// Docker (and later Kubernetes) backends.
pub mod backend;
/// Argument parsing and the subcommands.
pub mod cli;
/// Building the reconcile context from site.yaml.
pub mod context;
/// Workspace → desired containers; placement and port allocation.
pub mod desired;
/// Which accounts exist; fresh repository copies.
pub mod discovery;
#[cfg(test)]
mod fixtures;
/// Image garbage collection.
pub mod gc;
/// GitLab REST client.
pub mod gitlab;
/// LDAP identity and admission.
pub mod identity;
/// The department registry's image catalogue.
pub mod images;
/// Local mirrors of GitLab repositories.
pub mod mirror;
/// Desired vs observed → ordered actions (pure).
pub mod plan;
/// Per-account coalescing work queue.
pub mod queue;
/// One account: evaluate, then execute.
pub mod reconcile;
/// The department registry's API.
pub mod registry;
/// Per-account GitLab runners.
pub mod runner;
/// `reconciler serve`.
pub mod server;
/// Git repositories.
pub mod source;
/// Embedded state.
pub mod store;
/// The process-wide TLS provider.
pub mod tls;
/// The read model of an account: status, the API, the console.
pub mod view;
