//! The key GPU lending and allocations use for a container's claim on a
//! host's cards. Which cards it gets, and until when, is
//! [`crate::lending`]'s.

use serde::{Deserialize, Serialize};

/// One container's claim on a host's GPUs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GpuKey {
    pub account: String,
    pub container: String,
}
