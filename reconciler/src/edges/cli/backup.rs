//! `reconciler backup FILE` and `reconciler restore FILE`: the state store
//! copied out while `serve` runs, and brought back (see
//! [`crate::store::backup`]). What the store does not hold — containers,
//! volumes, the repositories — is not in the copy: Berth converges the
//! backends to the restored accepted revisions at its next reconcile.

use super::{exit, open_store};
use crate::store::backup::Summary;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Where the copy goes (replaced only once the copy is complete and checked).
    pub file: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// A copy made by `reconciler backup`.
    pub file: PathBuf,
    /// Where the store being replaced is kept
    /// [default: <state_dir>/berth.sqlite3.before-restore-<time>].
    #[arg(long)]
    pub keep: Option<PathBuf>,
}

fn describe(s: &Summary) -> String {
    format!(
        "schema {}, {} account(s) with an accepted revision, {} audit entries, {} bytes",
        s.schema, s.accounts, s.audit_entries, s.bytes
    )
}

pub fn backup(config: Option<&Path>, args: &BackupArgs) -> u8 {
    let store = match open_store(config, "backup") {
        Ok((_, store)) => store,
        Err(code) => return code,
    };
    match store.backup_to(&args.file) {
        Ok(s) => {
            println!("Backup: {} ({})", args.file.display(), describe(&s));
            exit::OK
        }
        Err(e) => {
            eprintln!("reconciler backup: {e}");
            exit::ERROR
        }
    }
}

pub fn restore(config: Option<&Path>, args: &RestoreArgs) -> u8 {
    let (site, store) = match open_store(config, "restore") {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let keep = args.keep.clone().unwrap_or_else(|| {
        Path::new(&site.state_dir.value).join(format!(
            "berth.sqlite3.before-restore-{}",
            crate::store::now()
        ))
    });
    match store.restore_from(&args.file, &keep) {
        Ok(s) => {
            let _ = store.audit(
                "(admin)",
                "restored",
                None,
                &args.file.display().to_string(),
            );
            println!("Restored: {} ({})", args.file.display(), describe(&s));
            println!("The store it replaced: {}", keep.display());
            println!(
                "Backends converge to the restored revisions at the next reconcile (apply, or serve's resync)."
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("reconciler restore: {e}");
            exit::ERROR
        }
    }
}
