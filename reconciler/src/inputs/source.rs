//! Git source: workspace repositories as bare repos on disk,
//! `<root>/<account>/<repository>.git`, the account being the namespace.
//! Reads `workspace.yaml` at a commit without a checkout (gix), the head
//! commit's committer, and the commits between two revisions. Read-only.

pub use berth_core::revision::{ContextEntry, Revision, WorkspaceFile};
use std::path::{Path, PathBuf};

mod walk;

/// The file Berth reads from each repository's root.
pub const WORKSPACE_FILE: &str = "workspace.yaml";
/// Blobs larger than this are not even read (the spec limit is far lower).
const MAX_BLOB: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("repository {path}: {source}")]
    Git {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = SourceError> = std::result::Result<T, E>;

/// The files of a directory at a commit, for a build context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContextTree {
    /// No such directory at that commit.
    Missing,
    /// Past one of its limits; the walk stopped there.
    Refused(ContextLimit),
    Entries(Vec<ContextEntry>),
}

/// What a build context read from git may hold. A student's tree is
/// hostile: a few tree objects that each list the next ten times name
/// millions of paths, so the walk counts as it goes and stops at the first
/// limit, before it holds more than `max_entries` paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextLimits {
    /// Sum of the sizes of files and symlinks.
    pub max_bytes: u64,
    /// Entries of any kind (files, links, directories, submodules).
    pub max_entries: usize,
    /// Directories below the context's root.
    pub max_depth: usize,
    /// Longest the walk may take.
    pub max_time: std::time::Duration,
}

/// The limit a context passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextLimit {
    /// Bytes counted when the limit was passed.
    Bytes {
        counted: u64,
        limit: u64,
    },
    Entries(usize),
    Depth(usize),
    /// A path longer than this many bytes.
    PathLength(usize),
    Time(std::time::Duration),
}

impl std::fmt::Display for ContextLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContextLimit::Bytes { counted, limit } => write!(
                f,
                "the context is over {} MiB (counted {} MiB before stopping; the site's limit is {} MiB); list what the build does not need in .dockerignore",
                limit >> 20,
                counted >> 20,
                limit >> 20
            ),
            ContextLimit::Entries(n) => write!(
                f,
                "the context has more than {n} files and directories (the site's limit); build from a smaller directory"
            ),
            ContextLimit::Depth(n) => write!(
                f,
                "the context nests directories more than {n} deep (the site's limit)"
            ),
            ContextLimit::PathLength(n) => {
                write!(f, "the context has a path longer than {n} bytes")
            }
            ContextLimit::Time(t) => write!(
                f,
                "reading the context from git took longer than {} s (the site's limit)",
                t.as_secs()
            ),
        }
    }
}

/// Bare repositories under a root directory.
#[derive(Clone, Debug)]
pub struct LocalSource {
    root: PathBuf,
    repository: String,
}

fn git_err(path: &Path, e: impl std::error::Error + Send + Sync + 'static) -> SourceError {
    SourceError::Git {
        path: path.display().to_string(),
        source: Box::new(e),
    }
}

impl LocalSource {
    pub fn new(root: impl Into<PathBuf>, repository: impl Into<String>) -> Self {
        LocalSource {
            root: root.into(),
            repository: repository.into(),
        }
    }

    pub fn repo_path(&self, account: &str) -> PathBuf {
        self.root
            .join(account)
            .join(format!("{}.git", self.repository))
    }

    /// Accounts that have a workspace repository, sorted.
    pub fn accounts(&self) -> Result<Vec<String>> {
        let entries = std::fs::read_dir(&self.root).map_err(|source| SourceError::Io {
            path: self.root.display().to_string(),
            source,
        })?;
        let mut accounts: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|name| self.repo_path(name).is_dir())
            .collect();
        accounts.sort();
        Ok(accounts)
    }

    fn open(&self, account: &str) -> Result<Option<gix::Repository>> {
        let path = self.repo_path(account);
        if !path.is_dir() {
            return Ok(None);
        }
        gix::open(&path).map(Some).map_err(|e| git_err(&path, e))
    }

    /// The head of the default branch, or `None` for a missing or empty repository.
    pub fn head(&self, account: &str) -> Result<Option<Revision>> {
        let Some(repo) = self.open(account)? else {
            return Ok(None);
        };
        let path = self.repo_path(account);
        let head = match repo.head_id() {
            Ok(id) => id.detach(),
            // An unborn HEAD (no commit yet) is an empty repository, not an error.
            Err(_) => return Ok(None),
        };
        self.read(&repo, account, head)
            .map(Some)
            .map_err(|source| SourceError::Git {
                path: path.display().to_string(),
                source,
            })
    }

    /// The revision `sha`.
    pub fn at(&self, account: &str, sha: &str) -> Result<Option<Revision>> {
        let Some(repo) = self.open(account)? else {
            return Ok(None);
        };
        let path = self.repo_path(account);
        let id = gix::ObjectId::from_hex(sha.as_bytes()).map_err(|e| git_err(&path, e))?;
        if repo.find_commit(id).is_err() {
            return Ok(None);
        }
        self.read(&repo, account, id)
            .map(Some)
            .map_err(|source| SourceError::Git {
                path: path.display().to_string(),
                source,
            })
    }

    fn read(
        &self,
        repo: &gix::Repository,
        account: &str,
        id: gix::ObjectId,
    ) -> std::result::Result<Revision, Box<dyn std::error::Error + Send + Sync>> {
        let commit = repo.find_commit(id)?;
        let committer = commit.committer()?;
        let committer_email = committer.email.to_string().trim().to_string();
        let summary = commit.message()?.summary().to_string();
        let tree = commit.tree()?;
        let file = match tree.lookup_entry_by_path(WORKSPACE_FILE)? {
            None => WorkspaceFile::Missing,
            Some(entry) if entry.mode().is_link() => WorkspaceFile::NotAFile("a symlink"),
            Some(entry) if entry.mode().is_tree() => WorkspaceFile::NotAFile("a directory"),
            Some(entry) if entry.mode().is_commit() => WorkspaceFile::NotAFile("a submodule"),
            Some(entry) if !entry.mode().is_blob() => WorkspaceFile::NotAFile("not a file"),
            Some(entry) => {
                let header = repo.find_header(entry.oid())?;
                if header.size() > MAX_BLOB {
                    WorkspaceFile::TooLarge(header.size())
                } else {
                    WorkspaceFile::Present(entry.object()?.detach().data)
                }
            }
        };
        Ok(Revision {
            repository: format!("{account}/{}", self.repository),
            sha: id.to_string(),
            committer_email,
            summary,
            file,
        })
    }

    /// The tree id of directory `dir` (`""`: the root) at `sha`, `None`
    /// when it is not a directory there. Identifies a build context's
    /// content without reading it.
    pub fn tree_id(&self, account: &str, sha: &str, dir: &str) -> Result<Option<String>> {
        let Some(repo) = self.open(account)? else {
            return Ok(None);
        };
        let path = self.repo_path(account);
        let found = (|| -> std::result::Result<_, Box<dyn std::error::Error + Send + Sync>> {
            let id = gix::ObjectId::from_hex(sha.as_bytes())?;
            let tree = repo.find_commit(id)?.tree()?;
            if dir.is_empty() {
                return Ok(Some(tree.id.to_string()));
            }
            Ok(match tree.lookup_entry_by_path(dir)? {
                Some(e) if e.mode().is_tree() => Some(e.oid().to_string()),
                _ => None,
            })
        })();
        found.map_err(|source| SourceError::Git {
            path: path.display().to_string(),
            source,
        })
    }

    /// Every file and symlink under `dir` at `sha` (paths relative to it),
    /// walked breadth first and stopped at the first of `limits` it passes.
    /// Submodules are left out.
    pub fn context(
        &self,
        account: &str,
        sha: &str,
        dir: &str,
        limits: ContextLimits,
    ) -> Result<ContextTree> {
        let Some(repo) = self.open(account)? else {
            return Ok(ContextTree::Missing);
        };
        let path = self.repo_path(account);
        let read =
            || -> std::result::Result<ContextTree, Box<dyn std::error::Error + Send + Sync>> {
                let id = gix::ObjectId::from_hex(sha.as_bytes())?;
                let root = repo.find_commit(id)?.tree()?;
                let tree = if dir.is_empty() {
                    root
                } else {
                    match root.lookup_entry_by_path(dir)? {
                        Some(e) if e.mode().is_tree() => e.object()?.into_tree(),
                        _ => return Ok(ContextTree::Missing),
                    }
                };
                let mut walk = walk::Bounded::new(&repo, limits);
                let walked = tree.traverse().breadthfirst(&mut walk);
                if let Some(limit) = walk.stopped {
                    return Ok(ContextTree::Refused(limit));
                }
                walked?;
                if let Some(e) = walk.failed {
                    return Err(e);
                }
                let mut out = Vec::with_capacity(walk.found.len());
                for found in walk.found {
                    let data = repo.find_object(found.oid)?.detach().data;
                    out.push(if found.link {
                        ContextEntry::Link {
                            path: found.path,
                            target: String::from_utf8_lossy(&data).into_owned(),
                        }
                    } else {
                        ContextEntry::File {
                            path: found.path,
                            data,
                            executable: found.executable,
                        }
                    });
                }
                Ok(ContextTree::Entries(out))
            };
        read().map_err(|source| SourceError::Git {
            path: path.display().to_string(),
            source,
        })
    }

    /// The commit `git_ref` names: a branch, a full ref
    /// (`refs/merge-requests/7/head`) or a commit id; `None` if none.
    pub fn resolve(&self, account: &str, git_ref: &str) -> Result<Option<String>> {
        let Some(repo) = self.open(account)? else {
            return Ok(None);
        };
        for name in [format!("refs/heads/{git_ref}"), git_ref.to_string()] {
            if let Ok(Some(mut r)) = repo.try_find_reference(name.as_str())
                && let Ok(id) = r.peel_to_id()
            {
                return Ok(Some(id.to_string()));
            }
        }
        if let Ok(id) = gix::ObjectId::from_hex(git_ref.as_bytes())
            && repo.find_commit(id).is_ok()
        {
            return Ok(Some(id.to_string()));
        }
        Ok(None)
    }

    /// Commits reachable from `head` but not from `since`, newest first.
    pub fn commits_since(
        &self,
        account: &str,
        head: &str,
        since: Option<&str>,
    ) -> Result<Vec<String>> {
        let Some(repo) = self.open(account)? else {
            return Ok(Vec::new());
        };
        let path = self.repo_path(account);
        let parse = |s: &str| gix::ObjectId::from_hex(s.as_bytes()).map_err(|e| git_err(&path, e));
        let head = parse(head)?;
        let mut walk = repo.rev_walk([head]);
        if let Some(since) = since {
            let since = parse(since)?;
            if repo.find_commit(since).is_ok() {
                walk = walk.with_hidden([since]);
            }
        }
        let mut out = Vec::new();
        for info in walk.all().map_err(|e| git_err(&path, e))? {
            out.push(info.map_err(|e| git_err(&path, e))?.id.to_string());
            if out.len() >= 10_000 {
                break;
            }
        }
        Ok(out)
    }
}
