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
    /// A chat channel for admins (a Mattermost or Slack incoming webhook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<Chat>,
}

/// Admins' chat: what happened to students, posted as `{"text": …}` (the
/// JSON Mattermost's and Slack's incoming webhooks take), at most one post
/// per `every`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Chat {
    /// Environment variable holding the webhook's URL (it is a secret).
    pub url_env: Located<String>,
    /// What is posted: `push-refused`, `build-failed`, `cull-warning`,
    /// `culled`, `gpu-ending`, `gpu-lent`, `dormancy`, `account-stopped`,
    /// `host-drained`.
    #[serde(default = "default_chat_categories")]
    pub categories: Vec<Located<String>>,
    /// At most one post this often.
    #[serde(default = "default_chat_every")]
    pub every: Located<String>,
}

/// The categories [`Chat::categories`] may name.
pub const CHAT_CATEGORIES: [&str; 9] = [
    "push-refused",
    "build-failed",
    "cull-warning",
    "culled",
    "gpu-ending",
    "gpu-lent",
    "dormancy",
    "account-stopped",
    "host-drained",
];

fn default_chat_categories() -> Vec<Located<String>> {
    ["account-stopped", "host-drained", "dormancy"]
        .into_iter()
        .map(|c| Located::new(c.to_string()))
        .collect()
}

fn default_chat_every() -> Located<String> {
    Located::new("1m".to_string())
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
