//! The per-account coalescing work queue of the serve loop. At most one
//! reconcile per account is in flight; requests arriving meanwhile collapse
//! into one pending entry that keeps the newest revision. A push after a
//! quiet spell runs at once; pushes inside a burst wait a short settle time
//! (reset by each push, capped), so a burst costs two reconciles at most:
//! its first push and its last. Memory is bounded by the number of accounts, whatever the
//! flood of webhook deliveries.

use crate::edges::metrics::Metrics;
use berth_webhook::{SyncRequest, SyncSink};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Work for one account: the newest push (if any came) or a plain resync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Work {
    pub account: String,
    /// The newest push request; `None` for a resync.
    pub push: Option<SyncRequest>,
    /// How many requests were coalesced into this one.
    pub coalesced: usize,
    first_seen: Instant,
    ready_at: Instant,
}

#[derive(Default)]
struct State {
    pending: BTreeMap<String, Work>,
    order: VecDeque<String>,
    in_flight: HashSet<String>,
    /// When each account last got a push: a push after a quiet spell runs
    /// at once, one inside a burst waits for the burst to end.
    last_push: BTreeMap<String, Instant>,
    closed: bool,
}

pub struct Queue {
    state: Mutex<State>,
    notify: Notify,
    metrics: Arc<Metrics>,
    settle: Duration,
}

/// A burst is never held back longer than this.
const MAX_SETTLE: Duration = Duration::from_secs(1);

impl Queue {
    /// A queue whose bursts settle for 250 ms: long enough that a burst
    /// delivered by a busy GitLab (or a loaded machine) is not split in two,
    /// short against a container recreation. A lone push never waits.
    pub fn new(metrics: Arc<Metrics>) -> Arc<Queue> {
        Self::with_settle(metrics, Duration::from_millis(250))
    }

    pub fn with_settle(metrics: Arc<Metrics>, settle: Duration) -> Arc<Queue> {
        Arc::new(Queue {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            metrics,
            settle,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a resync of `account` unless work is already pending for it.
    pub fn resync(&self, account: &str) {
        self.add(account, None, false);
    }

    /// Queues again a push whose reconcile failed. Any push pending for the
    /// account arrived after this one was taken, so it is newer and wins: a
    /// retry never brings back an older revision.
    pub fn retry(&self, push: SyncRequest) {
        let account = push.account.clone();
        self.add(&account, Some(push), true);
    }

    fn add(&self, account: &str, push: Option<SyncRequest>, retry: bool) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        let now = Instant::now();
        let in_burst = push.is_some()
            && st
                .last_push
                .get(account)
                .is_some_and(|at| now.duration_since(*at) < self.settle);
        if push.is_some() {
            st.last_push.insert(account.to_string(), now);
            if st.last_push.len() > 100_000 {
                let settle = self.settle;
                st.last_push
                    .retain(|_, at| now.duration_since(*at) < settle);
            }
        }
        let settle = if in_burst {
            self.settle
        } else {
            Duration::ZERO
        };
        match st.pending.get_mut(account) {
            Some(work) => {
                work.coalesced += 1;
                // A push always wins over a resync; a newer push over an
                // older one; a retried push over nothing but a resync.
                if push.is_some() && !(retry && work.push.is_some()) {
                    work.push = push;
                    work.ready_at = (now + settle).min(work.first_seen + MAX_SETTLE);
                }
            }
            None => {
                let work = Work {
                    account: account.to_string(),
                    push,
                    coalesced: 1,
                    first_seen: now,
                    ready_at: now + settle,
                };
                st.pending.insert(account.to_string(), work);
                st.order.push_back(account.to_string());
            }
        }
        self.metrics.set_queue_depth(st.pending.len());
        drop(st);
        self.notify.notify_one();
    }

    /// Waits for the next account with pending work and nothing in flight;
    /// `None` once the queue is closed and drained of runnable work.
    pub async fn next(&self) -> Option<Work> {
        loop {
            let notified = self.notify.notified();
            let wake_at = {
                let mut st = self.lock();
                let State {
                    pending,
                    order,
                    in_flight,
                    closed,
                    ..
                } = &mut *st;
                let now = Instant::now();
                let runnable = |a: &String| {
                    !in_flight.contains(a) && pending.get(a).is_some_and(|w| w.ready_at <= now)
                };
                if let Some(pos) = order.iter().position(runnable) {
                    let account = order.remove(pos).unwrap_or_default();
                    if let Some(work) = pending.remove(&account) {
                        in_flight.insert(account);
                        self.metrics.set_queue_depth(pending.len());
                        return Some(work);
                    }
                }
                if *closed {
                    return None;
                }
                order
                    .iter()
                    .filter(|a| !in_flight.contains(*a))
                    .filter_map(|a| pending.get(a).map(|w| w.ready_at))
                    .min()
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Marks `account`'s reconcile finished, releasing any pending work for it.
    pub fn done(&self, account: &str) {
        self.lock().in_flight.remove(account);
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// Stops accepting work; workers drain what is runnable, then get `None`.
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.pending.clear();
        st.order.clear();
        drop(st);
        self.notify.notify_waiters();
    }

    #[cfg(test)]
    pub fn depth(&self) -> usize {
        self.lock().pending.len()
    }
}

impl SyncSink for Queue {
    fn submit(&self, request: SyncRequest) {
        let account = request.account.clone();
        self.add(&account, Some(request), false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(account: &str, rev: &str) -> SyncRequest {
        SyncRequest {
            account: account.into(),
            repository: "workspace".into(),
            path: Some(format!("{account}/workspace")),
            project_id: Some(1),
            revision: Some(rev.into()),
            pusher: Some(account.into()),
            pusher_id: Some(1),
            delivery: None,
            preview: None,
        }
    }

    #[tokio::test]
    async fn a_burst_coalesces_into_the_newest_revision() {
        let q = Queue::new(Arc::new(Metrics::default()));
        for i in 0..100 {
            q.submit(push("alice", &format!("r{i}")));
        }
        q.resync("alice");
        assert_eq!(q.depth(), 1);
        let w = q.next().await.expect("work");
        assert_eq!(w.push.and_then(|p| p.revision).as_deref(), Some("r99"));
        assert_eq!(w.coalesced, 101);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_push_runs_at_once_and_a_burst_settles() {
        let q = Queue::with_settle(Arc::new(Metrics::default()), Duration::from_millis(50));
        let t = Instant::now();
        q.submit(push("alice", "r1"));
        assert_eq!(
            q.next()
                .await
                .and_then(|w| w.push)
                .and_then(|p| p.revision)
                .as_deref(),
            Some("r1")
        );
        assert_eq!(t.elapsed(), Duration::ZERO, "no wait after a quiet spell");
        q.done("alice");
        tokio::time::sleep(Duration::from_millis(10)).await;
        q.submit(push("alice", "r2"));
        let started = Instant::now();
        let next = {
            let q = q.clone();
            tokio::spawn(async move { q.next().await })
        };
        tokio::time::sleep(Duration::from_millis(40)).await;
        q.submit(push("alice", "r3"));
        let w = next.await.expect("join").expect("work");
        assert_eq!(w.push.and_then(|p| p.revision).as_deref(), Some("r3"));
        assert!(
            started.elapsed() >= Duration::from_millis(90),
            "{:?}",
            started.elapsed()
        );
        // A resync does not wait.
        q.done("alice");
        q.resync("bob");
        let t = Instant::now();
        assert_eq!(q.next().await.expect("work").account, "bob");
        assert_eq!(t.elapsed(), Duration::ZERO);
    }

    #[tokio::test]
    async fn one_reconcile_in_flight_per_account() {
        let q = Queue::new(Arc::new(Metrics::default()));
        q.submit(push("alice", "r1"));
        let first = q.next().await.expect("work");
        q.submit(push("alice", "r2"));
        q.submit(push("bob", "b1"));
        // alice is in flight: bob is next even though alice queued first.
        assert_eq!(q.next().await.expect("work").account, "bob");
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { q.next().await })
        };
        tokio::task::yield_now().await;
        assert!(
            !waiter.is_finished(),
            "alice's second request waits for the first"
        );
        q.done(&first.account);
        let second = waiter.await.expect("join").expect("work");
        assert_eq!(second.push.and_then(|p| p.revision).as_deref(), Some("r2"));
    }

    #[tokio::test]
    async fn a_retried_older_push_never_replaces_a_newer_one() {
        let q = Queue::new(Arc::new(Metrics::default()));
        q.submit(push("alice", "r1"));
        let first = q.next().await.expect("work");
        // r2 arrives while r1's reconcile fails.
        q.submit(push("alice", "r2"));
        q.done("alice");
        // The server re-queued a failed push through `submit` before: the
        // older r1 then replaced the waiting r2.
        q.retry(first.push.clone().expect("push"));
        let next = q.next().await.expect("work");
        assert_eq!(
            next.push.and_then(|p| p.revision).as_deref(),
            Some("r2"),
            "the newer push waits, not the retried older one"
        );
        q.done("alice");
        // With nothing newer pending, the retry itself runs.
        q.retry(first.push.expect("push"));
        let again = q.next().await.expect("work");
        assert_eq!(again.push.and_then(|p| p.revision).as_deref(), Some("r1"));
    }

    #[tokio::test]
    async fn closing_wakes_idle_workers() {
        let q = Queue::new(Arc::new(Metrics::default()));
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { q.next().await })
        };
        tokio::task::yield_now().await;
        q.close();
        assert_eq!(waiter.await.expect("join"), None);
        q.resync("alice");
        assert_eq!(q.depth(), 0, "closed queues take nothing");
    }
}
