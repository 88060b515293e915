//! What a workspace repository holds at a commit, as the core reads it:
//! the commit (`Revision`), its `workspace.yaml` (`WorkspaceFile`) and the
//! entries of a build context (`ContextEntry`). Reading them from git is
//! the reconciler's `source` module.

/// What the repository holds at a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkspaceFile {
    /// No `workspace.yaml`. Not "no containers": a vanished file changes
    /// nothing that runs (removing everything takes `containers: []`).
    Missing,
    /// `workspace.yaml` is not a regular file: a symlink (even to
    /// `/etc/passwd`), a directory or a submodule. Refused, never followed.
    NotAFile(&'static str),
    Present(Vec<u8>),
    /// Too large to read; rejected without parsing.
    TooLarge(u64),
}

/// One commit of a workspace repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revision {
    /// `<account>/<repository>`.
    pub repository: String,
    pub sha: String,
    pub committer_email: String,
    pub summary: String,
    pub file: WorkspaceFile,
}

/// One entry of a build context read from git.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContextEntry {
    File {
        path: String,
        data: Vec<u8>,
        executable: bool,
    },
    Link {
        path: String,
        target: String,
    },
}
