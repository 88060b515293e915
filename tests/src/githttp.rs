//! Git's smart HTTP protocol served by the real `git http-backend` (as CGI)
//! behind the GitLab mock, at `<gitlab>/<path>.git` as GitLab serves it,
//! so GitLab-mode mirrors really clone, fetch and `ls-remote` over HTTP.
//! Like GitLab, it refuses a request without the API token as
//! `oauth2:<token>` basic credentials.

use base64::Engine;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use wiremock::ResponseTemplate;

/// Serves the bare repositories under `root` (`<root>/<path>.git`).
pub struct GitHttpBackend {
    pub root: PathBuf,
    pub token: String,
}

impl wiremock::Respond for GitHttpBackend {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("oauth2:{}", self.token))
        );
        if header("authorization") != expected {
            return ResponseTemplate::new(401)
                .insert_header("WWW-Authenticate", "Basic realm=\"GitLab\"");
        }
        let child = Command::new("git")
            .arg("http-backend")
            .env_clear()
            .env("GIT_PROJECT_ROOT", &self.root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("PATH_INFO", request.url.path())
            .env("QUERY_STRING", request.url.query().unwrap_or_default())
            .env("REQUEST_METHOD", request.method.as_str())
            .env("CONTENT_TYPE", header("content-type"))
            .env("CONTENT_LENGTH", request.body.len().to_string())
            .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
            .env("HTTP_GIT_PROTOCOL", header("git-protocol"))
            .env("REMOTE_ADDR", "127.0.0.1")
            .env("REMOTE_USER", "oauth2")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let Ok(mut child) = child else {
            return ResponseTemplate::new(500);
        };
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(&request.body);
        }
        let Ok(out) = child.wait_with_output() else {
            return ResponseTemplate::new(500);
        };
        cgi_response(&out.stdout)
    }
}

/// A CGI answer (headers, a blank line, the body) as an HTTP response.
fn cgi_response(out: &[u8]) -> ResponseTemplate {
    let (head, body) = match find(out, b"\r\n\r\n") {
        Some(i) => (&out[..i], &out[i + 4..]),
        None => match find(out, b"\n\n") {
            Some(i) => (&out[..i], &out[i + 2..]),
            None => return ResponseTemplate::new(502),
        },
    };
    let mut status = 200;
    let mut content_type = "application/octet-stream".to_string();
    let mut headers = Vec::new();
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().to_string();
        match name.trim().to_ascii_lowercase().as_str() {
            "status" => {
                status = value
                    .split_whitespace()
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(500)
            }
            "content-type" => content_type = value,
            _ => headers.push((name.trim().to_string(), value)),
        }
    }
    let mut response = ResponseTemplate::new(status).set_body_raw(body.to_vec(), &content_type);
    for (name, value) in headers {
        response = response.insert_header(name.as_str(), value.as_str());
    }
    response
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl crate::fixture::World {
    /// Serves this world's repositories over HTTP from the GitLab mock
    /// `gl` and reads them through GitLab-mode mirrors (the site's default
    /// clone URL, `<gitlab url>/{path}.git`).
    pub async fn serve_git_from(&mut self, gl: &wiremock::MockServer) {
        wiremock::Mock::given(wiremock::matchers::path_regex(
            r"^/[^?]+\.git/(info/refs|git-upload-pack|HEAD)$",
        ))
        .respond_with(GitHttpBackend {
            root: self.repos_dir(),
            token: crate::fixture::GITLAB_TOKEN.to_string(),
        })
        .with_priority(1)
        .mount(gl)
        .await;
        self.site_overrides.gitlab_repositories = true;
        self.site_overrides.clone_over_http = true;
    }
}

/// Requests the mock got for a repository's git protocol (`info/refs`,
/// `git-upload-pack`), as `(method, path)`.
pub async fn git_requests(gl: &wiremock::MockServer) -> Vec<(String, String)> {
    gl.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path().contains(".git/"))
        .map(|r| (r.method.to_string(), r.url.path().to_string()))
        .collect()
}
