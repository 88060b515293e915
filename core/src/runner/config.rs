//! The runner's `config.toml`, typed and written with `toml`: jobs and
//! their services limited so the whole runner stays inside the account's
//! quota, allowed only the images the account may use, always pulled.

use super::{CONCURRENT, DockerAccess, SERVICES_LIMIT, Settings, TOKEN_PLACEHOLDER};
use crate::desired::{DesiredContainer, network_name};
use serde::{Deserialize, Serialize};

/// Per-container limits that keep the whole runner inside the quota:
/// `CONCURRENT` jobs, each a build container and up to `SERVICES_LIMIT`
/// services. Half a job's share goes to its build container, the other half
/// is split among its services, so `CONCURRENT × (job + SERVICES_LIMIT ×
/// service)` equals the quota.
pub fn limits(cpus: f64, memory: u64) -> ((f64, u64), (f64, u64)) {
    let jobs = f64::from(CONCURRENT);
    let job = (cpus / jobs / 2.0, memory / u64::from(CONCURRENT) / 2);
    let service = (
        job.0 / f64::from(SERVICES_LIMIT),
        job.1 / u64::from(SERVICES_LIMIT),
    );
    // dockerd refuses limits under 6 MiB; CPU shares below 0.01 round to 0.
    let floor = |(c, m): (f64, u64)| ((c * 100.0).floor().max(1.0) / 100.0, m.max(6 << 20));
    (floor(job), floor(service))
}

/// The image patterns (GitLab Runner's `allowed_images` / `allowed_services`
/// syntax) an account's jobs may use: the site's allowed registries, the
/// account's own namespace of the department registry, and the
/// repositories other accounts share with it, the same rules as
/// `image:` in `workspace.yaml`. Docker Hub images need their full name
/// (`docker.io/user/image`) except for official ones (`alpine:3.20`),
/// because a pattern cannot tell `user/image` from `host/image`.
pub fn allowed_images(
    site: &berth_spec::Site,
    account: &str,
    shared: &berth_spec::policy::Shared,
) -> Vec<String> {
    let mut out = Vec::new();
    for reg in &site.policy.allowed_registries {
        if reg.value == "docker.io" {
            out.push("*".to_string());
        }
        out.push(format!("{}/**", reg.value));
    }
    if let Some(reg) = &site.registry {
        out.push(format!("{}/{account}/**", reg.host.value));
    }
    for repo in shared {
        out.push(repo.clone());
        out.push(format!("{repo}:*"));
        out.push(format!("{repo}@*"));
    }
    out
}

/// GitLab Runner's `config.toml`, as much of it as Berth sets.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Config {
    pub concurrent: u32,
    pub check_interval: u32,
    pub shutdown_timeout: u32,
    pub runners: Vec<RunnerConfig>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct RunnerConfig {
    pub name: String,
    pub url: String,
    pub token: String,
    pub executor: String,
    pub limit: u32,
    /// Variables of every job (`DOCKER_AUTH_CONFIG`: the account's
    /// registry credential, so jobs can pull its private images).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub environment: Vec<String>,
    pub docker: DockerConfig,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct DockerConfig {
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_verify: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert_path: Option<String>,
    pub image: String,
    pub privileged: bool,
    pub network_mode: String,
    pub cpus: String,
    pub memory: String,
    pub memory_swap: String,
    pub services_limit: u32,
    pub service_cpus: String,
    pub service_memory: String,
    pub security_opt: Vec<String>,
    pub cap_drop: Vec<String>,
    pub volumes: Vec<String>,
    pub pull_policy: Vec<String>,
    pub allowed_pull_policies: Vec<String>,
    pub allowed_images: Vec<String>,
    pub allowed_services: Vec<String>,
}

fn mib(bytes: u64) -> String {
    format!("{}m", (bytes >> 20).max(6))
}

/// The runner's config for `token`.
pub fn config(settings: &Settings, account: &str, token: &str) -> Config {
    let (host, tls_verify, tls_cert_path) = match &settings.docker {
        DockerAccess::Socket(_) => ("unix:///var/run/docker.sock".to_string(), None, None),
        DockerAccess::Tcp { url, tls_dir } => {
            (url.clone(), tls_dir.as_ref().map(|_| true), tls_dir.clone())
        }
    };
    let ((job_cpus, job_memory), (service_cpus, service_memory)) =
        limits(settings.quota_cpus, settings.quota_memory);
    // `always`: a copy cached on the host (pulled for another account) never
    // stands in for the right to use an image.
    let always = vec!["always".to_string()];
    Config {
        concurrent: CONCURRENT,
        check_interval: 3,
        shutdown_timeout: 30,
        runners: vec![RunnerConfig {
            name: format!("berth-{account}"),
            url: settings.gitlab_url.clone(),
            token: token.to_string(),
            executor: "docker".into(),
            limit: CONCURRENT,
            environment: settings.environment.clone(),
            docker: DockerConfig {
                host,
                tls_verify,
                tls_cert_path,
                image: "alpine:3.20".into(),
                privileged: false,
                network_mode: network_name(account),
                cpus: job_cpus.to_string(),
                memory: mib(job_memory),
                // No swap beyond the memory limit.
                memory_swap: mib(job_memory),
                services_limit: SERVICES_LIMIT,
                service_cpus: service_cpus.to_string(),
                service_memory: mib(service_memory),
                security_opt: vec!["no-new-privileges:true".into()],
                cap_drop: vec!["NET_RAW".into()],
                volumes: vec!["/cache".into()],
                pull_policy: always.clone(),
                allowed_pull_policies: always,
                allowed_images: settings.allowed.clone(),
                allowed_services: settings.allowed.clone(),
            },
        }],
    }
}

/// The runner's `config.toml` for `token`.
pub fn config_toml(settings: &Settings, account: &str, token: &str) -> String {
    toml::to_string(&config(settings, account, token)).unwrap_or_default()
}

/// Hash of the config a runner container should hold (token left out).
/// When it differs from what was last written but the container's spec is
/// the same (only the allow-lists changed), the file is rewritten in the
/// running container, which GitLab Runner reloads without a restart.
pub fn config_hash(d: &DesiredContainer) -> String {
    let files: Vec<(&str, String)> = d
        .uploads
        .iter()
        .map(|(path, content)| (path.as_str(), String::from_utf8_lossy(content).into_owned()))
        .collect();
    crate::desired::short_hash(&files)
}

/// A config template with the real token in place of the placeholder.
pub fn fill_token(template: &[u8], token: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(template);
    match toml::from_str::<Config>(&text) {
        Ok(mut config) => {
            for r in &mut config.runners {
                if r.token == TOKEN_PLACEHOLDER {
                    r.token = token.to_string();
                }
            }
            toml::to_string(&config).unwrap_or_default().into_bytes()
        }
        Err(_) => template.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::TLS_DIR;
    use super::super::tests::settings;
    use super::*;

    #[test]
    fn config_confines_jobs_and_services_to_the_account() {
        let text = config_toml(&settings(), "alice", "glrt-abc\"x");
        let parsed: toml::Value = toml::from_str(&text).expect("valid TOML");
        let runner = &parsed["runners"][0];
        let d = &runner["docker"];
        let strings = |v: &toml::Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(parsed["concurrent"].as_integer(), Some(2));
        assert_eq!(runner["token"].as_str(), Some("glrt-abc\"x"));
        assert_eq!(runner["executor"].as_str(), Some("docker"));
        assert_eq!(runner["limit"].as_integer(), Some(2));
        assert_eq!(d["host"].as_str(), Some("unix:///var/run/docker.sock"));
        assert_eq!(d["privileged"].as_bool(), Some(false));
        assert_eq!(d["network_mode"].as_str(), Some("berth-alice"));
        // 2 jobs × (1 CPU + 2 services × 0.5 CPU) = the quota's 4 CPUs.
        assert_eq!(d["cpus"].as_str(), Some("1"));
        assert_eq!(d["memory"].as_str(), Some("1024m"));
        assert_eq!(d["memory_swap"].as_str(), Some("1024m"));
        assert_eq!(d["services_limit"].as_integer(), Some(2));
        assert_eq!(d["service_cpus"].as_str(), Some("0.5"));
        assert_eq!(d["service_memory"].as_str(), Some("512m"));
        assert_eq!(strings(&d["security_opt"]), ["no-new-privileges:true"]);
        assert_eq!(strings(&d["cap_drop"]), ["NET_RAW"]);
        assert_eq!(strings(&d["pull_policy"]), ["always"]);
        assert_eq!(strings(&d["allowed_pull_policies"]), ["always"]);
        assert_eq!(strings(&d["allowed_images"]), ["*", "docker.io/**"]);
        assert_eq!(strings(&d["allowed_services"]), ["*", "docker.io/**"]);
        assert!(d.get("tls_verify").is_none());
        // Every key Berth writes is one it means to: nothing else appears.
        let keys: Vec<&String> = d.as_table().expect("table").keys().collect();
        assert_eq!(keys.len(), 17, "{keys:?}");
    }

    #[test]
    fn the_whole_runner_stays_inside_the_quota() {
        for (cpus, memory) in [(4.0, 4u64 << 30), (1.0, 512 << 20), (16.0, 32 << 30)] {
            let ((jc, jm), (sc, sm)) = limits(cpus, memory);
            let jobs = f64::from(CONCURRENT);
            let services = f64::from(SERVICES_LIMIT);
            assert!(jobs * (jc + services * sc) <= cpus + 1e-9, "{cpus}");
            assert!(
                u64::from(CONCURRENT) * (jm + u64::from(SERVICES_LIMIT) * sm) <= memory,
                "{memory}"
            );
        }
    }

    #[test]
    fn allow_lists_follow_the_image_rules() {
        let site = crate::fixtures::example_site();
        let shared: berth_spec::policy::Shared = ["127.0.0.1:5000/bob/tools".to_string()].into();
        assert_eq!(
            allowed_images(&site, "alice", &shared),
            [
                "*",
                "docker.io/**",
                "127.0.0.1:5000/alice/**",
                "127.0.0.1:5000/bob/tools",
                "127.0.0.1:5000/bob/tools:*",
                "127.0.0.1:5000/bob/tools@*",
            ]
        );
    }

    #[test]
    fn a_tls_endpoint_hands_the_runner_its_certificates() {
        let s = Settings {
            docker: DockerAccess::Tcp {
                url: "tcp://10.0.0.5:2376".into(),
                tls_dir: Some(TLS_DIR.into()),
            },
            ..settings()
        };
        let parsed: toml::Value =
            toml::from_str(&config_toml(&s, "alice", "t")).expect("valid TOML");
        let d = &parsed["runners"][0]["docker"];
        assert_eq!(d["host"].as_str(), Some("tcp://10.0.0.5:2376"));
        assert_eq!(d["tls_verify"].as_bool(), Some(true));
        assert_eq!(d["tls_cert_path"].as_str(), Some(TLS_DIR));
    }
}
