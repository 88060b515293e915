//! Layer 5: turning one account's revision into running containers.
//! [`reconcile`] gathers, decides (in the core), assembles the plan and
//! executes it; [`builds`] builds the images a revision declares, which a
//! reconcile waits for; [`archive`] moves a dormant account's volumes to
//! files and back. Imports the layers below only.

/// Dormant accounts' volumes: archived to files, brought back.
pub mod archive;
/// Image builds from git: checks, build, push.
pub mod builds;
/// One account: gather → decide → assemble the plan → execute.
pub mod reconcile;
