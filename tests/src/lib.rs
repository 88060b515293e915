//! Shared helpers for Berth's end-to-end tests: the service endpoints that
//! `scripts/test.sh` exports, condition waits with deadlines, and small
//! clients (docker CLI, LDAP CLI, raw HTTP) for asserting on the real world.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Endpoints of the real services, from the environment `scripts/test.sh` sets.
#[derive(Clone, Debug)]
pub struct Services {
    pub docker_host: String,
    pub ldap_url: String,
    pub ldap_bind_dn: String,
    pub ldap_password: String,
    pub ldap_base: String,
    pub registry: String,
    pub test_image: String,
    /// The second Docker host (`unix://…` socket, and the address its
    /// published ports answer at), when `scripts/test.sh` started it.
    pub docker2: Option<(String, String)>,
}

/// The docker CLI against the daemon at `host` (a `DOCKER_HOST`).
pub fn docker_at(host: &str, args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", host)
        .output()
        .expect("docker CLI runs")
}

/// Runs the shell `script` in a throwaway container of `image` on `host`,
/// without network, with `volume` mounted read-only at `/d`.
pub fn read_volume(host: &str, image: &str, volume: &str, script: &str) -> Output {
    docker_at(
        host,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            &format!("{volume}:/d:ro"),
            image,
            "/bin/busybox",
            "sh",
            "-c",
            script,
        ],
    )
}

/// Whether `host` has a volume named `volume`.
pub fn volume_exists(host: &str, volume: &str) -> bool {
    docker_at(host, &["volume", "inspect", volume])
        .status
        .success()
}

impl Services {
    /// The services, or `None` (test skipped) when not started through
    /// `scripts/test.sh`. With `BERTH_E2E_REQUIRED=1` a missing service is a
    /// failure instead, so CI cannot pass by skipping.
    pub fn from_env() -> Option<Services> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let found = (|| {
            Some(Services {
                docker_host: var("DOCKER_HOST")?,
                ldap_url: var("BERTH_LDAP_URL")?,
                ldap_bind_dn: var("BERTH_LDAP_BIND_DN")?,
                ldap_password: var("BERTH_LDAP_PASSWORD")?,
                ldap_base: var("BERTH_LDAP_BASE")?,
                registry: var("BERTH_REGISTRY")?,
                test_image: var("BERTH_TEST_IMAGE")?,
                docker2: var("BERTH_DOCKER2_HOST").zip(var("BERTH_DOCKER2_ADDR")),
            })
        })();
        if found.is_none() {
            assert!(
                var("BERTH_E2E_REQUIRED").is_none(),
                "BERTH_E2E_REQUIRED is set but service variables are missing"
            );
            eprintln!("skipped: services not started; run scripts/test.sh");
        }
        found
    }

    /// Runs the docker CLI against the test daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        docker_at(&self.docker_host, args)
    }

    /// Restarts the test daemon (scripts/lib/services.sh) and waits until
    /// it answers; containers with a restart policy come back.
    pub fn restart_dockerd(&self) {
        let restart = Command::new("bash")
            .arg("-c")
            .arg("source scripts/lib/services.sh && services_restart_dockerd")
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .env("DOCKER_HOST", &self.docker_host)
            .output()
            .expect("restart script runs");
        assert!(
            restart.status.success(),
            "restart: {}",
            String::from_utf8_lossy(&restart.stderr)
        );
    }

    /// An OpenLDAP client tool (`ldapsearch`, `ldapmodify`, …) bound as
    /// the directory's admin.
    pub fn ldap_tool(&self, tool: &str) -> Command {
        let mut cmd = Command::new(tool);
        cmd.args([
            "-x",
            "-H",
            &self.ldap_url,
            "-D",
            &self.ldap_bind_dn,
            "-w",
            &self.ldap_password,
        ]);
        cmd
    }

    /// `ldapsearch` under the base DN; returns its LDIF output.
    pub fn ldapsearch(&self, filter: &str, attrs: &[&str]) -> String {
        let out = self
            .ldap_tool("ldapsearch")
            .args(["-LLL", "-b", &self.ldap_base, filter])
            .args(attrs)
            .output()
            .expect("ldapsearch runs");
        assert!(
            out.status.success(),
            "ldapsearch failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Polls `check` until it returns `Some`, or panics after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, check: impl FnMut() -> Option<T>) -> T {
    try_wait_for(timeout, check)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `check` until it returns `Some`; `None` after `timeout`, for a
/// caller that says what it last saw.
pub fn try_wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A variable the harness sets for a test (a tool it built, a service it
/// started), or `None`: the test is skipped, unless `BERTH_E2E_REQUIRED`
/// is set, when its absence fails the test. `what` says who provides it.
pub fn required_var(name: &str, what: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var_os("BERTH_E2E_REQUIRED").is_none(),
                "BERTH_E2E_REQUIRED is set but {name} is not ({what})"
            );
            eprintln!("skipped: no {name} ({what})");
            None
        }
    }
}

/// Waits until `addr` answers `GET /healthz` with 200.
pub fn wait_healthy(addr: &str, what: &str) {
    wait_for(Duration::from_secs(30), what, || {
        http_get(addr, "/healthz")
            .ok()
            .filter(|(status, _)| status.contains("200"))
    });
}

/// A plain HTTP/1.0 GET; returns the status line and body.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(String, String)> {
    http_get_with(addr, path, &[])
}

/// [`http_get`] with extra request headers.
pub fn http_get_with(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(String, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{extra}\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.lines().next().unwrap_or_default().to_string();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// A plain HTTP/1.0 POST; returns the status code and body.
pub fn http_post(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let code = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// A raw HTTP/1.0 request; the status code and the body's bytes.
pub fn http_raw(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, response.get(split + 4..).unwrap_or_default().to_vec()))
}

/// Logs in to the console with a raw POST; the session cookie's value.
pub fn login_cookie(addr: &str, user: &str, password: &str) -> String {
    let body = format!("username={user}&password={password}");
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "POST /login HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: berth_session="))
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_string()
}

/// A `Cookie` header value for a fresh console session of `user`.
pub fn session_cookie(addr: &str, user: &str, password: &str) -> String {
    let cookie = login_cookie(addr, user, password);
    assert!(!cookie.is_empty(), "{user} logs in");
    format!("berth_session={cookie}")
}

/// The session's CSRF token from a console page's forms.
pub fn csrf_of(page: &str) -> String {
    let key = "name=\"csrf\" value=\"";
    let at = page
        .find(key)
        .unwrap_or_else(|| panic!("no CSRF field in:\n{page}"));
    let rest = &page[at + key.len()..];
    rest[..rest.find('"').unwrap_or(rest.len())].to_string()
}

/// A console GET with the session cookie header `auth`: the status and
/// the body as text.
pub fn console_get(addr: &str, auth: &str, path: &str) -> (u16, String) {
    let (code, body) =
        http_raw(addr, "GET", path, &[("Cookie", auth)], b"").expect("console request");
    (code, String::from_utf8_lossy(&body).into_owned())
}

/// A console POST of form `body` with the session cookie header `auth`:
/// the status and the body as text.
pub fn console_post(addr: &str, auth: &str, path: &str, body: &str) -> (u16, String) {
    let (code, body) = http_raw(
        addr,
        "POST",
        path,
        &[
            ("Cookie", auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        body.as_bytes(),
    )
    .expect("console request");
    (code, String::from_utf8_lossy(&body).into_owned())
}

/// stdout of a finished command, trimmed.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub mod apiserver;
pub mod browser;
pub mod cluster;
pub mod fakekube;
pub mod fixture;
pub mod githttp;
pub mod gitlab;
pub mod lines;
pub mod proxy;
pub mod pty;
pub mod registry;
pub mod server;
pub mod smtp;
