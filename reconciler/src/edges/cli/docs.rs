//! `reconciler completions bash|zsh|fish|elvish|powershell` (a completion
//! script on stdout, generated from the clap definitions) and `reconciler
//! man DIR` (one man page per command, `reconciler.1`,
//! `reconciler-apply.1`, …; `docs/man/` holds the committed ones, which a
//! test keeps current).

use super::{Cli, exit};
use clap::CommandFactory;

#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// The shell to complete for.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Where to write the pages.
    pub dir: std::path::PathBuf,
}

pub fn completions(args: &CompletionArgs) -> u8 {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "reconciler", &mut std::io::stdout());
    exit::OK
}

/// Writes `reconciler.1` and `reconciler-<sub>.1` for every subcommand.
pub fn man(args: &ManArgs) -> u8 {
    match write_pages(&args.dir) {
        Ok(n) => {
            eprintln!("{n} man page(s) in {}", args.dir.display());
            exit::OK
        }
        Err(e) => {
            eprintln!("reconciler man: {}: {e}", args.dir.display());
            exit::ERROR
        }
    }
}

fn write_pages(dir: &std::path::Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    // The release, not the build's git revision: pages are committed and
    // must not change with every commit.
    let cmd = Cli::command()
        .name("reconciler")
        .version(env!("CARGO_PKG_VERSION"));
    let mut n = 0;
    let mut page = |name: String, cmd: clap::Command| -> std::io::Result<()> {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut out)?;
        std::fs::write(dir.join(format!("{name}.1")), out)?;
        n += 1;
        Ok(())
    };
    page("reconciler".into(), cmd.clone())?;
    for sub in cmd.get_subcommands() {
        let name = format!("reconciler-{}", sub.get_name());
        page(name.clone(), sub.clone().name(name))?;
    }
    Ok(n)
}
