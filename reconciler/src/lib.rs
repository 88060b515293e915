//! Berth's reconciler: from a student's repository to running containers.
//!
//! # Layout (see `docs/architecture.md`)
//!
//! The flow is webhook → [`queue`] → gather → decide → act → observe →
//! read model:
//!
//! - **Inputs (IO):** [`source`] reads workspaces from git ([`mirror`]s of
//!   GitLab projects, [`discovery`] of accounts), [`identity`] asks LDAP who
//!   an account is, [`store`] keeps accepted revisions, the audit log and
//!   allocations, [`gitlab`] and [`registry`] are the REST clients.
//! - **Pure core (no IO, checked by `tests/architecture.rs`):** [`desired`]
//!   turns a workspace into Docker containers and Kubernetes objects (and
//!   places them: endpoint, ports, GPUs), [`plan`] diffs them against what
//!   was observed into ordered actions, [`reconcile::decide`] says what
//!   happens to a head revision, [`runner`] writes the CI runner's config.
//! - **One account:** [`reconcile`] gathers, decides, builds the plan and
//!   executes it; [`apply`] runs many at once.
//! - **Backends (IO):** [`backend`] observes and acts on Docker and
//!   Kubernetes, and only there.
//! - **Read model:** [`view`] is the typed state of an account that
//!   `status`, the HTTP API and the console show.
//! - **Edges:** [`server`] (`reconciler serve`: webhook, queue workers,
//!   resync, HTTP API), [`cli`] (the `reconciler` binary), [`context`]
//!   (site.yaml → connected clients), [`images`] and [`gc`] (the image
//!   catalogue and collection), [`tls`] (one crypto provider), [`token`]
//!   (the registry's token service).

/// Many accounts at once, bounded.
pub mod apply;
/// Docker and Kubernetes: observation and actions, the only IO on them.
pub mod backend;
/// Argument parsing and the subcommands.
pub mod cli;
pub mod client;
/// The student console served under `/` by `serve`.
pub mod console;
/// Building the reconcile context from site.yaml.
pub mod context;
/// Idle culling: stop what nobody uses.
pub mod cull;
/// Which accounts exist; fresh repository copies.
pub mod discovery;
/// Moving every account off a Docker host, with its volumes.
pub mod drain;
#[cfg(test)]
mod fixtures;
/// Image garbage collection.
pub mod gc;
/// GitLab REST client.
pub mod gitlab;
/// The innermost cause of a service's error, for messages to admins.
pub mod hint;
/// LDAP identity, DNs, and the admission rules (pure).
pub mod identity;
/// Image builds from git: context, Dockerfile checks, build and push.
pub mod imagebuild;
/// The department registry's image catalogue.
pub mod images;
/// Logging in with the department account: standing, password, throttle.
pub mod login;
/// Prometheus metrics of the service.
pub mod metrics;
/// Local mirrors of GitLab repositories.
pub mod mirror;
/// Noticing pushes by polling where webhooks cannot reach.
pub mod poll;
/// Plan previews of branches and merge requests, rendered for GitLab.
pub mod preview;
/// Per-account coalescing work queue.
pub mod queue;
/// One account: gather → decide → build the plan → execute.
pub mod reconcile;
/// The department registry's API.
pub mod registry;
/// Random secrets, hex, and the hashes secrets are stored under.
pub mod secret;
/// `reconciler serve`: webhook, queue workers, resync, HTTP API.
pub mod server;
/// Git repositories.
pub mod source;
/// Embedded state.
pub mod store;
/// Failed-attempt throttling.
pub mod throttle;
/// The process-wide TLS provider.
pub mod tls;
/// The registry token service: who may pull and push what.
pub mod token;
/// The read model of an account: status, the API, the console.
pub mod view;
