//! A department registry that trusts Berth's token service: a real
//! `docker-registry` on its own loopback port whose `auth: token` section
//! is what `reconciler registry-config` prints, and a docker CLI with its
//! own config directory so each test logs in as someone else.

use crate::fixture::World;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

pub struct TokenRegistry {
    child: Child,
    pub host: String,
    dir: PathBuf,
}

impl TokenRegistry {
    /// A free port for the registry; put `127.0.0.1:<port>` in the site
    /// before [`TokenRegistry::start`].
    pub fn reserve() -> String {
        format!("127.0.0.1:{}", crate::fixture::free_port())
    }

    /// Starts the registry at `host` with the site's token configuration.
    pub fn start(world: &World, host: &str) -> TokenRegistry {
        let out = world.reconciler(&["registry-config"]);
        assert!(
            out.status.success(),
            "registry-config: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let auth = String::from_utf8_lossy(&out.stdout).to_string();
        let dir = world
            .dir
            .join(format!("registry-{}", host.replace(':', "-")));
        std::fs::create_dir_all(dir.join("data")).expect("registry dir");
        let config = format!(
            "version: 0.1\nlog: {{ level: warn }}\nstorage:\n  filesystem: {{ rootdirectory: {} }}\n  delete: {{ enabled: true }}\nhttp:\n  addr: {host}\n{auth}",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config).expect("registry config");
        let log = std::fs::File::create(dir.join("registry.log")).expect("log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("docker-registry starts");
        let reg = TokenRegistry {
            child,
            host: host.to_string(),
            dir,
        };
        crate::wait_for(
            std::time::Duration::from_secs(20),
            "the token registry to answer",
            || {
                crate::http_get(host, "/v2/")
                    .ok()
                    .filter(|(s, _)| s.contains(" 401 "))
            },
        );
        reg
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// A docker CLI with its own credential store, as one person.
    pub fn client(&self, world: &World, who: &str) -> DockerClient {
        let config = self.dir.join(format!("docker-config-{who}"));
        std::fs::create_dir_all(&config).expect("docker config dir");
        DockerClient {
            docker_host: world.services.docker_host.clone(),
            config,
            registry: self.host.clone(),
        }
    }
}

impl Drop for TokenRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct DockerClient {
    docker_host: String,
    config: PathBuf,
    pub registry: String,
}

impl DockerClient {
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .env("DOCKER_HOST", &self.docker_host)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("docker runs")
    }

    /// `docker login` with `password` on stdin.
    pub fn login(&self, user: &str, password: &str) -> Output {
        let mut child = Command::new("docker")
            .env("DOCKER_HOST", &self.docker_host)
            .arg("--config")
            .arg(&self.config)
            .args(["login", &self.registry, "-u", user, "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker login runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(password.as_bytes())
            .expect("password");
        child.wait_with_output().expect("docker login ends")
    }
}
