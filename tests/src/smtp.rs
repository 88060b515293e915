//! A real SMTP server for tests: Debian's python3-aiosmtpd, storing what
//! it receives in a Maildir, each message read back decoded by Python's
//! `email` package (so the test sees what a mail client shows).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Debian's interpreter, which has aiosmtpd (not a pyenv one on PATH).
const PYTHON: &str = "/usr/bin/python3";

pub struct Smtp {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

/// One message as delivered: its To and Subject, and its body decoded.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl Smtp {
    /// The `notify` section of a `site.yaml` mailing through this server,
    /// at most one mail per student `every`; `more` goes inside it
    /// (e.g. `"  chat: { … }\n"`).
    pub fn site_notify(&self, every: &str, more: &str) -> String {
        format!(
            "notify:\n  smtp: {{ host: 127.0.0.1, port: {}, security: none, from: \"Berth <berth@berth.test>\" }}\n  every: {every}\n{more}",
            self.port
        )
    }

    /// A server on a free loopback port; `None` when aiosmtpd is missing
    /// (a failure when the suite requires every service).
    pub fn start() -> Option<Smtp> {
        let available = Command::new(PYTHON)
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        if !available {
            assert!(
                std::env::var_os("BERTH_E2E_REQUIRED").is_none(),
                "python3-aiosmtpd is not installed (scripts/test.sh installs it)"
            );
            return None;
        }
        let port = crate::fixture::free_port();
        let dir = std::env::temp_dir().join(format!("berth-smtp-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let child = Command::new(PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        let smtp = Smtp { child, port, dir };
        crate::wait_for(
            std::time::Duration::from_secs(15),
            "aiosmtpd to listen",
            || {
                std::net::TcpStream::connect(("127.0.0.1", port))
                    .ok()
                    .map(drop)
            },
        );
        Some(smtp)
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<Mail> {
        let mut files: Vec<PathBuf> = ["new", "cur"]
            .iter()
            .flat_map(|d| std::fs::read_dir(self.dir.join(d)).into_iter().flatten())
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        files
            .iter()
            .filter_map(|f| {
                let out = Command::new(PYTHON)
                    .args([
                        "-c",
                        "import email, sys\nm = email.message_from_binary_file(open(sys.argv[1], 'rb'))\nprint(m['To']); print(m['Subject']); print(m.get_payload(decode=True).decode())",
                    ])
                    .arg(f)
                    .output()
                    .ok()?;
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                let mut lines = text.splitn(3, '\n');
                Some(Mail {
                    to: lines.next()?.to_string(),
                    subject: lines.next()?.to_string(),
                    body: lines.next().unwrap_or_default().to_string(),
                })
            })
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
