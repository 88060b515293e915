//! Berth's pure core: what Berth decides, with nothing it reads or does.
//! Every function here takes plain values and returns plain values; the
//! reconciler gathers the inputs (git, LDAP, GitLab, the store, the
//! backends) and carries out the results. This crate's manifest has no
//! async runtime and no client of Docker, Kubernetes, LDAP, HTTP or
//! SQLite, so Cargo, not a convention, keeps it pure.
//!
//! # Layout
//!
//! - Inputs, as plain records: [`account`] (a directory entry),
//!   [`revision`] (a commit, its `workspace.yaml`, a build context's files).
//! - Rules: [`dn`] (comparing directory names), [`admission`] (who may push
//!   and run), [`decide`] (what happens to a head revision), [`grants`]
//!   (what a registry token allows), [`access`] (who a student let in),
//!   [`dockerfile`] and [`tarball`] (what a build may use, and the context
//!   it sends); [`time`] (how instants are written).
//! - Accounting: [`usage`] (what a sampling round adds, per account and
//!   hour), [`budget`] (what a group's budget says of a revision).
//! - GPUs: [`lending`] (time-boxed grants of cards, the fair queue,
//!   bookings).
//! - Idle containers: [`idle`] (warned, kept, stopped); dormant
//!   workspaces: [`dormancy`] (told, then archived).
//! - Telling students: [`notify`] (digests, pacing, muting).
//! - Results: [`desired`] (containers and Kubernetes objects an account
//!   should have, and where), [`plan`] (the actions from what is observed
//!   to what is desired), [`runner`] (the CI runner and its `config.toml`).

pub mod access;
pub mod account;
pub mod admission;
pub mod budget;
pub mod decide;
pub mod desired;
pub mod dn;
pub mod dockerfile;
pub mod dormancy;
pub mod grants;
pub mod idle;
pub mod lending;
pub mod notify;
pub mod plan;
pub mod revision;
pub mod runner;
pub mod tarball;
pub mod time;
pub mod usage;

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
