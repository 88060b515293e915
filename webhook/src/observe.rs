//! What became of each delivery, typed: the webhook reports it to an
//! [`Observer`] (the reconciler's metrics), and keeps no counters of its
//! own. [`Counts`] is an in-memory observer for tests and tools.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// How a delivery was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// A push to a workspace's default branch, handed to the sink (202).
    Queued,
    /// Seen before (`X-Gitlab-Event-UUID` / `Idempotency-Key`) (200).
    Duplicate,
    /// An event or branch Berth does not act on (200).
    Ignored,
    /// A push to a project that is no workspace of this site (200).
    NotAWorkspace,
    /// Wrong or missing secret (401).
    Unauthorized,
    /// Not JSON, or not the event it says it is (400).
    Malformed,
    /// Over the body limit (413).
    TooLarge,
}

impl Outcome {
    /// A short, bounded label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Queued => "queued",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::NotAWorkspace => "not_a_workspace",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Malformed => "malformed",
            Outcome::TooLarge => "too_large",
        }
    }
}

/// Told the outcome of every delivery. Must not block.
pub trait Observer: Send + Sync + 'static {
    fn delivery(&self, outcome: Outcome);
}

/// Counts outcomes in memory.
#[derive(Default)]
pub struct Counts(Mutex<BTreeMap<Outcome, u64>>);

impl Counts {
    pub fn get(&self, outcome: Outcome) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&outcome)
            .copied()
            .unwrap_or(0)
    }
}

impl Observer for Counts {
    fn delivery(&self, outcome: Outcome) {
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(outcome)
            .or_default() += 1;
    }
}
