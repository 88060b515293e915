//! The department registry's HTTP API (Docker Registry v2): resolving a tag
//! to the digest a revision will run, so an accepted revision always runs
//! the same bits. Credentials come from the environment variables the site
//! names; `insecure` registries (loopback tests) speak plain HTTP.

use berth_spec::site::Registry as RegistryConfig;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry {host} unreachable: {source}")]
    Unreachable {
        host: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("registry {host} answered {status} for {path}")]
    Status {
        host: String,
        path: String,
        status: u16,
    },
    #[error("registry {host} gave no digest for {path}")]
    NoDigest { host: String, path: String },
}

/// Manifest media types Berth accepts, newest first.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Clone)]
pub struct Registry {
    http: reqwest::Client,
    host: String,
    base: String,
    auth: Option<(String, String)>,
}

impl Registry {
    pub fn from_site(config: &RegistryConfig) -> Registry {
        crate::tls::install_provider();
        let scheme = if config.insecure { "http" } else { "https" };
        let var = |v: &Option<berth_spec::Located<String>>| {
            v.as_ref().and_then(|name| std::env::var(&name.value).ok())
        };
        let auth = match (var(&config.username_env), var(&config.password_env)) {
            (Some(u), Some(p)) => Some((u, p)),
            _ => None,
        };
        Registry {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
            host: config.host.value.clone(),
            base: format!("{scheme}://{}", config.host.value),
            auth,
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The digest `path:tag` points at now, `None` if there is no such tag.
    pub async fn digest(&self, path: &str, tag: &str) -> Result<Option<String>, RegistryError> {
        let url_path = format!("/v2/{path}/manifests/{tag}");
        let mut req = self
            .http
            .head(format!("{}{url_path}", self.base))
            .header("Accept", ACCEPT);
        if let Some((u, p)) = &self.auth {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req
            .send()
            .await
            .map_err(|source| RegistryError::Unreachable {
                host: self.host.clone(),
                source,
            })?;
        match resp.status().as_u16() {
            404 => Ok(None),
            s if (200..300).contains(&s) => resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(|d| Some(d.to_string()))
                .ok_or(RegistryError::NoDigest {
                    host: self.host.clone(),
                    path: url_path,
                }),
            status => Err(RegistryError::Status {
                host: self.host.clone(),
                path: url_path,
                status,
            }),
        }
    }
}
