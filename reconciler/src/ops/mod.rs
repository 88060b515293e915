//! Layer 6: what Berth does with many accounts or over time, each beside
//! the others on top of the engine: [`apply`] many accounts,
//! [`discovery`] of accounts, [`poll`] for pushes, image [`gc`], [`drain`]
//! of a host, [`cull`] of idle containers, archiving [`dormancy`], the
//! registry [`catalogue`],
//! the volumes' [`storage`], [`usage`] accounting,
//! plan [`preview`]s, the read model ([`view`]) and how plans read
//! ([`report`]). Imports the layers below only.

/// Many accounts at once, bounded.
pub mod apply;
/// The department registry's image catalogue.
pub mod catalogue;
/// Idle culling: stop what nobody uses.
pub mod cull;
/// Which accounts exist; fresh repository copies.
pub mod discovery;
/// Dormant workspaces: told, archived, brought back.
pub mod dormancy;
/// Moving every account off a Docker host, with its volumes.
pub mod drain;
/// Image garbage collection.
pub mod gc;
/// GPU lending: grants ending, warnings, the queue served.
pub mod lending;
/// Mail to students: the SMTP mailer and the digests due.
pub mod notify;
/// Noticing pushes by polling where webhooks cannot reach.
pub mod poll;
/// Plan previews of branches and merge requests, rendered for GitLab.
pub mod preview;
/// Plans and reports as text and as the stable JSON.
pub mod report;
/// Measuring the accounts' volumes; what a workspace declares.
pub mod storage;
/// Usage accounting: sampling rounds and reports.
pub mod usage;
/// The read model of an account: status, the API, the console.
pub mod view;
