//! Layer 2: the clients Berth reads its inputs through. Each talks to one
//! service and returns the core's plain records. Imports `base`, `store`
//! and the core only.

/// GitLab REST client.
pub mod gitlab;
/// LDAP: who an account is.
pub(crate) mod identity;
/// The registry token service's keys, with which Berth also signs its own.
pub(crate) mod keys;
/// Local mirrors of GitLab repositories.
pub(crate) mod mirror;
/// The department registry's API.
pub(crate) mod registry;
/// Git repositories: workspaces and build contexts at a commit.
pub(crate) mod source;
