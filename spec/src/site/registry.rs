//! The `registry:` section of `site.yaml`: the department registry in
//! which each account owns `<registry>/<account>/…`, Berth's identity in
//! it, the scan hook, and the token service Berth serves for it.

use crate::located::Located;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// Host and port, e.g. `registry.example:5000`.
    pub host: Located<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_env: Option<Located<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<Located<String>>,
    /// Plain HTTP (loopback test registries only).
    #[serde(default)]
    pub insecure: bool,
    /// Command run on each newly accepted image of this registry, with the
    /// image reference and digest appended; a non-zero exit refuses the
    /// revision with the command's output as the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_command: Option<Vec<String>>,
    /// Berth serves this registry's token authentication (`auth: token`):
    /// clients log in with their department account or a personal token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<RegistryToken>,
}

/// The registry token service (the distribution registry's `auth: token`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryToken {
    /// The registry's `service` name, the tokens' audience (default: the
    /// registry host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The tokens' issuer (default `berth`).
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// PEM private key (PKCS#8, ECDSA P-256) signing tokens; generated into
    /// the state directory at first start when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// PEM certificate of that key (the registry's `rootcertbundle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Lifetime of an issued token, e.g. `5m`.
    #[serde(default = "default_registry_token_ttl")]
    pub ttl: Located<String>,
    /// Lifetime of a personal token when its maker names none.
    #[serde(default = "default_personal_ttl")]
    pub personal_ttl: Located<String>,
    /// Longest lifetime a personal token may be given.
    #[serde(default = "default_personal_max_ttl")]
    pub personal_max_ttl: Located<String>,
}

fn default_issuer() -> String {
    "berth".into()
}
fn default_registry_token_ttl() -> Located<String> {
    Located::new("5m".to_string())
}
fn default_personal_ttl() -> Located<String> {
    Located::new("90d".to_string())
}
fn default_personal_max_ttl() -> Located<String> {
    Located::new("365d".to_string())
}

/// The lifetimes of personal tokens, (default, longest): the site's
/// `registry.token`, else its defaults (also for a site without one).
pub fn personal_lifetimes(token: Option<&RegistryToken>) -> (Duration, Duration) {
    let (ttl, max) = match token {
        Some(t) => (t.personal_ttl.clone(), t.personal_max_ttl.clone()),
        None => (default_personal_ttl(), default_personal_max_ttl()),
    };
    // Validation refuses unparsable ones; the defaults stand in anyway.
    let parse = |t: &Located<String>, fallback: Located<String>| {
        super::parse_duration(t)
            .or_else(|_| super::parse_duration(&fallback))
            .unwrap_or(Duration::ZERO)
    };
    let max = parse(&max, default_personal_max_ttl());
    (parse(&ttl, default_personal_ttl()).min(max), max)
}
