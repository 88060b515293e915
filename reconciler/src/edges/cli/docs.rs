//! `reconciler completions bash|zsh|fish|elvish|powershell` (a completion
//! script on stdout, generated from the clap definitions) and `reconciler
//! man DIR` (one man page per command, `reconciler.1`,
//! `reconciler-apply.1`, …; `docs/man/` holds the committed ones, which a
//! test keeps current). With `--markdown`, the same pages as one Markdown
//! file, the documentation site's CLI reference.

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
    /// Write `cli.md`, every page as Markdown, instead of roff pages.
    #[arg(long)]
    pub markdown: bool,
}

pub fn completions(args: &CompletionArgs) -> u8 {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "reconciler", &mut std::io::stdout());
    exit::OK
}

/// Writes `reconciler.1` and `reconciler-<sub>.1` for every subcommand.
pub fn man(args: &ManArgs) -> u8 {
    let written = if args.markdown {
        write_markdown(&args.dir)
    } else {
        write_pages(&args.dir)
    };
    match written {
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

/// `cli.md`: the command, then each subcommand, with its full help (the
/// text the man pages carry) as a block.
fn write_markdown(dir: &std::path::Path) -> std::io::Result<usize> {
    use std::fmt::Write;
    std::fs::create_dir_all(dir)?;
    let mut cmd = Cli::command()
        .name("reconciler")
        .version(env!("CARGO_PKG_VERSION"))
        .term_width(80);
    cmd.build();
    let mut out = String::from(
        "# Command-line reference\n\nGenerated from `reconciler`'s own help (the text of its man pages, \
         `man reconciler-<command>` once the package is installed). Exit codes: 0 nothing to do \
         or done, 1 changes found or input invalid, 2 an error.\n\n",
    );
    let mut n = 0;
    let mut page = |title: String, c: &mut clap::Command| {
        let help = c.render_long_help().to_string();
        let _ = write!(out, "## `{title}`\n\n```text\n{}\n```\n\n", help.trim_end());
        n += 1;
    };
    page("reconciler".into(), &mut cmd.clone());
    for sub in cmd.get_subcommands_mut() {
        let title = format!("reconciler {}", sub.get_name());
        page(title, sub);
    }
    std::fs::write(dir.join("cli.md"), out)?;
    Ok(n)
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
