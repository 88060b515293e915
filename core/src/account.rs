//! An account as the department's directory describes it: the plain
//! record the admission rules judge. Looking it up is the reconciler's
//! `identity` module.

/// An account as the directory describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub dn: String,
    /// What stays the same for this entry and only this one: its
    /// `entryUUID` where the directory keeps one, else its DN. Credentials
    /// Berth issues are bound to it, so a name given to someone else later
    /// inherits none of them.
    pub entry: String,
    pub mail: Option<String>,
    pub groups: Vec<String>,
    pub disabled: bool,
    /// The entry's `uidNumber` and `gidNumber` (a posixAccount), when it has
    /// them: what a container mounting the student's home directory runs as.
    pub posix: Option<Posix>,
}

/// A directory entry's numeric identity on the department's hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Posix {
    pub uid: u32,
    pub gid: u32,
}
