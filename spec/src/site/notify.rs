//! `notify` in `site.yaml`: how students are told by mail (SMTP) and how
//! often. Without it Berth tells only through status, the console and
//! commit statuses.

use crate::located::Located;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    pub smtp: Smtp,
    /// At most one mail per student this often (events in between are
    /// gathered into it), e.g. `15m`.
    #[serde(default = "default_every")]
    pub every: Located<String>,
    /// At most this many mails per student per UTC day.
    #[serde(default = "default_per_day")]
    pub per_day: u32,
}

fn default_every() -> Located<String> {
    Located::new("15m".to_string())
}

fn default_per_day() -> u32 {
    10
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    pub host: Located<String>,
    /// 587 for STARTTLS, 465 for TLS, 25 for none.
    pub port: u16,
    /// `starttls`, `tls` or `none` (a relay on this machine only).
    #[serde(default)]
    pub security: SmtpSecurity,
    /// The sender, e.g. `Berth <berth@cs.example.edu>`.
    pub from: Located<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Environment variable holding the SMTP password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<Located<String>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    #[default]
    Starttls,
    Tls,
    None,
}
