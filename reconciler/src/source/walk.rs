//! A breadth-first tree walk that counts as it goes and stops at the first
//! limit it passes (entries, depth, bytes, time), so a hostile tree costs
//! at most the limits, never its own size. It records the path, object id
//! and kind of each file and symlink; their contents are read afterwards.

use super::{ContextLimit, ContextLimits};
use gix::bstr::{BStr, BString, ByteSlice, ByteVec};
use gix::objs::tree::EntryRef;
use gix::traverse::tree::{Visit, visit::Action};
use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::time::Instant;

/// The clock is read once per this many entries.
const CLOCK_EVERY: usize = 256;
/// Longest path kept, in bytes: every queued directory holds its path, so
/// this times `max_entries` bounds the walk's memory (Linux's own limit
/// for a path is 4096).
pub(super) const MAX_PATH: usize = 1024;

/// One file or symlink found by the walk.
pub(super) struct Found {
    pub path: String,
    pub oid: gix::ObjectId,
    pub link: bool,
    pub executable: bool,
}

pub(super) struct Bounded<'r> {
    repo: &'r gix::Repository,
    limits: ContextLimits,
    started: Instant,
    entries: usize,
    bytes: u64,
    path_deque: VecDeque<BString>,
    path: BString,
    pub found: Vec<Found>,
    /// The limit that stopped the walk.
    pub stopped: Option<ContextLimit>,
    /// A lookup that failed inside the walk (the traversal only sees a cancel).
    pub failed: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl<'r> Bounded<'r> {
    pub fn new(repo: &'r gix::Repository, limits: ContextLimits) -> Self {
        Bounded {
            repo,
            limits,
            started: Instant::now(),
            entries: 0,
            bytes: 0,
            path_deque: VecDeque::new(),
            path: BString::default(),
            found: Vec::new(),
            stopped: None,
            failed: None,
        }
    }

    fn stop(&mut self, limit: ContextLimit) -> Action {
        self.stopped = Some(limit);
        ControlFlow::Break(())
    }

    /// Counts one entry at the current path; `Some` ends the walk.
    fn count(&mut self) -> Option<Action> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Some(self.stop(ContextLimit::Entries(self.limits.max_entries)));
        }
        if self.entries.is_multiple_of(CLOCK_EVERY) && self.started.elapsed() > self.limits.max_time {
            return Some(self.stop(ContextLimit::Time(self.limits.max_time)));
        }
        if self.path.len() > MAX_PATH {
            return Some(self.stop(ContextLimit::PathLength(MAX_PATH)));
        }
        None
    }

    fn depth(&self) -> usize {
        self.path.split_str("/").count()
    }

    fn push_element(&mut self, name: &BStr) {
        if name.is_empty() {
            return;
        }
        if !self.path.is_empty() {
            self.path.push(b'/');
        }
        self.path.push_str(name);
    }

    fn pop_element(&mut self) {
        match self.path.rfind_byte(b'/') {
            Some(pos) => self.path.resize(pos, 0),
            None => self.path.clear(),
        }
    }
}

impl Visit for Bounded<'_> {
    fn pop_back_tracked_path_and_set_current(&mut self) {
        self.path = self.path_deque.pop_back().unwrap_or_default();
    }

    fn pop_front_tracked_path_and_set_current(&mut self) {
        self.path = self.path_deque.pop_front().unwrap_or_default();
    }

    fn push_back_tracked_path_component(&mut self, component: &BStr) {
        self.push_element(component);
        self.path_deque.push_back(self.path.clone());
    }

    fn push_path_component(&mut self, component: &BStr) {
        self.push_element(component);
    }

    fn pop_path_component(&mut self) {
        self.pop_element();
    }

    fn visit_tree(&mut self, _entry: &EntryRef<'_>) -> Action {
        if let Some(stop) = self.count() {
            return stop;
        }
        // The directory's own depth: its entries sit one deeper.
        if self.depth() > self.limits.max_depth {
            return self.stop(ContextLimit::Depth(self.limits.max_depth));
        }
        ControlFlow::Continue(true)
    }

    fn visit_nontree(&mut self, entry: &EntryRef<'_>) -> Action {
        if let Some(stop) = self.count() {
            return stop;
        }
        if !(entry.mode.is_blob() || entry.mode.is_link()) {
            // A submodule: not part of a build context.
            return ControlFlow::Continue(true);
        }
        let size = match self.repo.find_header(entry.oid) {
            Ok(h) => h.size(),
            Err(e) => {
                self.failed = Some(Box::new(e));
                return ControlFlow::Break(());
            }
        };
        self.bytes = self.bytes.saturating_add(size);
        if self.bytes > self.limits.max_bytes {
            return self.stop(ContextLimit::Bytes {
                counted: self.bytes,
                limit: self.limits.max_bytes,
            });
        }
        self.found.push(Found {
            path: self.path.to_str_lossy().into_owned(),
            oid: entry.oid.to_owned(),
            link: entry.mode.is_link(),
            executable: entry.mode.is_executable(),
        });
        ControlFlow::Continue(true)
    }
}
