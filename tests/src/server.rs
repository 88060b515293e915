//! A running `reconciler serve` under test: webhook deliveries, metrics,
//! and a clean stop.

use crate::gitlab::push_event;
use std::process::Command;

/// A running `reconciler serve`; killed on drop unless stopped.
pub struct Server {
    child: Option<std::process::Child>,
    pub addr: String,
}

impl Server {
    pub(crate) fn new(child: std::process::Child, addr: String) -> Server {
        Server {
            child: Some(child),
            addr,
        }
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
        let child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let out = child.wait_with_output().expect("serve exits");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
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
