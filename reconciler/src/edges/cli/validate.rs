//! `reconciler validate [PATH...]`: strict parse + validation of workspace
//! and site files, and, with `--config` and `--account`, the site policy for
//! that account (including names that would collide with another account's
//! after prefixing, for the accounts found in the site's local repository
//! root). Prints `path:line:col: message`; never touches a backend.

use super::exit;
use berth_spec::{Diagnostics, Site};
use clap::ValueEnum;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files to check; `workspace.yaml` when none is given. Files whose name
    /// starts with `site` are checked as site.yaml.
    pub paths: Vec<PathBuf>,
    /// Check the workspaces against the site policy for this account.
    #[arg(long)]
    pub account: Option<String>,
    /// The account's LDAP groups (repeatable), for the quota check; looked
    /// up in the site's LDAP when not given.
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// Force the kind of every file instead of guessing from its name.
    #[arg(long, value_enum)]
    pub kind: Option<FileKind>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FileKind {
    Workspace,
    Site,
}

impl FileKind {
    fn guess(path: &Path) -> FileKind {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("site") {
            FileKind::Site
        } else {
            FileKind::Workspace
        }
    }
}

pub fn run(config: Option<&Path>, args: &Args) -> u8 {
    let site = match config.map(load_site).transpose() {
        Ok(site) => site,
        Err(code) => return code,
    };
    if args.account.is_some() && site.is_none() {
        eprintln!("reconciler validate: --account needs --config SITE to know the policy");
        return exit::ERROR;
    }
    let mut groups = args.groups.clone();
    if let (Some(account), Some(site)) = (&args.account, &site)
        && groups.is_empty()
    {
        match lookup_groups(site, account) {
            Ok(found) => groups = found,
            Err(e) => {
                eprintln!("reconciler validate: {e}");
                return exit::ERROR;
            }
        }
    }
    let default = [PathBuf::from("workspace.yaml")];
    let paths: &[PathBuf] = if args.paths.is_empty() {
        &default
    } else {
        &args.paths
    };
    let mut worst = exit::OK;
    for path in paths {
        let code = check_file(path, args, &groups, site.as_ref());
        worst = worst.max(code);
    }
    worst
}

fn load_site(path: &Path) -> Result<Site, u8> {
    let bytes = std::fs::read(path).map_err(|e| {
        eprintln!("{}: cannot read: {e}", path.display());
        exit::ERROR
    })?;
    berth_spec::parse_site(&bytes).map_err(|d| {
        print_diags(path, &d);
        exit::ERROR
    })
}

/// The account's groups from LDAP, when `--group` was not given.
fn lookup_groups(site: &Site, account: &str) -> Result<Vec<String>, String> {
    let directory =
        crate::inputs::identity::Directory::from_site(site).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    match rt.block_on(directory.lookup(account)) {
        Ok(Some(found)) => Ok(found.groups),
        Ok(None) => Err(format!(
            "account `{account}` does not exist in the directory"
        )),
        Err(e) => Err(e.to_string()),
    }
}

fn check_file(path: &Path, args: &Args, groups: &[String], site: Option<&Site>) -> u8 {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{}: cannot read: {e}", path.display());
            return exit::ERROR;
        }
    };
    let kind = args.kind.unwrap_or_else(|| FileKind::guess(path));
    let result = match kind {
        FileKind::Site => berth_spec::parse_site(&bytes).map(drop),
        FileKind::Workspace => {
            berth_spec::parse_workspace(&bytes).and_then(|ws| match (site, &args.account) {
                (Some(site), Some(account)) => {
                    berth_spec::policy::check(&ws, site, account, groups)
                }
                _ => Ok(()),
            })
        }
    };
    match result {
        Ok(()) => exit::OK,
        Err(d) => {
            print_diags(path, &d);
            exit::CHANGES_OR_INVALID
        }
    }
}

fn print_diags(path: &Path, diags: &Diagnostics) {
    let shown = path.display().to_string();
    for d in diags.iter() {
        println!("{}", d.render(&shown));
    }
}
