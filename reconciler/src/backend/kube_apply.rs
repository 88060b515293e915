//! Talks to the cluster for the Kubernetes backend: server-side apply of
//! Berth's manifests with field manager `berth` (forced, so Berth owns the
//! fields it sets and a student's `kubectl edit` of them is reverted), and
//! observation of the account's Deployments by label. No decisions here.

use super::kube::Workload;
use crate::desired::{LABEL_HASH, LABEL_NAME, LABEL_OWNER};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

pub const FIELD_MANAGER: &str = "berth";

#[derive(Debug, thiserror::Error)]
#[error("kubernetes {op} {kind} {name}: {source}")]
pub struct KubeError {
    pub op: &'static str,
    pub kind: String,
    pub name: String,
    #[source]
    pub source: Box<kube::Error>,
}

/// The account-level objects applied before any workload.
pub struct AccountObjects {
    pub namespace: Namespace,
    pub quota: ResourceQuota,
    pub limits: LimitRange,
    pub service_account: ServiceAccount,
    pub role: Role,
    pub binding: RoleBinding,
}

#[derive(Clone)]
pub struct KubeBackend {
    client: Client,
}

impl KubeBackend {
    pub fn new(client: Client) -> Self {
        KubeBackend { client }
    }

    fn params() -> PatchParams {
        PatchParams::apply(FIELD_MANAGER).force()
    }

    /// Server-side applies the account's namespace.
    pub async fn apply_namespace(&self, object: &Namespace) -> Result<Namespace, KubeError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        Self::patch(api, object).await
    }

    /// Server-side applies one namespaced object, in its metadata's namespace.
    pub async fn apply<K>(&self, object: &K) -> Result<K, KubeError>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + Serialize
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let ns = object.meta().namespace.clone().unwrap_or_default();
        Self::patch(Api::namespaced(self.client.clone(), &ns), object).await
    }

    async fn patch<K>(api: Api<K>, object: &K) -> Result<K, KubeError>
    where
        K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
    {
        let name = object.meta().name.clone().unwrap_or_default();
        api.patch(&name, &Self::params(), &Patch::Apply(object))
            .await
            .map_err(|e| KubeError {
                op: "apply",
                kind: K::kind(&()).to_string(),
                name,
                source: Box::new(e),
            })
    }

    /// Namespace first, then quota, defaults and the student's access.
    pub async fn apply_account(&self, o: &AccountObjects) -> Result<(), KubeError> {
        self.apply_namespace(&o.namespace).await?;
        self.apply(&o.quota).await?;
        self.apply(&o.limits).await?;
        self.apply(&o.service_account).await?;
        self.apply(&o.role).await?;
        self.apply(&o.binding).await?;
        Ok(())
    }

    /// Claims, then the Deployment, Service and Ingress of one container.
    pub async fn apply_workload(&self, w: &Workload) -> Result<(), KubeError> {
        for claim in &w.claims {
            self.apply(claim).await?;
        }
        self.apply(&w.deployment).await?;
        if let Some(s) = &w.service {
            self.apply(s).await?;
        }
        if let Some(i) = &w.ingress {
            self.apply(i).await?;
        }
        Ok(())
    }

    /// A bound token of the student's service account, valid for `lifetime`.
    pub async fn student_token(
        &self,
        namespace: &str,
        lifetime: std::time::Duration,
    ) -> Result<String, KubeError> {
        use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![],
                expiration_seconds: Some(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX)),
                ..Default::default()
            },
            ..Default::default()
        };
        let created = api
            .create_token_request(
                super::kube::STUDENT,
                &kube::api::PostParams::default(),
                &request,
            )
            .await
            .map_err(|e| KubeError {
                op: "create token for",
                kind: "ServiceAccount".into(),
                name: namespace.into(),
                source: Box::new(e),
            })?;
        Ok(created.status.map(|s| s.token).unwrap_or_default())
    }

    /// The account's Deployments: declared name → spec hash.
    pub async fn observe(
        &self,
        namespace: &str,
        account: &str,
    ) -> Result<BTreeMap<String, String>, KubeError> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let list = api
            .list(&ListParams::default().labels(&format!("{LABEL_OWNER}={account}")))
            .await
            .map_err(|e| KubeError {
                op: "list",
                kind: "Deployment".into(),
                name: namespace.into(),
                source: Box::new(e),
            })?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|d| {
                let labels = d.metadata.labels?;
                Some((
                    labels.get(LABEL_NAME)?.clone(),
                    labels.get(LABEL_HASH).cloned().unwrap_or_default(),
                ))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::kube::{Settings, namespace, workload};
    use http::{Request, Response};
    use kube::client::Body;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn settings() -> Settings {
        Settings {
            namespace_prefix: "berth-".into(),
            ingress_domain: Some("apps.test".into()),
            http_ports: vec![8080],
        }
    }

    fn site() -> berth_spec::Site {
        crate::context::example_site()
    }

    /// Answers the next request after checking it is a server-side apply
    /// of `kind` at `path`, echoing the body back as the stored object.
    async fn expect_apply(handle: &mut Handle, path: &str, kind: &str) {
        let (request, send) = handle.next_request().await.expect("a request");
        assert_eq!(request.method(), http::Method::PATCH);
        assert_eq!(request.uri().path(), path);
        let query = request.uri().query().unwrap_or_default().to_string();
        assert!(
            query.contains("fieldManager=berth") && query.contains("force=true"),
            "{query}"
        );
        assert_eq!(
            request
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/apply-patch+yaml")
        );
        let body = request.into_body().collect_bytes().await.expect("body");
        let value: serde_json::Value = serde_json::from_slice(&body).expect("JSON body");
        assert_eq!(value["kind"], kind, "{value}");
        send.send_response(
            Response::builder()
                .body(Body::from(body.to_vec()))
                .expect("response"),
        );
    }

    #[tokio::test]
    async fn workloads_are_server_side_applied_in_order() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let backend = KubeBackend::new(Client::new(service, "default"));
        let text = "version: 1\ncontainers:\n  - name: api\n    image: python:3.12\n    backend: kubernetes\n    ports: [8080]\n    volumes: [{ name: data, path: /data }]\n";
        let c = berth_spec::parse_workspace(text.as_bytes())
            .expect("valid")
            .containers
            .remove(0);
        let w = workload(
            &settings(),
            &site(),
            "alice",
            "alice/workspace",
            "abc",
            &c,
            false,
        );
        let ns = namespace(&settings(), "alice");
        let server = tokio::spawn(async move {
            expect_apply(&mut handle, "/api/v1/namespaces/berth-alice", "Namespace").await;
            expect_apply(
                &mut handle,
                "/api/v1/namespaces/berth-alice/persistentvolumeclaims/data",
                "PersistentVolumeClaim",
            )
            .await;
            expect_apply(
                &mut handle,
                "/apis/apps/v1/namespaces/berth-alice/deployments/api",
                "Deployment",
            )
            .await;
            expect_apply(
                &mut handle,
                "/api/v1/namespaces/berth-alice/services/api",
                "Service",
            )
            .await;
            expect_apply(
                &mut handle,
                "/apis/networking.k8s.io/v1/namespaces/berth-alice/ingresses/api",
                "Ingress",
            )
            .await;
        });
        backend
            .apply_namespace(&ns)
            .await
            .expect("namespace applied");
        backend.apply_workload(&w).await.expect("workload applied");
        server.await.expect("every expected request came");
    }

    #[tokio::test]
    async fn student_tokens_are_bound_tokens_with_the_site_lifetime() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let backend = KubeBackend::new(Client::new(service, "default"));
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("a request");
            assert_eq!(request.method(), http::Method::POST);
            assert_eq!(
                request.uri().path(),
                "/api/v1/namespaces/berth-alice/serviceaccounts/student/token"
            );
            let body: serde_json::Value =
                serde_json::from_slice(&request.into_body().collect_bytes().await.expect("body"))
                    .expect("JSON");
            assert_eq!(body["spec"]["expirationSeconds"], 28800);
            let answer = serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": [], "expirationSeconds": 28800},
                "status": {"token": "eyJ.bound", "expirationTimestamp": "2026-11-26T12:00:00Z"}});
            send.send_response(
                Response::builder()
                    .status(201)
                    .body(Body::from(answer.to_string().into_bytes()))
                    .expect("response"),
            );
        });
        let token = backend
            .student_token("berth-alice", std::time::Duration::from_secs(8 * 3600))
            .await
            .expect("token");
        assert_eq!(token, "eyJ.bound");
        server.await.expect("served");
    }

    #[tokio::test]
    async fn api_errors_name_the_object() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let backend = KubeBackend::new(Client::new(service, "default"));
        let server = tokio::spawn(async move {
            let (_, send) = handle.next_request().await.expect("a request");
            let status = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": "namespaces \"berth-alice\" is forbidden", "reason": "Forbidden", "code": 403});
            send.send_response(
                Response::builder()
                    .status(403)
                    .body(Body::from(status.to_string().into_bytes()))
                    .expect("response"),
            );
        });
        let err = backend
            .apply_namespace(&namespace(&settings(), "alice"))
            .await
            .expect_err("forbidden");
        assert!(
            err.to_string()
                .starts_with("kubernetes apply Namespace berth-alice:"),
            "{err}"
        );
        server.await.expect("served");
    }
}
