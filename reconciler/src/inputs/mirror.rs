//! Local mirrors of GitLab repositories, so the git source reads every
//! workspace from disk: `<state_dir>/mirrors/<account>/<repository>.git`,
//! cloned once and fetched before each reconcile. Uses the `git` command
//! (already required for local clones); the token travels in an HTTP header
//! set through the environment, never on a command line or in a file.
//! A student controls what is in their repository, so every fetch is
//! bounded in time and in size (a watchdog kills git past either), and the
//! mirror follows the project's default branch when it changes. A preview
//! fetches just the ref it plans (a branch, or a merge request's head that
//! only `refs/merge-requests/` holds), and polling asks the remote for its
//! default branch's head without fetching anything.

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
    limits: Limits,
}

/// How long one fetch may take and how large a mirror may grow.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub timeout: std::time::Duration,
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: std::time::Duration::from_secs(120),
            max_bytes: 256 << 20,
        }
    }
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
            limits: Limits::default(),
        }
    }

    #[cfg(test)]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    #[cfg(test)]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The clone URL: `{path}` is the project's GitLab path when known
    /// (discovery or an accepted push), else `<account>/<repository>`.
    fn url(&self, account: &str, path: Option<&str>) -> String {
        let default_path = format!("{account}/{}", self.repository);
        self.url_template
            .replace("{path}", path.unwrap_or(&default_path))
            .replace("{account}", account)
            .replace("{repository}", &self.repository)
    }

    /// Clones or fetches `account`'s repository into its mirror, then
    /// points the mirror's HEAD at the project's current default branch.
    pub async fn fetch(&self, account: &str, path: Option<&str>) -> Result<(), FetchError> {
        let url = self.url(account, path);
        let dir = self.dir(account);
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
        // git reads the token as `-c http.extraHeader=…` from the
        // environment, never from the process list.
        self.auth(&mut cmd);
        let fresh = !dir.join("HEAD").exists();
        let result = self.run_bounded(cmd, &dir, &url, self.limits.timeout).await;
        if result.is_err() && fresh {
            // A clone cut short leaves nothing half-made behind.
            let _ = std::fs::remove_dir_all(&dir);
        }
        result?;
        self.follow_default_branch(&dir, &url).await
    }

    fn auth(&self, cmd: &mut tokio::process::Command) {
        if let Some(token) = &self.token {
            cmd.env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env(
                    "GIT_CONFIG_VALUE_0",
                    format!("Authorization: Basic {}", basic("oauth2", token)),
                );
        }
    }

    /// Runs git, killing it (and the helpers it started: upload-pack,
    /// index-pack) when it outlives the time limit or the mirror outgrows
    /// the size cap. Returns git's stdout.
    async fn run_bounded(
        &self,
        mut cmd: tokio::process::Command,
        dir: &Path,
        url: &str,
        timeout: std::time::Duration,
    ) -> Result<Vec<u8>, FetchError> {
        use tokio::io::AsyncReadExt;
        let fail = |message: String| FetchError {
            url: url.to_string(),
            message,
        };
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
        let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
        let stdout = tokio::spawn(async move {
            let mut buf = Vec::new();
            if let Some(o) = out.as_mut() {
                let _ = o.read_to_end(&mut buf).await;
            }
            buf
        });
        let stderr = tokio::spawn(async move {
            let mut buf = Vec::new();
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_end(&mut buf).await;
            }
            buf
        });
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
        let stopped = loop {
            tokio::select! {
                status = child.wait() => break Ok(status.map_err(|e| fail(e.to_string()))?),
                _ = tokio::time::sleep_until(deadline) => break Err(format!(
                    "git took longer than {} s; stopped",
                    timeout.as_secs()
                )),
                _ = tick.tick() => {
                    if dir_size(dir) > self.limits.max_bytes {
                        break Err(format!(
                            "the repository grew past {} MiB; stopped",
                            self.limits.max_bytes >> 20
                        ));
                    }
                }
            }
        };
        let status = match stopped {
            Ok(status) => status,
            Err(why) => {
                // The whole process group, so no helper keeps writing after
                // the caller cleans up.
                if let Some(pid) = child.id() {
                    let _ = tokio::process::Command::new("kill")
                        .args(["-KILL", "--", &format!("-{pid}")])
                        .status()
                        .await;
                }
                let _ = child.wait().await;
                return Err(fail(why));
            }
        };
        let stdout = stdout.await.unwrap_or_default();
        // A fast git may finish between two looks at the size.
        if dir_size(dir) > self.limits.max_bytes {
            return Err(fail(format!(
                "the repository grew past {} MiB; stopped",
                self.limits.max_bytes >> 20
            )));
        }
        if status.success() {
            return Ok(stdout);
        }
        let stderr = stderr.await.unwrap_or_default();
        let message = String::from_utf8_lossy(&stderr)
            .lines()
            .last()
            .unwrap_or("git failed")
            .to_string();
        Err(fail(message))
    }

    /// GitLab lets a project change its default branch; a mirror's HEAD is
    /// set once at clone time, so ask the remote and follow it.
    async fn follow_default_branch(&self, dir: &Path, url: &str) -> Result<(), FetchError> {
        let mut cmd = tokio::process::Command::new("git");
        cmd.arg("-C")
            .arg(dir)
            .args(["ls-remote", "--symref", "origin", "HEAD"]);
        self.auth(&mut cmd);
        let out = self.run_bounded(cmd, dir, url, self.limits.timeout).await?;
        let text = String::from_utf8_lossy(&out);
        let Some(branch) = text.lines().find_map(|l| {
            l.strip_prefix("ref: refs/heads/")
                .and_then(|rest| rest.split_whitespace().next())
        }) else {
            return Ok(());
        };
        let mut cmd = tokio::process::Command::new("git");
        cmd.arg("-C")
            .arg(dir)
            .args(["symbolic-ref", "HEAD", &format!("refs/heads/{branch}")]);
        self.run_bounded(cmd, dir, url, self.limits.timeout)
            .await
            .map(drop)
    }

    fn dir(&self, account: &str) -> PathBuf {
        self.root
            .join(account)
            .join(format!("{}.git", self.repository))
    }

    /// Fetches one ref a preview plans — a branch (`feature`) or a full
    /// ref (`refs/merge-requests/7/head`) — into the mirror under the same
    /// name, cloning the mirror first if there is none. The mirror's own
    /// refspec (`refs/heads/*`) never brings a merge request's head, and a
    /// branch pushed a moment ago is not fetched by anything else.
    pub async fn fetch_ref(
        &self,
        account: &str,
        path: Option<&str>,
        git_ref: &str,
    ) -> Result<(), FetchError> {
        let url = self.url(account, path);
        let Some(full) = preview_ref(git_ref) else {
            return Err(FetchError {
                url,
                message: format!("`{git_ref}` is not a ref a preview can fetch"),
            });
        };
        let dir = self.dir(account);
        if !dir.join("HEAD").exists() {
            self.fetch(account, path).await?;
        }
        let mut cmd = tokio::process::Command::new("git");
        cmd.arg("-C").arg(&dir).args([
            "fetch",
            "--quiet",
            "--no-tags",
            "origin",
            &format!("+{full}:{full}"),
        ]);
        self.auth(&mut cmd);
        self.run_bounded(cmd, &dir, &url, self.limits.timeout)
            .await
            .map(drop)
    }

    /// The remote's default branch and its head commit (`git ls-remote
    /// --symref <url> HEAD`): one round trip, nothing fetched, so polling
    /// a thousand repositories stays cheap. `None` for an empty repository.
    pub async fn remote_head(
        &self,
        account: &str,
        path: Option<&str>,
        timeout: std::time::Duration,
    ) -> Result<Option<RemoteHead>, FetchError> {
        let url = self.url(account, path);
        let mut cmd = tokio::process::Command::new("git");
        cmd.args(["ls-remote", "--symref", &url, "HEAD"]);
        self.auth(&mut cmd);
        // Nothing is written: the size watchdog looks at a directory that
        // does not exist.
        let nowhere = self.root.join(".ls-remote");
        let out = self.run_bounded(cmd, &nowhere, &url, timeout).await?;
        Ok(parse_remote_head(&String::from_utf8_lossy(&out)))
    }
}

/// A remote's default branch and where it points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteHead {
    pub branch: String,
    pub sha: String,
}

/// Reads `ref: refs/heads/<branch>\tHEAD` and `<sha>\tHEAD` from `git
/// ls-remote --symref`.
fn parse_remote_head(text: &str) -> Option<RemoteHead> {
    let mut branch = None;
    let mut sha = None;
    for line in text.lines() {
        let mut parts = line.split('\t');
        let (Some(left), Some("HEAD")) = (parts.next(), parts.next()) else {
            continue;
        };
        match left.strip_prefix("ref: refs/heads/") {
            Some(b) => branch = Some(b.to_string()),
            None if left.len() == 40 && left.bytes().all(|b| b.is_ascii_hexdigit()) => {
                sha = Some(left.to_string())
            }
            None => {}
        }
    }
    Some(RemoteHead {
        branch: branch?,
        sha: sha?,
    })
}

/// The full ref a preview of `git_ref` fetches: a branch name becomes
/// `refs/heads/<name>`, `refs/merge-requests/<iid>/head` stays as it is.
/// Anything git would not take as a ref name, or that would change what
/// the refspec means (`:`, `*`, a leading `+` or `-`), is refused: branch
/// names are the student's choice.
fn preview_ref(git_ref: &str) -> Option<String> {
    let full = match git_ref.strip_prefix("refs/merge-requests/") {
        Some(rest) => {
            let iid = rest.strip_suffix("/head")?;
            if iid.is_empty() || !iid.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            git_ref.to_string()
        }
        None if git_ref.starts_with("refs/") => return None,
        None => format!("refs/heads/{git_ref}"),
    };
    let name = full.strip_prefix("refs/")?;
    let bad_component =
        |c: &str| c.is_empty() || c.starts_with('.') || c.starts_with('-') || c.ends_with(".lock");
    let bad_char = |ch: char| {
        ch.is_ascii_control() || matches!(ch, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\' | '+')
    };
    let ok = full.len() <= 1024
        && !name.split('/').any(bad_component)
        && !full.chars().any(bad_char)
        && !full.contains("..")
        && !full.contains("@{")
        && !full.ends_with('.');
    ok.then_some(full)
}

/// Bytes of the files under `dir` (a missing dir is empty).
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// base64 of `user:password` (RFC 4648, with padding).
fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

#[cfg(test)]
mod tests;
