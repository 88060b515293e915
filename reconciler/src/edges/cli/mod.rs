//! Command line of `reconciler` (clap): the subcommands docs/admin/operations.md lists
//! and the exit-code contract (0 ok, 1 changes or invalid, 2 error). Each subcommand lives in its own file; this one only
//! parses and dispatches.

mod apply;
mod archive;
mod audit;
mod backup;
mod build_log;
mod diff;
mod docs;
mod drain;
mod export;
mod gc;
mod gitlab;
mod gpu;
mod images;
mod kubeconfig;
pub mod paint;
mod plan;
mod progress;
mod registry;
mod remote;
mod schema;
mod schema_markdown;
mod serve;
mod status;
mod usage;
mod validate;
mod volumes;
mod wake;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes, following diff(1), `argocd app diff` and `flux diff`.
pub mod exit {
    pub const OK: u8 = 0;
    /// `diff` found changes; `validate` found an invalid file.
    pub const CHANGES_OR_INVALID: u8 = 1;
    /// Bad config, unreachable service, usage or IO error.
    pub const ERROR: u8 = 2;
}

#[derive(Debug, Parser)]
#[command(
    name = "reconciler",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("BERTH_GIT_REVISION"), ")"),
    about = "Berth: declarative containers for students, through git"
)]
pub struct Cli {
    /// The site configuration (site.yaml). Without it, commands that need
    /// one look for ./site.yaml, then /etc/berth/site.yaml.
    #[arg(long, global = true, value_name = "SITE", env = "BERTH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log lines as text or as JSON objects (one per line).
    #[arg(long, global = true, value_enum, default_value_t)]
    pub log_format: LogFormat,
    /// Colour on a terminal (`NO_COLOR` turns `auto` off).
    #[arg(long, global = true, value_enum, default_value_t)]
    pub color: paint::When,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum Output {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check workspace.yaml / site.yaml files; no side effects.
    Validate(validate::Args),
    /// Show what apply would change, per account.
    Diff(diff::Args),
    /// What a branch or commit would do if pushed to the default branch.
    Plan(plan::Args),
    /// Converge backends to the accepted revisions.
    Apply(apply::Args),
    /// Per-account revision, containers, ports and last error.
    Status(status::Args),
    /// The audit log: revisions accepted and rejected, actions applied.
    Audit(audit::Args),
    /// The log of an account's last image build.
    BuildLog(build_log::Args),
    /// Save an image as a docker-archive tarball (for Singularity/Apptainer).
    ExportImage(export::Args),
    /// Remove images Berth pulled that nothing uses any more.
    Gc(gc::Args),
    /// The department registry's catalogue.
    Images(images::Args),
    /// A kubeconfig for a student's namespace (bound, expiring token).
    Kubeconfig(kubeconfig::Args),
    /// The registry's `auth: token` section for Berth's token service.
    RegistryConfig(registry::ConfigArgs),
    /// Personal registry tokens for `docker login` (create, list, revoke).
    #[command(subcommand)]
    RegistryToken(registry::TokenCommand),
    /// GitLab administration (webhooks).
    #[command(subcommand)]
    Gitlab(gitlab::Command),
    /// Webhook, work queue, resync loop; until SIGTERM.
    Serve(serve::Args),
    /// Move every account off a Docker host, with its volumes' data.
    Drain(drain::Args),
    /// CPU, memory and GPU hours used and reserved, by account, group or course.
    Usage(usage::Args),
    /// GPU lending: cards and holders, the queue, bookings, extensions.
    #[command(subcommand)]
    Gpu(gpu::Command),
    /// Every account's Docker volumes: size, last use, storage quota.
    Volumes(volumes::Args),
    /// Start again what the idle culler stopped (at the next reconcile).
    Wake(wake::Args),
    /// Archive an account's Docker volumes now (verified, then removed).
    Archive(archive::Args),
    /// Bring an account's archived volumes back, byte for byte (or, with
    /// --discard, delete the archives for good).
    Unarchive(archive::UnarchiveArgs),
    /// Copy the state store to FILE, consistently, while serve runs.
    Backup(backup::BackupArgs),
    /// Put a copy made by `backup` in place of the state store.
    Restore(backup::RestoreArgs),
    /// A shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionArgs),
    /// Write man pages for every command into a directory.
    Man(docs::ManArgs),
    /// Print the JSON Schema of workspace.yaml (or site.yaml).
    Schema(schema::Args),
}

/// Parses the process arguments, runs the command, returns the exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::ERROR
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing(cli.log_format);
    paint::init(cli.color);
    ExitCode::from(run(cli))
}

/// Where a site configuration is looked for when neither `--config` nor
/// `BERTH_CONFIG` names one: the working directory, then the system's.
pub const CONFIG_SEARCH: [&str; 2] = ["site.yaml", "/etc/berth/site.yaml"];

/// The site configuration a command uses: the one given, else the first
/// of [`CONFIG_SEARCH`] that exists. `validate` only takes the one given:
/// a student checking a file must not pick up a site by accident.
fn find_config(given: Option<PathBuf>, command: &Command) -> Option<PathBuf> {
    if given.is_some() || matches!(command, Command::Validate(_)) {
        return given;
    }
    CONFIG_SEARCH
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Says where the site configuration was looked for, for a command that
/// needs one and found none.
fn no_config(what: &str) -> u8 {
    let who = match what {
        "" => "reconciler".to_string(),
        what => format!("reconciler {what}"),
    };
    eprintln!(
        "{who}: no site configuration: --config SITE not given, BERTH_CONFIG not set, \
         and neither ./{} nor {} exists",
        CONFIG_SEARCH[0], CONFIG_SEARCH[1]
    );
    exit::ERROR
}

fn run(mut cli: Cli) -> u8 {
    cli.config = find_config(cli.config.take(), &cli.command);
    match cli.command {
        Command::Validate(args) => validate::run(cli.config.as_deref(), &args),
        Command::Schema(args) => schema::run(&args),
        Command::Completions(args) => docs::completions(&args),
        Command::Man(args) => docs::man(&args),
        Command::Diff(args) => block_on(diff::run(cli.config.as_deref(), &args)),
        Command::Plan(args) => block_on(plan::run(cli.config.as_deref(), &args)),
        Command::Apply(args) => block_on(apply::run(cli.config.as_deref(), &args)),
        Command::Status(args) => block_on(status::run(cli.config.as_deref(), &args)),
        Command::Audit(args) => block_on(audit::run(cli.config.as_deref(), &args)),
        Command::BuildLog(args) => build_log::run(cli.config.as_deref(), &args),
        Command::ExportImage(args) => block_on(export::run(cli.config.as_deref(), &args)),
        Command::Gc(args) => block_on(gc::run(cli.config.as_deref(), &args)),
        Command::Images(args) => block_on(images::run(cli.config.as_deref(), &args)),
        Command::Kubeconfig(args) => block_on(kubeconfig::run(cli.config.as_deref(), &args)),
        Command::RegistryConfig(args) => registry::config(cli.config.as_deref(), &args),
        Command::RegistryToken(command) => registry::token(cli.config.as_deref(), &command),
        Command::Gitlab(command) => block_on(gitlab::run(cli.config.as_deref(), &command)),
        Command::Drain(args) => block_on(drain::run(cli.config.as_deref(), &args)),
        Command::Wake(args) => wake::run(cli.config.as_deref(), &args),
        Command::Archive(args) => block_on(archive::archive(cli.config.as_deref(), &args)),
        Command::Unarchive(args) => block_on(archive::unarchive(cli.config.as_deref(), &args)),
        Command::Usage(args) => block_on(usage::run(cli.config.as_deref(), &args)),
        Command::Volumes(args) => block_on(volumes::run(cli.config.as_deref(), &args)),
        Command::Gpu(cmd) => block_on(gpu::run(cli.config.as_deref(), &cmd)),
        Command::Backup(args) => backup::backup(cli.config.as_deref(), &args),
        Command::Restore(args) => backup::restore(cli.config.as_deref(), &args),
        Command::Serve(args) => block_on(serve::run(cli.config.as_deref(), &args)),
    }
}

fn block_on(fut: impl std::future::Future<Output = u8>) -> u8 {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => {
            let code = rt.block_on(fut);
            // Dropping a runtime waits for every blocking task; one still
            // reading a student's hostile tree must not hold the exit.
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            code
        }
        Err(e) => {
            eprintln!("reconciler: cannot start the async runtime: {e}");
            exit::ERROR
        }
    }
}

/// Loads the site from `--config` and connects everything; exit 2 on failure.
async fn open_context(
    config: Option<&std::path::Path>,
) -> Result<std::sync::Arc<crate::clients::Context>, u8> {
    let Some(path) = config else {
        return Err(no_config(""));
    };
    let site = crate::clients::load_site(path).map_err(|e| {
        eprintln!("{e}");
        exit::ERROR
    })?;
    crate::clients::connect(site)
        .await
        .map(std::sync::Arc::new)
        .map_err(|e| {
            eprintln!("reconciler: {e}");
            exit::ERROR
        })
}

/// The site of `--config` and its state store, for the commands that touch
/// the store only; on failure the reason is printed after `reconciler
/// <what>:` and the exit code returned.
fn open_store(
    config: Option<&std::path::Path>,
    what: &str,
) -> Result<(berth_spec::Site, crate::store::Store), u8> {
    let Some(config) = config else {
        return Err(no_config(what));
    };
    let fail = |e: String| {
        eprintln!("reconciler {what}: {e}");
        exit::ERROR
    };
    let site = crate::clients::load_site(config).map_err(|e| fail(e.to_string()))?;
    let store = crate::store::Store::open(std::path::Path::new(&site.state_dir.value))
        .map_err(|e| fail(e.to_string()))?;
    Ok((site, store))
}

/// The context and the accounts to work on (one, or every known one).
async fn open_with_accounts(
    config: Option<&std::path::Path>,
    only: Option<&str>,
) -> Result<
    (
        std::sync::Arc<crate::clients::Context>,
        Vec<String>,
        crate::clients::Observed,
    ),
    u8,
> {
    let ctx = open_context(config).await?;
    match crate::ops::apply::accounts(&ctx, only).await {
        Ok((accounts, observed)) => Ok((ctx, accounts, observed)),
        Err(e) => {
            eprintln!("reconciler: {e}");
            Err(exit::ERROR)
        }
    }
}

/// Berth's own INFO lines (one per reconcile, rejected revision, failed
/// action) and everyone else's warnings, unless `BERTH_LOG` or, when that
/// is unset, `RUST_LOG` says otherwise.
pub const DEFAULT_LOG: &str = "warn,berth_reconciler=info,berth_webhook=info";

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_env("RUST_LOG"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        // One JSON object per line, for log shippers.
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}
