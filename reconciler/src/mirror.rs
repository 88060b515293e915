//! Local mirrors of GitLab repositories, so the git source reads every
//! workspace from disk: `<state_dir>/mirrors/<account>/<repository>.git`,
//! cloned once and fetched before each reconcile. Uses the `git` command
//! (already required for local clones); the token travels in an HTTP header
//! set through the environment, never on a command line or in a file.

use std::path::{Path, PathBuf};
use std::process::Stdio;

#[derive(Debug, thiserror::Error)]
#[error("fetching {url}: {message}")]
pub struct FetchError {
    pub url: String,
    pub message: String,
}

#[derive(Clone, Debug)]
pub struct Mirrors {
    root: PathBuf,
    repository: String,
    url_template: String,
    token: Option<String>,
}

impl Mirrors {
    /// `url_template` holds `{account}` and `{repository}`.
    pub fn new(
        root: impl Into<PathBuf>,
        repository: &str,
        url_template: &str,
        token: Option<String>,
    ) -> Mirrors {
        Mirrors {
            root: root.into(),
            repository: repository.to_string(),
            url_template: url_template.to_string(),
            token,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn url(&self, account: &str) -> String {
        self.url_template
            .replace("{account}", account)
            .replace("{repository}", &self.repository)
    }

    /// Clones or fetches `account`'s repository into its mirror.
    pub async fn fetch(&self, account: &str) -> Result<(), FetchError> {
        let url = self.url(account);
        let dir = self
            .root
            .join(account)
            .join(format!("{}.git", self.repository));
        let mut cmd = tokio::process::Command::new("git");
        if dir.join("HEAD").exists() {
            cmd.arg("-C").arg(&dir).args([
                "fetch",
                "--prune",
                "--quiet",
                "origin",
                "+refs/heads/*:refs/heads/*",
            ]);
        } else {
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent).map_err(|e| FetchError {
                    url: url.clone(),
                    message: e.to_string(),
                })?;
            }
            cmd.args(["clone", "--mirror", "--quiet", &url]).arg(&dir);
        }
        if let Some(token) = &self.token {
            // git reads these as `-c http.extraHeader=…` without exposing
            // the token in the process list.
            cmd.env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env(
                    "GIT_CONFIG_VALUE_0",
                    format!("Authorization: Basic {}", basic("oauth2", token)),
                );
        }
        cmd.env("GIT_TERMINAL_PROMPT", "0").stdin(Stdio::null());
        let out = cmd.output().await.map_err(|e| FetchError {
            url: url.clone(),
            message: e.to_string(),
        })?;
        if out.status.success() {
            Ok(())
        } else {
            let message = String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("git failed")
                .to_string();
            Err(FetchError { url, message })
        }
    }
}

/// base64 of `user:password` (RFC 4648, with padding).
fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_is_standard_base64() {
        assert_eq!(basic("oauth2", "x"), "b2F1dGgyOng=");
        assert_eq!(basic("a", "bc"), "YTpiYw==");
        assert_eq!(basic("ab", "c"), "YWI6Yw==");
    }

    #[tokio::test]
    async fn clones_then_fetches_new_commits() {
        let tmp = std::env::temp_dir().join(format!("berth-mirror-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let upstream = tmp.join("up/alice/workspace.git");
        let work = tmp.join("work");
        let git = |dir: &Path, args: &[&str]| {
            let ok = std::process::Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(args)
                .status()
                .map(|s| s.success());
            assert_eq!(ok.ok(), Some(true), "git {args:?}");
        };
        std::fs::create_dir_all(&upstream).expect("dirs");
        std::fs::create_dir_all(&work).expect("dirs");
        git(&upstream, &["init", "-q", "--bare", "-b", "main"]);
        git(&work, &["init", "-q", "-b", "main"]);
        let commit_and_push = |message: &str| {
            git(
                &work,
                &[
                    "-c",
                    "user.name=a",
                    "-c",
                    "user.email=a@x",
                    "commit",
                    "-q",
                    "--allow-empty",
                    "-m",
                    message,
                ],
            );
            git(
                &work,
                &[
                    "push",
                    "-q",
                    upstream.to_str().unwrap_or_default(),
                    "HEAD:main",
                ],
            );
        };
        commit_and_push("one");
        let template = format!("file://{}/up/{{account}}/{{repository}}.git", tmp.display());
        let mirrors = Mirrors::new(tmp.join("mirrors"), "workspace", &template, None);
        mirrors.fetch("alice").await.expect("clone");
        let source = crate::source::LocalSource::new(mirrors.root(), "workspace");
        let first = source.head("alice").expect("read").expect("head");
        commit_and_push("two");
        mirrors.fetch("alice").await.expect("fetch");
        let second = source.head("alice").expect("read").expect("head");
        assert_ne!(first.sha, second.sha);
        assert_eq!(second.summary, "two");
        assert!(mirrors.fetch("nobody").await.is_err());
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
