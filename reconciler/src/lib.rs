//! Berth's reconciler: from a student's repository to running containers.
//!
//! # Layout
//! Today: the command line. The git source, identity, desired state, backends,
//! plan, apply, queue, store and server modules of DESIGN.md arrive with the
//! issues that need them.

/// Argument parsing and the subcommands.
pub mod cli;
