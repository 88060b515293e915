//! The `console:` and `login:` sections of `site.yaml`: how students log in
//! with their department account (shared by the console and the registry's
//! token service) and what the console offers them.

use crate::located::Located;
use crate::quantity::Memory;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The student console.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Console {
    /// Students reach Berth over TLS (a proxy in front): cookies are `Secure`
    /// (and named with the `__Host-` prefix, so no other site can plant one).
    #[serde(default)]
    pub tls: bool,
    /// The console's public host name (`berth.example.edu`). Browsers send
    /// a host's cookies to every port of it, so students' apps must be
    /// served under another name: with this set, a site whose ports would
    /// be linked on it is refused (see `share_host_with_apps`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Located<String>>,
    /// Allows students' ports on the console's own host name anyway: any
    /// student whose app a classmate opens receives the classmate's
    /// session. For a single-user trial only; `validate` warns.
    #[serde(default)]
    pub share_host_with_apps: bool,
    /// A session ends after this long without a request.
    #[serde(default = "default_idle")]
    pub idle: Located<String>,
    /// A session ends this long after login, whatever it does.
    #[serde(default = "default_lifetime")]
    pub lifetime: Located<String>,
    /// Keep sessions in the state store, so they survive a restart.
    #[serde(default)]
    pub persist_sessions: bool,
    /// The terminal's command (default: the image's `/bin/sh`).
    #[serde(default = "default_shell")]
    pub shell: Vec<String>,
    /// A terminal with no input for this long is closed.
    #[serde(default = "default_terminal_idle")]
    pub terminal_idle: Located<String>,
    /// Container ports shown as `http://` links.
    #[serde(default = "default_http_ports")]
    pub http_ports: Vec<u16>,
    /// Largest file a student uploads at once.
    #[serde(default = "default_max_upload")]
    pub max_upload: Located<Memory>,
    /// Terminals one account may have open at once (over every session).
    #[serde(default = "default_max_terminals")]
    pub max_terminals: u32,
    /// Log streams one account may follow at once (over every session).
    #[serde(default = "default_max_log_streams")]
    pub max_log_streams: u32,
}

impl Default for Console {
    fn default() -> Self {
        Console {
            tls: false,
            host: None,
            share_host_with_apps: false,
            idle: default_idle(),
            lifetime: default_lifetime(),
            persist_sessions: false,
            shell: default_shell(),
            terminal_idle: default_terminal_idle(),
            http_ports: default_http_ports(),
            max_upload: default_max_upload(),
            max_terminals: default_max_terminals(),
            max_log_streams: default_max_log_streams(),
        }
    }
}

fn default_max_terminals() -> u32 {
    8
}
fn default_max_log_streams() -> u32 {
    10
}
fn default_idle() -> Located<String> {
    Located::new("30m".to_string())
}
fn default_lifetime() -> Located<String> {
    Located::new("12h".to_string())
}
fn default_shell() -> Vec<String> {
    vec!["/bin/sh".to_string()]
}
fn default_terminal_idle() -> Located<String> {
    Located::new("30m".to_string())
}
fn default_http_ports() -> Vec<u16> {
    vec![80, 3000, 5000, 8000, 8080, 8888]
}
fn default_max_upload() -> Located<Memory> {
    Located::new(Memory::new("100Mi"))
}

/// Logging in with the department account (the console and `docker
/// login`, which share these limits and one count of failures).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// Failed logins at one account from one client address in a 15-minute
    /// window before that address may no longer try that account.
    #[serde(default = "default_account_address_failures")]
    pub account_address_failures: u32,
    /// Failed logins at one account from all addresses together in a
    /// 15-minute window before Berth stops asking the directory for it
    /// (keep it below the directory's own lockout threshold). Slower than
    /// the per-address bound, so a stranger cannot lock a student out
    /// with a few guesses.
    #[serde(default = "default_account_failures")]
    pub account_failures: u32,
    /// Failed logins one client address may make in a 15-minute window.
    #[serde(default = "default_address_failures")]
    pub address_failures: u32,
    /// How long a successful password check is remembered (salted and
    /// hashed, in memory), so a `docker push` of many layers costs one
    /// LDAP bind; `0s` binds every time.
    #[serde(default = "default_bind_cache")]
    pub bind_cache: Located<String>,
}

impl Default for Login {
    fn default() -> Self {
        Login {
            account_address_failures: default_account_address_failures(),
            account_failures: default_account_failures(),
            address_failures: default_address_failures(),
            bind_cache: default_bind_cache(),
        }
    }
}

fn default_bind_cache() -> Located<String> {
    Located::new("1m".to_string())
}

fn default_account_address_failures() -> u32 {
    3
}
fn default_account_failures() -> u32 {
    10
}
fn default_address_failures() -> u32 {
    20
}
