//! `access` in `site.yaml`: which directory groups students may let into
//! their containers (TAs, staff), and for how long at most. Without it, a
//! workspace that grants access is refused.

use crate::located::Located;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// Only members of these groups can be granted access (by account, or
    /// the group itself).
    pub grantable_groups: Vec<String>,
    /// The furthest an access `until` may be from the push.
    #[serde(default = "default_max")]
    pub max: Located<String>,
}

fn default_max() -> Located<String> {
    Located::new("30d".to_string())
}
