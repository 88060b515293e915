//! The build context (pure): the files of the context directory as git
//! holds them, less what `.dockerignore` excludes (Docker's rules: a
//! pattern matches a path or any directory above it, `!` re-includes, the
//! last match wins, the Dockerfile and `.dockerignore` are always sent),
//! as a tar with fixed owners and times so one tree gives one tar.

use crate::source::ContextEntry;
use globset::GlobMatcher;

struct Pattern {
    matcher: GlobMatcher,
    include: bool,
}

/// `.dockerignore` patterns; invalid ones are skipped, as Docker skips
/// nothing silently but Berth must not fail a build over a comment typo.
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    pub fn parse(text: &str) -> Ignore {
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let (include, p) = match l.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, l),
                };
                let p = p.trim_start_matches("./").trim_start_matches('/');
                let p = p.trim_end_matches('/');
                let glob = globset::GlobBuilder::new(p)
                    .literal_separator(true)
                    .build()
                    .ok()?;
                Some(Pattern {
                    matcher: glob.compile_matcher(),
                    include,
                })
            })
            .collect();
        Ignore { patterns }
    }

    /// Whether `path` is left out of the context.
    pub fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for p in &self.patterns {
            // The path itself or any directory above it.
            let mut hit = false;
            let mut prefix = String::new();
            for part in path.split('/') {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(part);
                if p.matcher.is_match(&prefix) {
                    hit = true;
                    break;
                }
            }
            if hit {
                excluded = !p.include;
            }
        }
        excluded
    }
}

/// The tar of `entries` less what `.dockerignore` (if among them)
/// excludes; `dockerfile` is always kept.
pub fn tar(entries: &[ContextEntry], dockerfile: &str) -> std::io::Result<Vec<u8>> {
    let ignore = entries
        .iter()
        .find_map(|e| match e {
            ContextEntry::File { path, data, .. } if path == ".dockerignore" => {
                Some(Ignore::parse(&String::from_utf8_lossy(data)))
            }
            _ => None,
        })
        .unwrap_or(Ignore { patterns: vec![] });
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
    builder.into_inner()
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
        let ignore = Ignore::parse("# comment\nsecrets\n*.log\n!keep.log\nbuild/**/tmp\n");
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
