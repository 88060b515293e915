//! A running `reconciler serve` under test: webhook deliveries, metrics,
//! and a clean stop. Its stderr is read as it comes (a pipe nobody reads
//! fills at 64 KiB, and then every log line blocks the server).

use crate::gitlab::push_event;
use std::io::Read;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// A running `reconciler serve`; killed on drop unless stopped.
pub struct Server {
    child: Option<std::process::Child>,
    pub addr: String,
    stderr: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub(crate) fn new(mut child: std::process::Child, addr: String) -> Server {
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let reader = child.stderr.take().map(|mut pipe| {
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend_from_slice(&buf[..n]);
                }
            })
        });
        Server {
            child: Some(child),
            addr,
            stderr,
            reader,
        }
    }

    /// Whether this serve (not another process that took the same port)
    /// answers: it has logged "serving" and /healthz says 200, or 503 when
    /// it is up but something it needs is not; `Err` with its exit and log
    /// if it exited, so a failed start says why instead of timing out.
    pub(crate) fn answers(&mut self) -> Result<bool, String> {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            return Err(format!(
                "serve exited ({status}) before answering:\n{}",
                self.log()
            ));
        }
        Ok(self.log().contains("serving")
            && crate::http_get(&self.addr, "/healthz")
                .is_ok_and(|(s, _)| s.contains(" 200 ") || s.contains(" 503 ")))
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    /// Sends a GitLab push event for `revision` of `account`'s workspace.
    pub fn push(
        &self,
        account: &str,
        revision: &str,
        pusher: &str,
        uuid: &str,
        token: &str,
    ) -> u16 {
        let body = push_event(account, revision, pusher);
        let headers = [
            ("X-Gitlab-Token", token),
            ("X-Gitlab-Event", "Push Hook"),
            ("X-Gitlab-Event-UUID", uuid),
        ];
        crate::http_post(&self.addr, "/hooks/gitlab", &headers, &body)
            .map(|(c, _)| c)
            .unwrap_or(0)
    }

    /// The value of a metric line (`name{labels}`), 0 when absent.
    pub fn metric(&self, line: &str) -> f64 {
        let (_, body) = crate::http_get(&self.addr, "/metrics").unwrap_or_default();
        body.lines()
            .find_map(|l| {
                l.strip_prefix(line)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }

    /// SIGTERM, then the exit code and stderr.
    pub fn terminate(mut self) -> (Option<i32>, String) {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let status = child.wait().expect("serve exits");
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (status.code(), self.log())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
