//! A real nginx with TLS in front of a test's `serve`, configured by the
//! very file the docs ship (`ops/nginx/berth.conf`), with a certificate
//! the harness makes (openssl): a CA, and a server certificate for
//! 127.0.0.1, the second host's veth address and `berth.test`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Nginx {
    child: Child,
    /// `https://127.0.0.1:PORT`
    pub url: String,
    pub port: u16,
    pub ca: PathBuf,
    /// base64 SHA-256 of the server key's SPKI: what Chromium's
    /// `--ignore-certificate-errors-spki-list` takes to trust it.
    pub spki: String,
    pub dir: PathBuf,
}

fn run(dir: &Path, args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn certificates(dir: &Path) {
    run(
        dir,
        &[
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "30",
            "-subj",
            "/CN=berth-test-proxy-ca",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,IP:10.250.0.1,DNS:berth.test\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    run(
        dir,
        &[
            "openssl",
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=berth.test",
        ],
    );
    run(
        dir,
        &[
            "openssl",
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );
}

fn spki_hash(dir: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg("openssl x509 -in server.crt -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64")
        .current_dir(dir)
        .output()
        .expect("openssl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Nginx {
    /// nginx on `listen` addresses (`127.0.0.1:PORT`, …: the first is
    /// `url`) in front of `upstream` (`127.0.0.1:PORT` of serve).
    pub fn start(dir: &Path, listen: &[String], upstream: &str) -> Nginx {
        std::fs::create_dir_all(dir.join("tmp")).expect("nginx dir");
        certificates(dir);
        let template = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/nginx/berth.conf"),
        )
        .expect("ops/nginx/berth.conf");
        let d = dir.display();
        let server = template
            .replace("SERVER_NAME", "berth.test")
            .replace("CERTIFICATE_KEY", &format!("{d}/server.key"))
            .replace("CERTIFICATE", &format!("{d}/server.crt"))
            .replace("UPSTREAM", upstream);
        // One `listen` line per address.
        let listen_line = server
            .lines()
            .find(|l| l.trim_start().starts_with("listen LISTEN"))
            .expect("a listen line")
            .to_string();
        let lines: Vec<String> = listen
            .iter()
            .map(|a| listen_line.replace("LISTEN", a))
            .collect();
        let server = server.replace(&listen_line, &lines.join("\n"));
        std::fs::write(dir.join("berth.conf"), server).expect("site");
        let main = format!(
            "worker_processes 1;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n  access_log {d}/access.log;\n\
             client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n\
             fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n\
             scgi_temp_path {d}/tmp/scgi;\n  include {d}/berth.conf;\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), main).expect("nginx.conf");
        let child = Command::new("nginx")
            .args([
                "-p",
                &d.to_string(),
                "-c",
                &format!("{d}/nginx.conf"),
                "-g",
                "daemon off;",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nginx starts (Debian's nginx; scripts/test.sh installs it)");
        let first = listen.first().expect("an address").clone();
        let port: u16 = first
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port");
        crate::wait_for(Duration::from_secs(30), "nginx to listen", || {
            std::net::TcpStream::connect(&first).ok()
        });
        Nginx {
            child,
            url: format!("https://{first}"),
            port,
            ca: dir.join("ca.crt"),
            spki: spki_hash(dir),
            dir: dir.to_path_buf(),
        }
    }

    /// `curl` through the proxy, trusting only the harness's CA.
    pub fn curl(&self) -> Command {
        let mut c = Command::new("curl");
        c.args(["-sS", "--cacert", &self.ca.display().to_string()]);
        c
    }
}

impl Drop for Nginx {
    /// SIGTERM, so the master stops its workers: a killed master leaves
    /// them running, holding their ports, after the test.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
