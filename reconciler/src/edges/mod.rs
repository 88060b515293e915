//! Layer 7, the edges where people and programs reach Berth: the
//! `reconciler` command ([`cli`]), `serve` (`server`: webhook, queue,
//! resync, HTTP API), the student `console`, logins, the registry's
//! `token` service. Nothing below imports them.

/// Argument parsing and the subcommands.
pub mod cli;
/// The client's address behind trusted proxies.
pub(crate) mod client;
/// The student console served under `/` by `serve`.
pub(crate) mod console;
/// Logging in with the department account: standing, password, throttle.
pub(crate) mod login;
/// Prometheus metrics of the service.
pub(crate) mod metrics;
/// Per-account coalescing work queue.
pub(crate) mod queue;
/// `reconciler serve`: webhook, queue workers, resync, HTTP API.
pub(crate) mod server;
/// The registry token service: who may pull and push what.
pub(crate) mod token;
