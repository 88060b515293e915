//! The department registry's HTTP API (Docker Registry v2): resolving a tag
//! to the digest a revision will run, so an accepted revision always runs
//! the same bits. Credentials come from the environment variables the site
//! names, or, where Berth serves the registry's tokens, are tokens Berth
//! signs for itself ([`Credentials`]); `insecure` registries (loopback
//! tests) speak plain HTTP.

use berth_core::grants::parse_scopes;

use crate::inputs::keys::Keys;
use berth_spec::site::Registry as RegistryConfig;
use std::sync::Arc;
use std::time::Duration;

/// How Berth proves itself to the department registry.
#[derive(Clone)]
pub enum Credentials {
    /// A user and password (a registry that authenticates on its own).
    Basic(String, String),
    /// Tokens Berth signs for itself, one per request's scope.
    Minted(Arc<Keys>),
}

impl Credentials {
    /// Minted tokens where Berth serves the registry's tokens, else the
    /// site's user and password, else none.
    pub fn from_site(site: &berth_spec::Site, keys: Option<Arc<Keys>>) -> Option<Credentials> {
        match keys {
            Some(keys) => Some(Credentials::Minted(keys)),
            None => berth_credentials(site).map(|(u, p)| Credentials::Basic(u, p)),
        }
    }

    /// The `Authorization` header value for `scope`
    /// (`repository:alice/x:pull`, `registry:catalog:*`).
    pub fn header(&self, scope: &str) -> Option<String> {
        use base64::Engine;
        match self {
            Credentials::Basic(u, p) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )),
            Credentials::Minted(keys) => match keys.berth_token(&parse_scopes([scope])) {
                Ok(token) => Some(format!("Bearer {token}")),
                Err(e) => {
                    tracing::error!(error = %e, "cannot sign a registry token for Berth");
                    None
                }
            },
        }
    }

    /// What dockerd needs to pull from (`pull`) or push to (`pull,push`)
    /// `repository` (no host) of the registry at `host`.
    pub fn docker(
        &self,
        host: &str,
        repository: &str,
        actions: &str,
    ) -> bollard::auth::DockerCredentials {
        let base = bollard::auth::DockerCredentials {
            serveraddress: Some(host.to_string()),
            ..Default::default()
        };
        match self {
            Credentials::Basic(u, p) => bollard::auth::DockerCredentials {
                username: Some(u.clone()),
                password: Some(p.clone()),
                ..base
            },
            // dockerd sends a given registry token as it is, so pulls and
            // pushes never depend on the token endpoint being up.
            Credentials::Minted(keys) => bollard::auth::DockerCredentials {
                registrytoken: keys
                    .berth_token(&parse_scopes([format!(
                        "repository:{repository}:{actions}"
                    )
                    .as_str()]))
                    .ok(),
                ..base
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "registry {host} unreachable: {}; is it up? check {setting} (and `registry.insecure`: http or https)",
        crate::base::hint::cause(source)
    )]
    Unreachable {
        host: String,
        setting: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "registry {host}: unreadable answer: {}",
        crate::base::hint::cause(source)
    )]
    Body {
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
    /// `registry.host` and where it is written, for errors.
    setting: String,
    base: String,
    auth: Option<Credentials>,
    requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// A manifest as the catalogue shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestInfo {
    pub digest: String,
    /// Config plus layers, compressed, as the registry stores them.
    pub size: u64,
}

const PAGE: usize = 1000;

impl Registry {
    pub fn from_site(config: &RegistryConfig, auth: Option<Credentials>) -> Registry {
        crate::base::tls::install_provider();
        let scheme = if config.insecure { "http" } else { "https" };
        Registry {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
            host: config.host.value.clone(),
            setting: config.host.setting("registry.host"),
            base: format!("{scheme}://{}", config.host.value),
            auth,
            requests: Default::default(),
        }
    }

    /// Requests sent so far (for benchmarks).
    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn authorized(&self, req: reqwest::RequestBuilder, scope: &str) -> reqwest::RequestBuilder {
        match self.auth.as_ref().and_then(|a| a.header(scope)) {
            Some(value) => req.header(reqwest::header::AUTHORIZATION, value),
            None => req,
        }
    }

    /// Sends `req` with Berth's credentials for `scope`, counting it.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        scope: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.authorized(req, scope)
            .send()
            .await
            .map_err(|source| RegistryError::Unreachable {
                host: self.host.clone(),
                setting: self.setting.clone(),
                source,
            })
    }

    async fn get(
        &self,
        path: &str,
        accept: Option<&str>,
        scope: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        self.send(req, scope).await
    }

    fn status(&self, path: &str, resp: &reqwest::Response) -> RegistryError {
        RegistryError::Status {
            host: self.host.clone(),
            path: path.to_string(),
            status: resp.status().as_u16(),
        }
    }

    async fn json(&self, resp: reqwest::Response) -> Result<serde_json::Value, RegistryError> {
        resp.json().await.map_err(|source| RegistryError::Body {
            host: self.host.clone(),
            source,
        })
    }

    /// Follows `Link: <…>; rel="next"` pages of a list endpoint.
    async fn paged(
        &self,
        first: String,
        field: &str,
        scope: &str,
    ) -> Result<Vec<String>, RegistryError> {
        let mut out = Vec::new();
        let mut next = Some(first);
        while let Some(path) = next.take() {
            let resp = self.get(&path, None, scope).await?;
            if resp.status().as_u16() == 404 {
                break;
            }
            if !resp.status().is_success() {
                return Err(self.status(&path, &resp));
            }
            next = resp
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(|l| {
                    l.split_once('<')
                        .and_then(|(_, rest)| rest.split_once('>'))
                        .map(|(p, _)| p.to_string())
                });
            let body = self.json(resp).await?;
            out.extend(
                body[field]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string)),
            );
        }
        Ok(out)
    }

    /// Every repository (`GET /v2/_catalog`, paginated).
    /// Bytes an account's images take in its namespace, as its quota
    /// counts them: the compressed size (config and layers) of every
    /// distinct manifest under `<account>/`, each counted once however many
    /// tags name it; layers two manifests share count twice.
    pub async fn namespace_usage(&self, account: &str) -> Result<u64, RegistryError> {
        let prefix = format!("{account}/");
        let mut seen = std::collections::BTreeMap::new();
        for repo in self.catalog().await? {
            if !repo.starts_with(&prefix) {
                continue;
            }
            for tag in self.tags(&repo).await? {
                if let Some(m) = self.manifest(&repo, &tag).await? {
                    seen.insert(m.digest, m.size);
                }
            }
        }
        Ok(seen.values().sum())
    }

    pub async fn catalog(&self) -> Result<Vec<String>, RegistryError> {
        self.paged(
            format!("/v2/_catalog?n={PAGE}"),
            "repositories",
            "registry:catalog:*",
        )
        .await
    }

    /// Tags of a repository (`GET /v2/<name>/tags/list`, paginated).
    pub async fn tags(&self, repository: &str) -> Result<Vec<String>, RegistryError> {
        self.paged(
            format!("/v2/{repository}/tags/list?n={PAGE}"),
            "tags",
            &format!("repository:{repository}:pull"),
        )
        .await
    }

    /// Digest and size of `repository:tag` (`GET /v2/<name>/manifests/<tag>`).
    pub async fn manifest(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<ManifestInfo>, RegistryError> {
        let path = format!("/v2/{repository}/manifests/{tag}");
        let resp = self
            .get(
                &path,
                Some(ACCEPT),
                &format!("repository:{repository}:pull"),
            )
            .await?;
        if resp.status().as_u16() == 404 {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(self.status(&path, &resp));
        }
        let digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = self.json(resp).await?;
        let sizes = |key: &str| {
            body[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l["size"].as_u64())
                .sum::<u64>()
        };
        let size =
            body["config"]["size"].as_u64().unwrap_or(0) + sizes("layers") + sizes("manifests");
        Ok(digest.map(|digest| ManifestInfo { digest, size }))
    }

    /// Deletes the manifest `digest` of `repository` (every tag naming it
    /// goes with it); `false` when the registry no longer had it.
    pub async fn delete_manifest(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<bool, RegistryError> {
        let path = format!("/v2/{repository}/manifests/{digest}");
        let req = self.http.delete(format!("{}{path}", self.base));
        let resp = self
            .send(req, &format!("repository:{repository}:delete"))
            .await?;
        match resp.status().as_u16() {
            404 => Ok(false),
            s if (200..300).contains(&s) => Ok(true),
            _ => Err(self.status(&path, &resp)),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The digest `path:tag` points at now, `None` if there is no such tag.
    pub async fn digest(&self, path: &str, tag: &str) -> Result<Option<String>, RegistryError> {
        let url_path = format!("/v2/{path}/manifests/{tag}");
        let req = self
            .http
            .head(format!("{}{url_path}", self.base))
            .header("Accept", ACCEPT);
        let resp = self.send(req, &format!("repository:{path}:pull")).await?;
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

/// Berth's own registry credentials (`username_env`, `password_env`), when
/// the site names both variables and they are set.
pub fn berth_credentials(site: &berth_spec::Site) -> Option<(String, String)> {
    let reg = site.registry.as_ref()?;
    let var = |v: &Option<berth_spec::Located<String>>| {
        std::env::var(&v.as_ref()?.value)
            .ok()
            .filter(|s| !s.is_empty())
    };
    Some((var(&reg.username_env)?, var(&reg.password_env)?))
}
