//! Berth's reconciler: from a student's repository to running containers.
//!
//! # Layout (see `docs/architecture.md`)
//!
//! What Berth decides is the pure core, its own crate (`berth-core`:
//! desired state, plans, admission, grants, the runner's config). This
//! crate gathers the core's inputs and carries out its results, in layers;
//! each folder is one layer and imports only the layers above it in this
//! list (`tests/architecture.rs` holds that, and that no two modules
//! import each other):
//!
//! 0. `base`: helpers that know nothing of Berth (errors' causes, TLS,
//!    secrets, throttling, time).
//! 1. [`store`]: Berth's own state in SQLite.
//! 2. [`inputs`]: git, mirrors, LDAP, GitLab, the registry, the token keys.
//! 3. `backends`: Docker and Kubernetes, observed and acted on.
//! 4. `clients`: all of those connected from `site.yaml` (the
//!    `clients::Context`) and the errors every operation shares.
//! 5. `engine`: one account's reconcile, and the image builds it waits for.
//! 6. `ops`: many accounts and the long run: apply, discovery, polling,
//!    gc, drain, culling, the catalogue, previews, the read model, reports.
//! 7. [`edges`]: the `reconciler` command, `serve`, the console, logins and
//!    the registry's token service.
//!
//! Outside this crate only the binary's entry ([`edges::cli`]), the
//! [`store`] (tests read it) and the GitLab client ([`inputs::gitlab`])
//! are visible; everything else is `pub(crate)`, so the dead-code lint
//! sees what nothing uses.

pub(crate) mod backends;
pub(crate) mod base;
pub(crate) mod clients;
pub mod edges;
pub(crate) mod engine;
#[cfg(test)]
mod fixtures;
pub mod inputs;
pub(crate) mod ops;
pub mod store;
