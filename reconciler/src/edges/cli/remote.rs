//! The admin's client of a running `serve` (`--server URL`): the read model
//! at `/api/v1/accounts`, the audit log at `/api/v1/audit` and its event
//! stream at `/api/v1/audit/events`, with the admin token from
//! `BERTH_ADMIN_TOKEN` (or the variable the site's `admin_token_env`
//! names). A token on the command line would show in `ps`, so there is no
//! flag for it.

use crate::ops::view::AccountView;
use crate::store::AuditEntry;
use std::time::Duration;

/// The environment variable read for the admin token first.
pub const TOKEN_ENV: &str = "BERTH_ADMIN_TOKEN";

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(
        "no admin token for --server: set {TOKEN_ENV} (or the variable named by \
         admin_token_env in the site configuration given with --config)"
    )]
    NoToken,
    #[error("--server {0}: not an http(s) URL")]
    BadUrl(String),
    #[error("serve at {url} unreachable: {source} (is `reconciler serve` running there?)")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("serve at {url} refused the admin token (401): check {TOKEN_ENV}")]
    Unauthorized { url: String },
    #[error("serve at {url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("serve at {url}: unexpected answer: {why}")]
    Body { url: String, why: String },
}

/// The client for `reconciler <what> --server URL`, with the site of
/// `--config` when one is given (for its `admin_token_env`); on failure
/// the reason is printed and the exit code returned.
pub fn connect(config: Option<&std::path::Path>, url: &str, what: &str) -> Result<Remote, u8> {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("reconciler {what}: {e}");
        super::exit::ERROR
    };
    let site = match config {
        Some(path) => Some(crate::clients::load_site(path).map_err(|e| fail(&e))?),
        None => None,
    };
    Remote::new(url, site.as_ref()).map_err(|e| fail(&e))
}

#[derive(Clone)]
pub struct Remote {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Remote {
    /// The client of `url`, the token from the environment.
    pub fn new(url: &str, site: Option<&berth_spec::Site>) -> Result<Remote, RemoteError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(RemoteError::BadUrl(url.to_string()));
        }
        let from_site = site
            .and_then(|s| s.admin_token_env.as_ref())
            .and_then(|var| std::env::var(&var.value).ok());
        let token = std::env::var(TOKEN_ENV)
            .ok()
            .or(from_site)
            .filter(|t| !t.trim().is_empty())
            .ok_or(RemoteError::NoToken)?;
        crate::base::tls::install_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|source| RemoteError::Unreachable {
                url: url.to_string(),
                source,
            })?;
        Ok(Remote {
            base: url.trim_end_matches('/').to_string(),
            token: token.trim().to_string(),
            http,
        })
    }

    async fn send(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<reqwest::Response, RemoteError> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .query(query)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| RemoteError::Unreachable {
                url: self.base.clone(),
                source,
            })?;
        match response.status().as_u16() {
            200 => Ok(response),
            401 => Err(RemoteError::Unauthorized {
                url: self.base.clone(),
            }),
            status => Err(RemoteError::Status {
                url: url.clone(),
                status,
                body: response.text().await.unwrap_or_default(),
            }),
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, RemoteError> {
        let response = self.send(path, query).await?;
        response.json().await.map_err(|e| RemoteError::Body {
            url: self.base.clone(),
            why: e.to_string(),
        })
    }

    /// Every account's view, or one account's (404 → empty).
    pub async fn accounts(&self, only: Option<&str>) -> Result<Vec<AccountView>, RemoteError> {
        #[derive(serde::Deserialize)]
        struct Accounts {
            accounts: Vec<AccountView>,
        }
        let path = match only {
            Some(a) => format!("/api/v1/accounts/{a}"),
            None => "/api/v1/accounts".to_string(),
        };
        match self.json::<Accounts>(&path, &[]).await {
            Ok(a) => Ok(a.accounts),
            Err(RemoteError::Status { status: 404, .. }) if only.is_some() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The newest `limit` audit lines, newest first.
    pub async fn audit(
        &self,
        account: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, RemoteError> {
        #[derive(serde::Deserialize)]
        struct Entries {
            entries: Vec<AuditEntry>,
        }
        let mut query = vec![("limit", limit.to_string())];
        query.extend(account.map(|a| ("account", a.to_string())));
        Ok(self.json::<Entries>("/api/v1/audit", &query).await?.entries)
    }

    /// Calls `each` with every audit line written after `after` (every
    /// line from now when `None`), as the server streams them; reconnects
    /// where it left off when the stream breaks. Returns only on an error
    /// the next attempt would repeat (401, a bad URL); Ctrl-C is the
    /// caller's to handle.
    pub async fn follow_audit(
        &self,
        account: Option<&str>,
        mut after: Option<i64>,
        mut each: impl FnMut(AuditEntry),
    ) -> RemoteError {
        let mut backoff = Duration::from_millis(500);
        loop {
            let mut query: Vec<(&str, String)> = account
                .map(|a| ("account", a.to_string()))
                .into_iter()
                .collect();
            query.extend(after.map(|id| ("after", id.to_string())));
            match self.send("/api/v1/audit/events", &query).await {
                Ok(mut response) => {
                    backoff = Duration::from_millis(500);
                    let mut parser = SseParser::default();
                    while let Ok(Some(chunk)) = response.chunk().await {
                        for event in parser.feed(&chunk) {
                            if event.name != "audit" {
                                continue;
                            }
                            if let Ok(entry) = serde_json::from_str::<AuditEntry>(&event.data) {
                                after = Some(after.map_or(entry.id, |a| a.max(entry.id)));
                                each(entry);
                            }
                        }
                    }
                }
                Err(e @ (RemoteError::Unauthorized { .. } | RemoteError::BadUrl(_))) => return e,
                Err(e) => tracing::warn!(cause = %e, "audit event stream; reconnecting"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }
}

/// One server-sent event: its `event:` name (`message` when none) and its
/// `data:` lines joined.
#[derive(Debug, PartialEq, Eq)]
pub struct SseEvent {
    pub name: String,
    pub data: String,
}

/// The `text/event-stream` format (WHATWG HTML, "server-sent events"), fed
/// in whatever chunks the network delivers: events end at a blank line;
/// `:` lines are comments (keep-alives); `id:` is tracked by the caller
/// from the data, so it is ignored here.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    name: Option<String>,
    data: Vec<String>,
}

/// An event larger than this is dropped rather than buffered without end.
const MAX_EVENT: usize = 1024 * 1024;

impl SseParser {
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    out.push(SseEvent {
                        name: self.name.take().unwrap_or_else(|| "message".into()),
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                }
                self.name = None;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.name = Some(value.to_string()),
                "data" => self.data.push(value.to_string()),
                _ => {}
            }
        }
        if self.buffer.len() > MAX_EVENT {
            self.buffer.clear();
            self.data.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_put_back_together() {
        let mut p = SseParser::default();
        assert!(p.feed(b": keep-alive\n\nevent: au").is_empty());
        assert!(p.feed(b"dit\nid: 7\ndata: {\"a\":").is_empty());
        let got = p.feed(b"1}\r\n\r\ndata: x\ndata: y\n\n");
        assert_eq!(
            got,
            [
                SseEvent {
                    name: "audit".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    name: "message".into(),
                    data: "x\ny".into()
                }
            ]
        );
    }

    #[test]
    fn a_url_without_a_scheme_is_refused_before_any_request() {
        assert!(matches!(
            Remote::new("berth.example:8080", None),
            Err(RemoteError::BadUrl(_))
        ));
    }
}
