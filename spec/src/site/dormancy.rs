//! `dormancy` in `site.yaml`, opt-in: a workspace nobody used for
//! `dormant_after` (no push, console login or running container) is told,
//! and after `archive_after` its Docker volumes are archived to
//! `archive_dir` and removed, to come back byte for byte at the next
//! accepted push or `reconciler unarchive`. Without it, Berth never removes
//! a volume on its own.

use crate::located::Located;
use crate::quantity::Memory;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dormancy {
    /// Unused this long, the student is told (e.g. `90d`).
    pub dormant_after: Located<String>,
    /// Unused this long (and told at least `archive_after -
    /// dormant_after` before), the volumes are archived (e.g. `120d`).
    pub archive_after: Located<String>,
    /// Absolute directory the archives are written to (one
    /// `<account>/<volume>.tar.gz` each, with its SHA-256 in the store).
    pub archive_dir: Located<String>,
    /// How often accounts are looked at.
    #[serde(default = "default_check_every")]
    pub check_every: Located<String>,
    /// Space the archive's filesystem keeps free: an archive that would
    /// go below it stops (the volume stays) rather than fill the disk the
    /// store or other students may share (e.g. `10Gi`).
    #[serde(default = "default_keep_free")]
    pub keep_free: Located<Memory>,
}

fn default_keep_free() -> Located<Memory> {
    Located::new(Memory::new("2Gi"))
}

fn default_check_every() -> Located<String> {
    Located::new("1h".to_string())
}
