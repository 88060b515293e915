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
        if self.entries.is_multiple_of(CLOCK_EVERY) && self.started.elapsed() > self.limits.max_time
        {
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

#[cfg(test)]
mod tests {
    use crate::inputs::source::{ContextLimit, ContextLimits, ContextTree, LocalSource};
    use std::path::Path;
    use std::process::Command;
    use std::time::Duration;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A bare repository `<root>/alice/workspace.git` whose one commit has
    /// `files` files of `size` bytes under `ctx/`, and `ctx/deep` nested
    /// `depth` directories; its commit id.
    fn repo(name: &str, files: usize, size: usize, depth: usize) -> (LocalSource, String) {
        let root = std::env::temp_dir().join(format!("berth-walk-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let work = root.join("work");
        let mut deep = work.join("ctx").join("deep");
        for i in 0..depth {
            deep = deep.join(format!("d{i}"));
        }
        std::fs::create_dir_all(&deep).expect("dirs");
        std::fs::write(deep.join("leaf"), "x").expect("leaf");
        for i in 0..files {
            std::fs::write(work.join("ctx").join(format!("f{i}")), vec![b'x'; size]).expect("file");
        }
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["add", "-A"]);
        git(
            &work,
            &[
                "-c",
                "user.name=T",
                "-c",
                "user.email=t@t",
                "commit",
                "-qm",
                "c",
            ],
        );
        let bare = root.join("alice").join("workspace.git");
        git(
            &root,
            &[
                "clone",
                "-q",
                "--bare",
                &work.display().to_string(),
                &bare.display().to_string(),
            ],
        );
        (
            LocalSource::new(&root, "workspace"),
            git(&work, &["rev-parse", "HEAD"]),
        )
    }

    const ROOMY: ContextLimits = ContextLimits {
        max_bytes: 1 << 20,
        max_entries: 1000,
        max_depth: 64,
        max_time: Duration::from_secs(30),
    };

    fn read(source: &LocalSource, sha: &str, limits: ContextLimits) -> ContextTree {
        source.context("alice", sha, "ctx", limits).expect("read")
    }

    #[test]
    fn a_context_within_its_limits_is_read_whole() {
        let (source, sha) = repo("whole", 5, 10, 3);
        let ContextTree::Entries(entries) = read(&source, &sha, ROOMY) else {
            panic!("refused");
        };
        assert_eq!(entries.len(), 6, "five files and the leaf");
    }

    #[test]
    fn each_limit_stops_the_walk_and_is_named() {
        let (source, sha) = repo("limits", 30, 100, 8);
        let refused = |limits| match read(&source, &sha, limits) {
            ContextTree::Refused(limit) => limit,
            other => panic!("not refused: {other:?}"),
        };
        assert_eq!(
            refused(ContextLimits {
                max_entries: 10,
                ..ROOMY
            }),
            ContextLimit::Entries(10)
        );
        assert_eq!(
            refused(ContextLimits {
                max_depth: 4,
                ..ROOMY
            }),
            ContextLimit::Depth(4)
        );
        assert!(matches!(
            refused(ContextLimits {
                max_bytes: 1000,
                ..ROOMY
            }),
            ContextLimit::Bytes { limit: 1000, .. }
        ));
        // Exactly at the bound is still within it.
        assert!(matches!(
            read(
                &source,
                &sha,
                ContextLimits {
                    max_entries: 40,
                    max_depth: 9,
                    max_bytes: 3001,
                    ..ROOMY
                }
            ),
            ContextTree::Entries(_)
        ));
    }
}
