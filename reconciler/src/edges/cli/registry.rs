//! `reconciler registry-config` (the registry's `auth: token` section for
//! the key Berth signs with, made at first use) and `reconciler
//! registry-token create|list|revoke` (personal tokens `docker login`
//! accepts instead of the department password). Both read the site and
//! the store only.

use super::{Output, exit};
use crate::base::time::rfc3339;
use berth_spec::Site;
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Make a token; its secret is printed once and never again.
    Create {
        #[arg(long)]
        account: String,
        /// What the token is for (e.g. `laptop`); unique per account.
        #[arg(long, default_value = "default")]
        name: String,
        /// How long it works, e.g. `30d` (default and longest: the site's
        /// `registry.token.personal_ttl` and `personal_max_ttl`).
        #[arg(long, value_parser = lifetime)]
        expires: Option<std::time::Duration>,
    },
    /// The account's tokens (names and use, never secrets).
    List {
        #[arg(long)]
        account: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Revoke a token: `docker login` with it fails from now on.
    Revoke {
        #[arg(long)]
        account: String,
        #[arg(long)]
        name: String,
    },
}

fn site(config: Option<&Path>, what: &str) -> Result<Site, u8> {
    let Some(config) = config else {
        return Err(super::no_config(what));
    };
    crate::clients::load_site(config).map_err(|e| {
        eprintln!("{e}");
        exit::ERROR
    })
}

pub fn config(config: Option<&Path>, _args: &ConfigArgs) -> u8 {
    let Ok(site) = site(config, "registry-config") else {
        return exit::ERROR;
    };
    let keys = match crate::inputs::keys::Keys::load(&site) {
        Ok(Some(keys)) => keys,
        Ok(None) => {
            eprintln!("reconciler registry-config: site.yaml has no `registry.token` section");
            return exit::ERROR;
        }
        Err(e) => {
            eprintln!("reconciler registry-config: {e}");
            return exit::ERROR;
        }
    };
    let base = site
        .public_url
        .as_ref()
        .map(|u| u.value.trim_end_matches('/').to_string())
        .unwrap_or_default();
    print!(
        "{}",
        keys.signer
            .registry_config(&format!("{base}/registry/token"))
    );
    exit::OK
}

fn lifetime(text: &str) -> Result<std::time::Duration, String> {
    berth_spec::site::parse_duration(text)
}

/// The directory entry a new token is bound to (`Account::entry`).
fn entry_of(site: &berth_spec::Site, account: &str) -> Result<String, String> {
    let directory =
        crate::inputs::identity::Directory::from_site(site).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    match runtime.block_on(directory.lookup(account)) {
        Ok(Some(found)) => Ok(found.entry),
        Ok(None) => Err(format!("the directory knows no account `{account}`")),
        Err(e) => Err(e.to_string()),
    }
}

pub fn token(config: Option<&Path>, command: &TokenCommand) -> u8 {
    let account = match command {
        TokenCommand::Create { account, .. }
        | TokenCommand::List { account, .. }
        | TokenCommand::Revoke { account, .. } => account,
    };
    if let Some(why) = berth_spec::names::dns_label_problem(account, berth_spec::names::MAX_ACCOUNT)
    {
        eprintln!("reconciler registry-token: account `{account}`: {why}");
        return exit::ERROR;
    }
    let (site, store) = match super::open_store(config, "registry-token") {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let result = match command {
        TokenCommand::Create {
            account,
            name,
            expires,
        } => {
            let bound = entry_of(&site, account).and_then(|entry| {
                crate::edges::token::personal_expiry(&site, *expires).map(|at| (entry, at))
            });
            let (entry, expires) = match bound {
                Ok(bound) => bound,
                Err(why) => {
                    eprintln!("reconciler registry-token: {why}");
                    return exit::ERROR;
                }
            };
            let (secret, hash) = crate::edges::token::new_personal_token();
            store
                .add_registry_token(account, &entry, name, &hash, expires)
                .map(|added| {
                if added {
                    let host = site
                        .registry
                        .as_ref()
                        .map(|r| r.host.value.as_str())
                        .unwrap_or("<registry>");
                    println!("{secret}");
                    eprintln!(
                        "Shown once. Log in with: docker login {host} -u {account} --password-stdin"
                    );
                    exit::OK
                } else {
                    eprintln!(
                        "reconciler registry-token: `{account}` already has a token named `{name}`; revoke it first"
                    );
                    exit::ERROR
                }
            })
        }
        TokenCommand::List { account, output } => store.registry_tokens(account).map(|tokens| {
            match output {
                Output::Json => {
                    let list: Vec<_> = tokens
                        .iter()
                        .map(|t| {
                            serde_json::json!({
                                "account": t.account,
                                "name": t.name,
                                "created": rfc3339(t.created),
                                "last_used": t.last_used.map(rfc3339),
                                "expires": t.expires.map(rfc3339),
                            })
                        })
                        .collect();
                    println!("{}", serde_json::json!({ "tokens": list }));
                }
                Output::Text => {
                    println!(
                        "{:<20} {:<22} {:<22} LAST USED",
                        "NAME", "CREATED", "EXPIRES"
                    );
                    for t in &tokens {
                        println!(
                            "{:<20} {:<22} {:<22} {}",
                            t.name,
                            rfc3339(t.created),
                            t.expires
                                .map(rfc3339)
                                .unwrap_or_else(|| "site default".into()),
                            t.last_used.map(rfc3339).unwrap_or_else(|| "never".into())
                        );
                    }
                }
            }
            exit::OK
        }),
        TokenCommand::Revoke { account, name } => {
            store.revoke_registry_token(account, name).map(|gone| {
                if gone {
                    exit::OK
                } else {
                    eprintln!("reconciler registry-token: `{account}` has no token named `{name}`");
                    exit::ERROR
                }
            })
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("reconciler registry-token: {e}");
        exit::ERROR
    })
}
