//! The build context (pure): the files of the context directory as git
//! holds them, less what `.dockerignore` excludes (Docker's rules: a
//! pattern matches a path or any directory above it, `!` re-includes, the
//! last match wins, the Dockerfile and `.dockerignore` are always sent),
//! as a tar with fixed owners and times so one tree gives one tar.

use crate::revision::ContextEntry;
use globset::{GlobSet, GlobSetBuilder};

/// Largest `.dockerignore` read, and most patterns taken from it: every
/// path of the context is matched against them.
pub const MAX_IGNORE_BYTES: usize = 64 * 1024;
pub const MAX_IGNORE_PATTERNS: usize = 1000;

/// `.dockerignore` patterns, as one set so a path is matched against all
/// of them at once; invalid ones are skipped, as Berth must not fail a
/// build over a comment typo.
pub struct Ignore {
    set: GlobSet,
    /// Whether pattern `i` of the set re-includes (`!`).
    include: Vec<bool>,
}

/// Why a `.dockerignore` was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    #[error(".dockerignore is over {} KiB (Berth's limit)", MAX_IGNORE_BYTES / 1024)]
    TooLarge,
    #[error(".dockerignore has more than {MAX_IGNORE_PATTERNS} patterns (Berth's limit)")]
    TooManyPatterns,
}

impl Ignore {
    pub fn parse(text: &str) -> Result<Ignore, IgnoreError> {
        if text.len() > MAX_IGNORE_BYTES {
            return Err(IgnoreError::TooLarge);
        }
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        if lines.len() > MAX_IGNORE_PATTERNS {
            return Err(IgnoreError::TooManyPatterns);
        }
        let mut set = GlobSetBuilder::new();
        let mut include = Vec::new();
        for l in lines {
            let (re_include, p) = match l.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, l),
            };
            let p = p.trim_start_matches("./").trim_start_matches('/');
            let p = p.trim_end_matches('/');
            if let Ok(glob) = globset::GlobBuilder::new(p).literal_separator(true).build() {
                set.add(glob);
                include.push(re_include);
            }
        }
        Ok(Ignore {
            set: set.build().unwrap_or_else(|_| GlobSet::empty()),
            include,
        })
    }

    fn none() -> Ignore {
        Ignore {
            set: GlobSet::empty(),
            include: Vec::new(),
        }
    }

    /// Whether `path` is left out of the context: the last pattern that
    /// matches the path or any directory above it decides.
    pub fn excludes(&self, path: &str) -> bool {
        let mut last: Option<usize> = None;
        let mut end = 0;
        for part in path.split('/') {
            end += part.len();
            if let Some(i) = self.set.matches(&path[..end]).into_iter().max() {
                last = last.max(Some(i));
            }
            end += 1;
        }
        last.is_some_and(|i| !self.include[i])
    }
}

/// Why a context could not be packed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error(transparent)]
    Ignore(#[from] IgnoreError),
    #[error("packing the context: {0}")]
    Io(#[from] std::io::Error),
}

/// The tar of `entries` less what `.dockerignore` (if among them)
/// excludes; `dockerfile` is always kept.
pub fn tar(entries: &[ContextEntry], dockerfile: &str) -> Result<Vec<u8>, PackError> {
    let ignore = match entries.iter().find_map(|e| match e {
        ContextEntry::File { path, data, .. } if path == ".dockerignore" => Some(data),
        _ => None,
    }) {
        Some(data) if data.len() > MAX_IGNORE_BYTES => return Err(IgnoreError::TooLarge.into()),
        Some(data) => Ignore::parse(&String::from_utf8_lossy(data))?,
        None => Ignore::none(),
    };
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let path = match entry {
            ContextEntry::File { path, .. } | ContextEntry::Link { path, .. } => path,
        };
        if path != dockerfile && path != ".dockerignore" && ignore.excludes(path) {
            continue;
        }
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        match entry {
            ContextEntry::File {
                data, executable, ..
            } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if *executable { 0o755 } else { 0o644 });
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, path, data.as_slice())?;
            }
            ContextEntry::Link { target, .. } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, path, target)?;
            }
        }
    }
    Ok(builder.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, data: &str) -> ContextEntry {
        ContextEntry::File {
            path: path.into(),
            data: data.as_bytes().to_vec(),
            executable: false,
        }
    }

    fn names(tar_bytes: &[u8]) -> Vec<String> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn dockerignore_follows_dockers_rules() {
        let ignore =
            Ignore::parse("# comment\nsecrets\n*.log\n!keep.log\nbuild/**/tmp\n").expect("small");
        assert!(ignore.excludes("secrets"));
        assert!(
            ignore.excludes("secrets/key.pem"),
            "a directory takes its files"
        );
        assert!(ignore.excludes("a.log"));
        assert!(!ignore.excludes("keep.log"), "`!` re-includes");
        assert!(!ignore.excludes("sub/a.log"), "`*` does not cross `/`");
        assert!(ignore.excludes("build/x/y/tmp/z"));
        assert!(!ignore.excludes("src/main.rs"));
        let later = Ignore::parse("!keep\nkeep\n").expect("small");
        assert!(later.excludes("keep/x"), "the last match wins");
    }

    #[test]
    fn a_dockerignore_past_its_bounds_is_refused() {
        let many: String = (0..=MAX_IGNORE_PATTERNS)
            .map(|i| format!("p{i}\n"))
            .collect();
        assert_eq!(
            Ignore::parse(&many).err(),
            Some(IgnoreError::TooManyPatterns)
        );
        let big = "#".repeat(MAX_IGNORE_BYTES + 1);
        assert_eq!(Ignore::parse(&big).err(), Some(IgnoreError::TooLarge));
        let entries = vec![
            file(".dockerignore", &big),
            file("Dockerfile", "FROM scratch\n"),
        ];
        assert!(matches!(
            tar(&entries, "Dockerfile"),
            Err(PackError::Ignore(IgnoreError::TooLarge))
        ));
    }

    #[test]
    fn the_dockerfile_is_always_sent_and_the_tar_is_reproducible() {
        let entries = vec![
            file(".dockerignore", "*\n"),
            file("Dockerfile", "FROM scratch\n"),
            file("big.bin", "x"),
            ContextEntry::Link {
                path: "link".into(),
                target: "/etc/passwd".into(),
            },
        ];
        let a = tar(&entries, "Dockerfile").expect("tar");
        assert_eq!(names(&a), [".dockerignore", "Dockerfile"]);
        assert_eq!(a, tar(&entries, "Dockerfile").expect("tar"));
        let all = tar(&entries[1..], "Dockerfile").expect("tar");
        assert_eq!(names(&all), ["Dockerfile", "big.bin", "link"]);
    }
}
