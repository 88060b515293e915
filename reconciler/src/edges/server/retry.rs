//! Retries of failed reconciles (LDAP, dockerd, GitLab or the store were
//! unreachable): each account waits 1 s, 2 s, 4 s, … (at most 5 minutes)
//! before its next try. An account that failed on a dependency every
//! account shares (LDAP, GitLab, the registry, the store) is retried at once
//! when any reconcile succeeds again, since that proves the dependency is
//! back; a success clears an account's count. So an outage's backoff never
//! delays the pushes that follow it, and an account failing on its own
//! (its Docker host, its repository) does not spin on others' successes.

use berth_webhook::SyncRequest;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// What waits to be tried again: per account, its failed attempts so far
/// and the push it keeps (`None` for a resync).
#[derive(Default)]
pub struct Retries {
    waiting: Mutex<BTreeMap<String, Waiting>>,
}

struct Waiting {
    attempts: u32,
    push: Option<SyncRequest>,
    /// It failed on a dependency every account shares.
    shared: bool,
}

impl Retries {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Waiting>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a failure (`shared`: of a dependency every account shares);
    /// returns the attempt number and how long to wait.
    pub fn failed(
        &self,
        account: &str,
        push: Option<SyncRequest>,
        shared: bool,
    ) -> (u32, Duration) {
        let mut w = self.lock();
        let entry = w.entry(account.to_string()).or_insert(Waiting {
            attempts: 0,
            push: None,
            shared,
        });
        entry.attempts += 1;
        entry.shared = shared;
        // A newer push replaces a retried one; a resync keeps the push.
        if push.is_some() {
            entry.push = push;
        }
        (entry.attempts, backoff(entry.attempts))
    }

    /// The backoff of `account` ran out: its work, unless it already ran.
    pub fn due(&self, account: &str) -> Option<Option<SyncRequest>> {
        self.lock().get(account).map(|w| w.push.clone())
    }

    /// A reconcile of `account` succeeded: its count is cleared, and the
    /// accounts waiting on a shared dependency are returned to be tried now
    /// (once: they wait again only if they fail again).
    pub fn succeeded(&self, account: &str) -> Vec<(String, Option<SyncRequest>)> {
        let mut w = self.lock();
        w.remove(account);
        w.iter_mut()
            .filter(|(_, w)| w.shared)
            .map(|(a, w)| {
                w.shared = false;
                (a.clone(), w.push.clone())
            })
            .collect()
    }
}

/// 1 s, 2 s, 4 s, … capped at 5 minutes.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(8)).min(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(account: &str, rev: &str) -> SyncRequest {
        SyncRequest {
            account: account.into(),
            repository: "workspace".into(),
            path: None,
            project_id: None,
            revision: Some(rev.into()),
            pusher: None,
            pusher_id: None,
            delivery: None,
            preview: None,
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(30), Duration::from_secs(256));
    }

    #[test]
    fn a_recovered_dependency_retries_every_waiting_account_at_once() {
        let r = Retries::default();
        for _ in 0..5 {
            r.failed("alice", Some(push("alice", "a1")), true);
        }
        let (attempt, wait) = r.failed("bob", None, true);
        assert_eq!((attempt, wait), (1, Duration::from_secs(1)));
        assert_eq!(r.failed("alice", None, true).1, Duration::from_secs(32));
        // dave's own Docker host is down: others' successes prove nothing.
        r.failed("dave", None, false);
        // carol's reconcile works: LDAP is back. alice's push waited 32 s
        // before; it goes now, with its push.
        let now = r.succeeded("carol");
        assert_eq!(
            now,
            vec![
                ("alice".to_string(), Some(push("alice", "a1"))),
                ("bob".to_string(), None)
            ]
        );
        // Released once, not on every success.
        assert!(r.succeeded("erin").is_empty());
        // alice succeeds: her count starts over.
        r.succeeded("alice");
        assert_eq!(r.due("alice"), None);
        assert_eq!(r.failed("alice", None, true), (1, Duration::from_secs(1)));
    }
}
