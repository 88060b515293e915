//! A reconciler world for one test: its own LDAP accounts (unique names, so
//! tests never share containers), bare git repositories with real commits,
//! a site.yaml with its own state directory and host-port range, and the
//! `reconciler` binary to run against it. Dropping it removes the test's
//! containers, networks, volumes and LDAP entries.

use crate::{Services, stdout};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub use crate::gitlab::{GitLabUsers, push_event, statuses, user_id, wait_status};
pub use crate::server::Server;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub struct World {
    pub services: Services,
    pub dir: PathBuf,
    pub accounts: Vec<String>,
    prefix: String,
    /// Extra YAML appended under `policy.quotas`.
    pub site_overrides: SiteOptions,
}

#[derive(Clone, Debug)]
pub struct SiteOptions {
    pub ports: (u16, u16),
    pub ldap_url: Option<String>,
    pub students_containers: u32,
    /// GitLab API base URL (a mock server); enables webhooks and statuses.
    pub gitlab: Option<String>,
    pub resync: String,
    /// Take repositories from GitLab groups (mirrored from the local bare
    /// repositories through a file:// clone URL) instead of the directory.
    pub gitlab_repositories: bool,
    /// Image of runner containers (a local stand-in in tests).
    pub runner_image: Option<String>,
    /// The department registry (host:port, plain HTTP).
    pub registry: Option<String>,
    /// The registry's scan command (one program path).
    pub scan_command: Option<String>,
    /// A Kubernetes cluster (a kubeconfig file); ingress domain `apps.test`,
    /// HTTP port 8080.
    pub kubeconfig: Option<PathBuf>,
    /// Extra keys of the one Docker endpoint (`gpus: 2, …`), or a whole
    /// endpoint mapping replacing it when it starts with `{`.
    pub docker_endpoint: Option<String>,
    /// Top-level YAML appended to the site (e.g. `admin_token_env: …`).
    pub extra: String,
    /// Berth serves the registry's tokens (`registry.token`), with
    /// `public_url` on `serve_port` and Berth's own registry identity.
    pub registry_token: bool,
    /// The port `serve` listens on (a free one when `None`).
    pub serve_port: Option<u16>,
    /// Memory quota of the `students` group.
    pub student_memory: String,
    /// Registry storage quota of the `students` group.
    pub student_registry: Option<String>,
    /// More keys of the `students` quota (`, idle_stop_after: 3s`).
    pub student_quota_extra: String,
    /// YAML lines appended under `policy:` (indented by the caller).
    pub policy_extra: String,
    /// A second Docker endpoint `h2` (the netns dockerd): the host ports
    /// are split between the two.
    pub second_host: bool,
}

/// Berth's own registry identity in token-service sites.
pub const REGISTRY_USER: &str = "berth-bot";
pub const REGISTRY_PASSWORD: &str = "test-registry-password";

/// Secrets the test site names; the fixture exports them to the binary.
pub const WEBHOOK_SECRET: &str = "test-webhook-secret";
pub const GITLAB_TOKEN: &str = "glpat-test-token";
/// The admin API token (`admin_token_env: BERTH_ADMIN_TOKEN` in `extra`).
pub const ADMIN_TOKEN: &str = "test-admin-token";

impl World {
    /// A world whose host ports are `first..=first+99`. Give every test its
    /// own range: stores are per test, the dockerd is shared.
    pub fn new(services: &Services, first_port: u16) -> World {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("t{}x{n}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("berth-e2e-{prefix}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("repos")).expect("temp dir");
        World {
            services: services.clone(),
            dir,
            accounts: vec![],
            prefix,
            site_overrides: SiteOptions {
                ports: (first_port, first_port + 99),
                ldap_url: None,
                students_containers: 4,
                gitlab: None,
                resync: "5m".into(),
                gitlab_repositories: false,
                runner_image: None,
                registry: None,
                scan_command: None,
                kubeconfig: None,
                docker_endpoint: None,
                extra: String::new(),
                registry_token: false,
                serve_port: None,
                student_memory: "4Gi".into(),
                student_registry: None,
                student_quota_extra: String::new(),
                policy_extra: String::new(),
                second_host: false,
            },
        }
    }

    /// Adds an LDAP account `<prefix><short>` in `groups`; returns its name.
    pub fn account(&mut self, short: &str, groups: &[&str]) -> String {
        let name = format!("{}{short}", self.prefix);
        let dn = format!("uid={name},ou=people,{}", self.services.ldap_base);
        let mut ldif = format!(
            "dn: {dn}\nobjectClass: inetOrgPerson\nuid: {name}\ncn: {name}\nsn: Test\nmail: {name}@berth.test\n"
        );
        for g in groups {
            ldif.push_str(&format!(
                "\ndn: cn={g},ou=groups,{}\nchangetype: modify\nadd: member\nmember: {dn}\n",
                self.services.ldap_base
            ));
        }
        self.ldapmodify(&ldif, true);
        self.accounts.push(name.clone());
        name
    }

    pub fn mail(&self, account: &str) -> String {
        format!("{account}@berth.test")
    }

    /// Sets the account's directory password.
    pub fn set_password(&self, account: &str, password: &str) {
        let ldif = format!(
            "dn: uid={account},ou=people,{}\nchangetype: modify\nreplace: userPassword\nuserPassword: {password}\n",
            self.services.ldap_base
        );
        self.ldapmodify(&ldif, false);
    }

    /// Adds or removes `account` from an LDAP group.
    pub fn set_group(&self, account: &str, group: &str, member: bool) {
        let op = if member { "add" } else { "delete" };
        let ldif = format!(
            "dn: cn={group},ou=groups,{}\nchangetype: modify\n{op}: member\nmember: uid={account},ou=people,{}\n",
            self.services.ldap_base, self.services.ldap_base
        );
        self.ldapmodify(&ldif, false);
    }

    fn ldapmodify(&self, ldif: &str, add_first: bool) {
        let mut cmd = self.services.ldap_tool("ldapmodify");
        if add_first {
            cmd.arg("-a");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ldapmodify runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(ldif.as_bytes())
            .expect("write ldif");
        let out = child.wait_with_output().expect("ldapmodify finishes");
        assert!(
            out.status.success(),
            "ldapmodify failed: {}\n{ldif}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn work(&self, account: &str) -> PathBuf {
        self.dir.join("work").join(account)
    }

    /// Commits `workspace` (or removes the file when `None`) as `email` and
    /// pushes it to the account's bare repository; returns the commit id.
    pub fn commit(&self, account: &str, workspace: Option<&str>, email: &str) -> String {
        self.commit_with(account, email, |work| {
            let file = work.join("workspace.yaml");
            remove_any(&file);
            if let Some(text) = workspace {
                std::fs::write(&file, text).expect("write workspace");
            }
        })
    }

    /// Lets `prepare` change the account's work tree any way it likes (a
    /// symlink, a directory…), then commits everything as `email` and
    /// pushes; returns the commit id.
    pub fn commit_with(&self, account: &str, email: &str, prepare: impl FnOnce(&Path)) -> String {
        self.commit_to(account, "main", email, prepare)
    }

    /// [`World::commit_with`] onto `branch` (created from the work tree's
    /// current commit).
    pub fn commit_to(
        &self,
        account: &str,
        branch: &str,
        email: &str,
        prepare: impl FnOnce(&Path),
    ) -> String {
        let bare = self.dir.join("repos").join(account).join("workspace.git");
        let work = self.work(account);
        if !bare.exists() {
            std::fs::create_dir_all(&bare).expect("repo dir");
            git(&bare, &["init", "-q", "--bare", "-b", "main"]);
            std::fs::create_dir_all(&work).expect("work dir");
            git(&work, &["init", "-q", "-b", "main"]);
            git(
                &work,
                &["remote", "add", "origin", &bare.display().to_string()],
            );
        }
        prepare(&work);
        git(&work, &["add", "-A"]);
        git(
            &work,
            &[
                "-c",
                "user.name=Test",
                "-c",
                &format!("user.email={email}"),
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "change",
            ],
        );
        git(&work, &["push", "-q", "origin", &format!("HEAD:{branch}")]);
        stdout(
            &Command::new("git")
                .arg("-C")
                .arg(&work)
                .args(["rev-parse", "HEAD"])
                .output()
                .expect("git"),
        )
    }

    pub fn repos_dir(&self) -> PathBuf {
        self.dir.join("repos")
    }

    /// The prefix of this world's account names.
    pub fn prefix(&self) -> String {
        self.prefix.clone()
    }

    pub fn site_path(&self) -> PathBuf {
        self.dir.join("site.yaml")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn write_site(&self) {
        let o = &self.site_overrides;
        let ldap_url = o
            .ldap_url
            .clone()
            .unwrap_or_else(|| self.services.ldap_url.clone());
        let gitlab = match &o.gitlab {
            Some(url) => format!(
                "gitlab:\n  url: {url}\n  token_env: BERTH_GITLAB_TOKEN\n  webhook_secret_env: BERTH_WEBHOOK_SECRET\n{}",
                o.runner_image
                    .as_ref()
                    .map(|i| format!("  runner_image: {i}\n"))
                    .unwrap_or_default()
            ),
            None => String::new(),
        };
        let registry = match &o.registry {
            Some(host) => format!(
                "registry: {{ host: \"{host}\", insecure: true{}{} }}\n{}",
                o.scan_command
                    .as_ref()
                    .map(|c| format!(", scan_command: [\"{c}\"]"))
                    .unwrap_or_default(),
                if o.registry_token {
                    ", username_env: BERTH_REGISTRY_USER, password_env: BERTH_REGISTRY_PASSWORD, token: {}"
                } else {
                    ""
                },
                match (o.registry_token, o.serve_port) {
                    (true, Some(port)) => format!("public_url: http://127.0.0.1:{port}\n"),
                    _ => String::new(),
                }
            ),
            None => String::new(),
        };
        let site = format!(
            "{gitlab}{registry}resync_interval: {resync}
ldap:
  url: {ldap_url}
  insecure: true
  bind_dn: {bind}
  bind_password_env: BERTH_LDAP_PASSWORD
  base_dn: ou=people,{base}
  disabled: {{ group: disabled }}
  allowed_groups: [students, staff, admins]
  admin_group: admins
  cache_ttl: 1s
backends:
  docker:
    - {docker}
{kubernetes}policy:
  allowed_registries: [docker.io]
  default_resources: {{ cpus: 0.1, memory: 32Mi }}
  quotas:
    students: {{ containers: {students}, cpus: 4, memory: {student_memory}, gpus: 1{student_registry}{student_quota_extra} }}
    staff: {{ containers: 30, cpus: 16, memory: 16Gi }}
{policy_extra}repositories:
{repositories}
state_dir: {state}
{extra}",
            extra = o.extra,
            student_memory = o.student_memory,
            student_quota_extra = o.student_quota_extra,
            student_registry = o
                .student_registry
                .as_ref()
                .map(|r| format!(", registry: {r}"))
                .unwrap_or_default(),
            policy_extra = o.policy_extra,
            docker = match &o.docker_endpoint {
                Some(whole) if whole.starts_with('{') => whole.clone(),
                Some(keys) => format!(
                    "{{ name: local, endpoint: env, host_ports: {{ first: {}, last: {} }}, {keys} }}",
                    o.ports.0, o.ports.1
                ),
                None if o.second_host => {
                    let (socket, addr) = self
                        .services
                        .docker2
                        .clone()
                        .expect("the second dockerd (scripts/test.sh starts it)");
                    let mid = o.ports.0 + 49;
                    format!(
                        "{{ name: local, endpoint: env, host_ports: {{ first: {}, last: {mid} }} }}\n    - {{ name: h2, endpoint: \"{socket}\", bind_address: 0.0.0.0, public_host: {addr}, host_ports: {{ first: {}, last: {} }} }}",
                        o.ports.0,
                        mid + 1,
                        o.ports.1
                    )
                }
                None => format!(
                    "{{ name: local, endpoint: env, host_ports: {{ first: {}, last: {} }} }}",
                    o.ports.0, o.ports.1
                ),
            },
            repositories = if o.gitlab_repositories {
                format!(
                    "  gitlab: {{ groups: [students], clone_url: \"file://{}/{{account}}/{{repository}}.git\" }}",
                    self.dir.join("repos").display()
                )
            } else {
                format!("  local: {{ root: {} }}", self.dir.join("repos").display())
            },
            bind = self.services.ldap_bind_dn,
            base = self.services.ldap_base,
            students = o.students_containers,
            state = self.state_dir().display(),
            resync = o.resync,
            kubernetes = match &o.kubeconfig {
                Some(path) => format!(
                    "  kubernetes: {{ kubeconfig: \"{}\", ingress_domain: apps.test, http_ports: [8080] }}\n",
                    path.display()
                ),
                None => String::new(),
            },
        );
        std::fs::write(self.site_path(), site).expect("write site.yaml");
    }

    /// Runs `reconciler --config <site> ARGS…`.
    pub fn reconciler(&self, args: &[&str]) -> Output {
        self.reconciler_command(args)
            .output()
            .expect("reconciler runs")
    }

    pub fn reconciler_command(&self, args: &[&str]) -> Command {
        self.write_site();
        let mut cmd = Command::new(reconciler_binary());
        cmd.arg("--config").arg(self.site_path()).args(args);
        cmd.env("DOCKER_HOST", &self.services.docker_host);
        cmd.env("BERTH_LDAP_PASSWORD", &self.services.ldap_password);
        cmd.env("BERTH_WEBHOOK_SECRET", WEBHOOK_SECRET);
        cmd.env("BERTH_GITLAB_TOKEN", GITLAB_TOKEN);
        cmd.env("BERTH_ADMIN_TOKEN", ADMIN_TOKEN);
        cmd.env("BERTH_REGISTRY_USER", REGISTRY_USER);
        cmd.env("BERTH_REGISTRY_PASSWORD", REGISTRY_PASSWORD);
        cmd
    }

    /// Starts `reconciler serve` on a free loopback port and waits until it
    /// answers `/healthz`.
    pub fn serve(&self) -> Server {
        self.serve_with(&[])
    }

    /// `serve` with extra arguments (e.g. `--watch DIR`).
    pub fn serve_with(&self, extra: &[&str]) -> Server {
        let port = self.site_overrides.serve_port.unwrap_or_else(free_port);
        let addr = format!("127.0.0.1:{port}");
        let child = self
            .reconciler_command(
                &[
                    &["serve", "--listen", addr.as_str(), "--workers", "4"][..],
                    extra,
                ]
                .concat(),
            )
            .env("BERTH_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve starts");
        let server = Server::new(child, addr);
        crate::wait_for(
            std::time::Duration::from_secs(20),
            "serve to answer /healthz",
            || {
                // 200, or 503 when it is up but something it needs is not.
                crate::http_get(&server.addr, "/healthz")
                    .ok()
                    .filter(|(s, _)| s.contains(" 200 ") || s.contains(" 503 "))
            },
        );
        server
    }

    /// `apply`, asserting the exit code; returns stdout.
    pub fn apply(&self, expect: i32) -> String {
        let out = self.reconciler(&["apply"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(expect), "apply output:\n{text}");
        text
    }

    /// `status --output json` of one account.
    pub fn status(&self, account: &str) -> serde_json::Value {
        let out = self.reconciler(&["status", "--account", account, "--output", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
        v["accounts"]
            .as_array()
            .and_then(|a| a.first().cloned())
            .unwrap_or_default()
    }

    /// `docker inspect -f FORMAT NAME`, or `None` when there is no such container.
    pub fn inspect(&self, name: &str, format: &str) -> Option<String> {
        let out = self.services.docker(&["inspect", "-f", format, name]);
        out.status.success().then(|| stdout(&out))
    }

    /// Names of the containers owned by `account` (Berth's label).
    pub fn containers_of(&self, account: &str) -> Vec<String> {
        let out = self.services.docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=berth.owner={account}"),
            "--format",
            "{{.Names}}",
        ]);
        let mut names: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
        names.sort();
        names
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let s = &self.services;
        let mut hosts = vec![s.docker_host.clone()];
        if self.site_overrides.second_host
            && let Some((h2, _)) = &s.docker2
        {
            hosts.push(h2.clone());
        }
        for account in &self.accounts {
            let filter = format!("label=berth.owner={account}");
            for host in &hosts {
                let docker = |args: &[&str]| {
                    Command::new("docker")
                        .env("DOCKER_HOST", host)
                        .args(args)
                        .output()
                        .expect("docker runs")
                };
                let ids = stdout(&docker(&["ps", "-aq", "--filter", &filter]));
                if !ids.is_empty() {
                    let mut args = vec!["rm", "-f"];
                    args.extend(ids.lines());
                    docker(&args);
                }
                for kind in ["network", "volume"] {
                    let ids = stdout(&docker(&[kind, "ls", "-q", "--filter", &filter]));
                    if !ids.is_empty() {
                        let mut args = vec![kind, "rm"];
                        args.extend(ids.lines());
                        docker(&args);
                    }
                }
            }
            let _ = s
                .ldap_tool("ldapdelete")
                .arg(format!("uid={account},ou=people,{}", s.ldap_base))
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes a file, symlink or directory at `path`, if any.
/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn remove_any(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = std::fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(path);
        }
        Err(_) => {}
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `reconciler` binary next to this test executable (cargo builds every
/// workspace binary before running workspace tests).
pub fn reconciler_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("reconciler");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p berth-reconciler` first",
        bin.display()
    );
    bin
}
