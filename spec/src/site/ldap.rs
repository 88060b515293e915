//! `ldap` in `site.yaml`: where accounts and groups are read, how a
//! disabled account is recognised, which groups may use Berth and which
//! administer it.

use crate::located::Located;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ldap {
    /// `ldap://host:port` (StartTLS when `starttls`) or `ldaps://host:port`.
    pub url: Located<String>,
    #[serde(default)]
    pub starttls: bool,
    /// Allows `ldap://` without StartTLS (passwords and directory answers in
    /// clear): only for a directory on loopback or a trusted link.
    #[serde(default)]
    pub insecure: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_dn: Option<String>,
    /// Environment variable holding the bind password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_password_env: Option<Located<String>>,
    /// Where accounts live, e.g. `ou=people,dc=example,dc=org`.
    pub base_dn: String,
    /// Filter finding one account; `{account}` is replaced by the escaped name.
    #[serde(default = "default_user_filter")]
    pub user_filter: Located<String>,
    #[serde(default = "default_mail")]
    pub mail_attribute: String,
    #[serde(default)]
    pub groups: GroupLookup,
    /// How a disabled account is recognised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<Disabled>,
    /// Accounts outside these groups are refused.
    pub allowed_groups: Vec<String>,
    /// Members may push to any account's repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_group: Option<String>,
    /// How long a lookup is cached, e.g. `60s`.
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl: Located<String>,
}

fn default_user_filter() -> Located<String> {
    Located::new("(&(objectClass=inetOrgPerson)(uid={account}))".to_string())
}
fn default_mail() -> String {
    "mail".to_string()
}
fn default_cache_ttl() -> Located<String> {
    Located::new("60s".to_string())
}

/// How group membership is read: the account's `memberOf` attribute, or a
/// search for groups whose member attribute names the account's DN.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case", tag = "mode")]
pub enum GroupLookup {
    MemberOf {
        #[serde(default = "default_member_of")]
        attribute: String,
        /// Where the site's groups live; a `memberOf` value counts only if
        /// it is a direct child of it (compared as a DN). Defaults to
        /// `ou=groups` beside `ldap.base_dn`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base_dn: Option<String>,
    },
    Search {
        base_dn: String,
        /// `{dn}` and `{account}` are replaced by escaped values.
        #[serde(default = "default_group_filter")]
        filter: String,
        #[serde(default = "default_cn")]
        name_attribute: String,
    },
}

impl Default for GroupLookup {
    fn default() -> Self {
        GroupLookup::MemberOf {
            attribute: default_member_of(),
            base_dn: None,
        }
    }
}

fn default_member_of() -> String {
    "memberOf".to_string()
}
fn default_group_filter() -> String {
    "(&(objectClass=groupOfNames)(member={dn}))".to_string()
}
fn default_cn() -> String {
    "cn".to_string()
}

/// An account is disabled if it has `attribute` (equal to `value` when
/// given), or is a member of `group`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Disabled {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl Ldap {
    /// The DN under which the site's groups live (see [`GroupLookup`]).
    pub fn group_base_dn(&self) -> String {
        match &self.groups {
            GroupLookup::MemberOf {
                base_dn: Some(b), ..
            }
            | GroupLookup::Search { base_dn: b, .. } => b.clone(),
            GroupLookup::MemberOf { base_dn: None, .. } => {
                let parent = self
                    .base_dn
                    .split_once(',')
                    .map(|(_, p)| p.trim())
                    .unwrap_or("");
                if parent.is_empty() {
                    "ou=groups".to_string()
                } else {
                    format!("ou=groups,{parent}")
                }
            }
        }
    }
}
