//! Talks to the cluster for the Kubernetes backend: server-side apply of
//! Berth's manifests with field manager `berth` (forced, so Berth owns the
//! fields it sets and a student's `kubectl edit` of them is reverted),
//! deletion of objects the plan prunes, and observation of Berth-labelled
//! objects and pods. No decisions here: the plan makes them.

use crate::desired::kube::KubeObject;
use crate::desired::{LABEL_NAME, LABEL_OWNER};
use crate::plan::{KubeObserved, PodState};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    LimitRange, Namespace, PersistentVolumeClaim, Pod, ResourceQuota, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use std::collections::BTreeMap;

pub const FIELD_MANAGER: &str = "berth";

#[derive(Debug, thiserror::Error)]
#[error("kubernetes {op} {kind} {name}: {reason}")]
pub struct KubeError {
    pub op: &'static str,
    pub kind: String,
    pub name: String,
    /// The API server's answer (`403 Forbidden: …`) or the client's error.
    pub reason: String,
}

impl KubeError {
    fn new(op: &'static str, kind: &str, name: &str, e: kube::Error) -> KubeError {
        let reason = match &e {
            kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
            other => other.to_string(),
        };
        KubeError {
            op,
            kind: kind.to_string(),
            name: name.to_string(),
            reason,
        }
    }
}

/// A kind Berth manages: its API resource and whether it lives in a
/// namespace.
struct Kind {
    name: &'static str,
    resource: fn() -> ApiResource,
    namespaced: bool,
}

fn erase<K: kube::Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// Every kind Berth applies and [`KubeBackend::observe`] lists, in apply
/// order. Pods are only read.
const KINDS: &[Kind] = &[
    Kind {
        name: "Namespace",
        resource: erase::<Namespace>,
        namespaced: false,
    },
    Kind {
        name: "ResourceQuota",
        resource: erase::<ResourceQuota>,
        namespaced: true,
    },
    Kind {
        name: "LimitRange",
        resource: erase::<LimitRange>,
        namespaced: true,
    },
    Kind {
        name: "NetworkPolicy",
        resource: erase::<NetworkPolicy>,
        namespaced: true,
    },
    Kind {
        name: "ServiceAccount",
        resource: erase::<ServiceAccount>,
        namespaced: true,
    },
    Kind {
        name: "Role",
        resource: erase::<Role>,
        namespaced: true,
    },
    Kind {
        name: "RoleBinding",
        resource: erase::<RoleBinding>,
        namespaced: true,
    },
    Kind {
        name: "PersistentVolumeClaim",
        resource: erase::<PersistentVolumeClaim>,
        namespaced: true,
    },
    Kind {
        name: "Deployment",
        resource: erase::<Deployment>,
        namespaced: true,
    },
    Kind {
        name: "Service",
        resource: erase::<Service>,
        namespaced: true,
    },
    Kind {
        name: "Ingress",
        resource: erase::<Ingress>,
        namespaced: true,
    },
];

#[derive(Clone)]
pub struct KubeBackend {
    client: Client,
}

impl KubeBackend {
    pub fn new(client: Client) -> Self {
        KubeBackend { client }
    }

    /// The API of `kind`: in `namespace`, or cluster-wide (`None`).
    fn api(&self, kind: &str, namespace: Option<&str>) -> Result<Api<DynamicObject>, KubeError> {
        let k = KINDS
            .iter()
            .find(|k| k.name == kind)
            .ok_or_else(|| KubeError {
                op: "handle",
                kind: kind.to_string(),
                name: String::new(),
                reason: "not a kind Berth manages".into(),
            })?;
        Ok(self.api_of(k, namespace))
    }

    fn api_of(&self, k: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        let ar = (k.resource)();
        match (k.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &ar),
            _ => Api::all_with(self.client.clone(), &ar),
        }
    }

    /// Server-side applies one object.
    pub async fn apply(&self, o: &KubeObject) -> Result<(), KubeError> {
        let api = self.api(&o.kind, o.namespace.as_deref())?;
        api.patch(
            &o.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&o.value),
        )
        .await
        .map(drop)
        .map_err(|e| KubeError::new("apply", &o.kind, &o.describe_name(), e))
    }

    /// Refuses an object of the same name that Berth did not create for
    /// `account`: a forced apply would otherwise take it over.
    pub async fn check_owner(&self, o: &KubeObject, account: &str) -> Result<(), KubeError> {
        let api = self.api(&o.kind, o.namespace.as_deref())?;
        let existing = api
            .get_opt(&o.name)
            .await
            .map_err(|e| KubeError::new("read", &o.kind, &o.describe_name(), e))?;
        match existing {
            None => Ok(()),
            Some(obj) if obj.metadata.labels.as_ref().and_then(|l| l.get(LABEL_OWNER))
                == Some(&account.to_string()) =>
            {
                Ok(())
            }
            Some(_) => Err(KubeError {
                op: "apply",
                kind: o.kind.clone(),
                name: o.describe_name(),
                reason: "an object of that name exists and was not created by Berth for this account; it is left alone".into(),
            }),
        }
    }

    /// Deletes one object; already gone is fine.
    pub async fn delete(&self, kind: &str, namespace: &str, name: &str) -> Result<(), KubeError> {
        let api = self.api(kind, Some(namespace))?;
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(KubeError::new(
                "delete",
                kind,
                &format!("{namespace}/{name}"),
                e,
            )),
        }
    }

    /// Berth's objects and pods by account: every account (`None`) with one
    /// cluster-wide list per kind, or one account's namespace. Only objects
    /// labelled with an owner *and* inside that owner's namespace count, so
    /// nothing outside Berth's namespaces can ever be pruned.
    pub async fn observe(
        &self,
        prefix: &str,
        account: Option<&str>,
    ) -> Result<BTreeMap<String, KubeObserved>, KubeError> {
        let selector = match account {
            Some(a) => format!("{LABEL_OWNER}={a}"),
            None => LABEL_OWNER.to_string(),
        };
        let params = ListParams::default().labels(&selector);
        let namespace = account.map(|a| format!("{prefix}{a}"));
        let mut out: BTreeMap<String, KubeObserved> = BTreeMap::new();
        // One list per kind, all in flight at once: observation sits on the
        // push-to-running path.
        let lists = futures::future::try_join_all(KINDS.iter().map(|kind| {
            let (params, namespace) = (&params, namespace.as_deref());
            async move {
                let list = self
                    .api_of(kind, namespace)
                    .list(params)
                    .await
                    .map_err(|e| {
                        KubeError::new("list", kind.name, namespace.unwrap_or("(all)"), e)
                    })?;
                Ok::<_, KubeError>((kind, list))
            }
        }));
        let pods: Api<Pod> = match &namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let (lists, pod_list) = futures::future::try_join(lists, async {
            pods.list(&params).await.map_err(|e| {
                KubeError::new("list", "Pod", namespace.as_deref().unwrap_or("(all)"), e)
            })
        })
        .await?;
        for (kind, list) in lists {
            let ar = (kind.resource)();
            for item in list.items {
                let Some(owner) = item
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_OWNER))
                else {
                    continue;
                };
                let home = format!("{prefix}{owner}");
                let name = item.metadata.name.clone().unwrap_or_default();
                let inside = match &item.metadata.namespace {
                    Some(ns) => *ns == home,
                    None => name == home,
                };
                if !inside {
                    continue;
                }
                let mut value = serde_json::to_value(&item).unwrap_or_default();
                // List items come without their type; the desired side has it.
                value["apiVersion"] = ar.api_version.clone().into();
                value["kind"] = ar.kind.clone().into();
                out.entry(owner.clone())
                    .or_default()
                    .objects
                    .push(KubeObject {
                        kind: kind.name.to_string(),
                        namespace: item.metadata.namespace.clone(),
                        name,
                        value,
                    });
            }
        }
        for pod in pod_list.items {
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            let Some(owner) = labels.get(LABEL_OWNER) else {
                continue;
            };
            if pod.metadata.namespace.as_deref() != Some(&format!("{prefix}{owner}")) {
                continue;
            }
            out.entry(owner.clone())
                .or_default()
                .pods
                .push(pod_state(&pod, &labels));
        }
        Ok(out)
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
                crate::desired::kube::STUDENT,
                &kube::api::PostParams::default(),
                &request,
            )
            .await
            .map_err(|e| KubeError::new("create token for", "ServiceAccount", namespace, e))?;
        Ok(created.status.map(|s| s.token).unwrap_or_default())
    }
}

fn pod_state(pod: &Pod, labels: &BTreeMap<String, String>) -> PodState {
    let status = pod.status.clone().unwrap_or_default();
    let first = status
        .container_statuses
        .unwrap_or_default()
        .into_iter()
        .next();
    PodState {
        name: pod.metadata.name.clone().unwrap_or_default(),
        workload: labels.get(LABEL_NAME).cloned().unwrap_or_default(),
        phase: status.phase.unwrap_or_else(|| "Unknown".into()),
        ready: first.as_ref().is_some_and(|c| c.ready),
        restarts: first.as_ref().map_or(0, |c| c.restart_count),
        reason: first.and_then(|c| c.state).and_then(|s| {
            s.waiting
                .and_then(|w| w.reason)
                .or(s.terminated.and_then(|t| t.reason))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::kube::{Settings, manifests, namespace};
    use http::{Request, Response};
    use kube::client::Body;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn settings() -> Settings {
        Settings {
            namespace_prefix: "berth-".into(),
            ingress_namespace: "ingress-nginx".into(),
            ingress_domain: Some("apps.test".into()),
            http_ports: vec![8080],
        }
    }

    fn site() -> berth_spec::Site {
        crate::fixtures::example_site()
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
        let m = manifests(
            &settings(),
            &site(),
            &crate::desired::kube::fixtures::owner(false),
            &[&c],
            None,
        );
        let server = tokio::spawn(async move {
            expect_apply(&mut handle, "/api/v1/namespaces/berth-alice", "Namespace").await;
            expect_apply(
                &mut handle,
                "/api/v1/namespaces/berth-alice/limitranges/berth-defaults",
                "LimitRange",
            )
            .await;
            expect_apply(
                &mut handle,
                "/apis/networking.k8s.io/v1/namespaces/berth-alice/networkpolicies/berth-isolation",
                "NetworkPolicy",
            )
            .await;
            expect_apply(
                &mut handle,
                "/api/v1/namespaces/berth-alice/serviceaccounts/student",
                "ServiceAccount",
            )
            .await;
            expect_apply(
                &mut handle,
                "/apis/rbac.authorization.k8s.io/v1/namespaces/berth-alice/roles/berth-student",
                "Role",
            )
            .await;
            expect_apply(
                &mut handle,
                "/apis/rbac.authorization.k8s.io/v1/namespaces/berth-alice/rolebindings/berth-student",
                "RoleBinding",
            )
            .await;
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
        for o in m.account.iter().chain(m.workloads.values().flatten()) {
            backend.apply(o).await.expect("applied");
        }
        server.await.expect("every expected request came");
    }

    /// Answers the next request, checking method and path, with `status`
    /// and `body`; returns the query string.
    async fn answer(
        handle: &mut Handle,
        method: http::Method,
        path: &str,
        status: u16,
        body: serde_json::Value,
    ) -> String {
        let (request, send) = handle.next_request().await.expect("a request");
        assert_eq!(request.method(), method);
        assert_eq!(request.uri().path(), path);
        let query = request.uri().query().unwrap_or_default().to_string();
        send.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(body.to_string().into_bytes()))
                .expect("response"),
        );
        query
    }

    /// The API server's failure body.
    fn failure(code: u16, reason: &str, message: &str) -> serde_json::Value {
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": message, "reason": reason, "code": code})
    }

    #[tokio::test]
    async fn deleting_an_object_already_gone_succeeds() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let backend = KubeBackend::new(Client::new(service, "default"));
        let server = tokio::spawn(async move {
            let path = "/apis/apps/v1/namespaces/berth-alice/deployments/old";
            let gone = failure(404, "NotFound", "not found");
            answer(&mut handle, http::Method::DELETE, path, 404, gone).await;
        });
        backend
            .delete("Deployment", "berth-alice", "old")
            .await
            .expect("already gone is fine");
        server.await.expect("served");
    }

    #[tokio::test]
    async fn an_object_berth_did_not_create_is_not_taken_over() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let backend = KubeBackend::new(Client::new(service, "default"));
        let server = tokio::spawn(async move {
            let path = "/apis/apps/v1/namespaces/berth-alice/deployments/web";
            let theirs = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "berth-alice", "labels": {"app": "web"}}});
            answer(&mut handle, http::Method::GET, path, 200, theirs).await;
        });
        let object = KubeObject {
            kind: "Deployment".into(),
            namespace: Some("berth-alice".into()),
            name: "web".into(),
            value: serde_json::json!({}),
        };
        let err = backend
            .check_owner(&object, "alice")
            .await
            .expect_err("not Berth's");
        assert!(err.to_string().contains("not created by Berth"), "{err}");
        server.await.expect("served");
    }

    #[tokio::test]
    async fn observation_lists_by_label_and_ignores_objects_outside_the_owners_namespace() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let backend = KubeBackend::new(Client::new(service, "default"));
        let server = tokio::spawn(async move {
            let mut expected: std::collections::BTreeSet<&str> = [
                "/api/v1/namespaces",
                "/api/v1/resourcequotas",
                "/api/v1/limitranges",
                "/apis/networking.k8s.io/v1/networkpolicies",
                "/api/v1/serviceaccounts",
                "/apis/rbac.authorization.k8s.io/v1/roles",
                "/apis/rbac.authorization.k8s.io/v1/rolebindings",
                "/api/v1/persistentvolumeclaims",
                "/apis/apps/v1/deployments",
                "/api/v1/services",
                "/apis/networking.k8s.io/v1/ingresses",
                "/api/v1/pods",
            ]
            .into();
            while !expected.is_empty() {
                let (request, send) = handle.next_request().await.expect("a request");
                let path = request.uri().path().to_string();
                assert!(
                    expected.remove(path.as_str()),
                    "unexpected or repeated {path}"
                );
                let query = request.uri().query().unwrap_or_default().to_string();
                assert!(
                    query.contains("labelSelector=berth.owner"),
                    "{path}?{query}"
                );
                let path = path.as_str();
                let items = if path == "/apis/apps/v1/deployments" {
                    serde_json::json!([
                        {"metadata": {"name": "web", "namespace": "berth-alice",
                            "labels": {"berth.owner": "alice", "berth.name": "web"}}},
                        {"metadata": {"name": "web", "namespace": "kube-system",
                            "labels": {"berth.owner": "alice", "berth.name": "web"}}}
                    ])
                } else if path == "/api/v1/pods" {
                    serde_json::json!([{"metadata": {"name": "web-1", "namespace": "berth-alice",
                        "labels": {"berth.owner": "alice", "berth.name": "web"}},
                        "status": {"phase": "Pending", "containerStatuses": [{"name": "web",
                            "ready": false, "restartCount": 3, "image": "x", "imageID": "",
                            "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}}])
                } else {
                    serde_json::json!([])
                };
                let list = serde_json::json!({"kind": "List", "apiVersion": "v1",
                    "metadata": {"resourceVersion": "1"}, "items": items});
                send.send_response(
                    Response::builder()
                        .body(Body::from(list.to_string().into_bytes()))
                        .expect("response"),
                );
            }
        });
        let got = backend.observe("berth-", None).await.expect("observed");
        server.await.expect("every list came");
        let alice = &got["alice"];
        assert_eq!(alice.objects.len(), 1, "kube-system's copy is not Berth's");
        assert_eq!(alice.objects[0].value["kind"], "Deployment");
        assert_eq!(alice.objects[0].value["apiVersion"], "apps/v1");
        assert_eq!(alice.pods[0].restarts, 3);
        assert_eq!(alice.pods[0].reason.as_deref(), Some("ImagePullBackOff"));
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
    async fn api_errors_name_the_object_and_the_servers_reason() {
        let cases = [
            (403, "Forbidden", "namespaces \"berth-alice\" is forbidden"),
            (
                409,
                "Conflict",
                "Operation cannot be fulfilled on namespaces \"berth-alice\": the namespace is being terminated",
            ),
            (
                422,
                "Invalid",
                "Deployment.apps \"api\" is invalid: spec.template.spec.containers[0].image: Required value",
            ),
        ];
        for (code, reason, message) in cases {
            let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
            let backend = KubeBackend::new(Client::new(service, "default"));
            let server = tokio::spawn(async move {
                let path = "/api/v1/namespaces/berth-alice";
                let body = failure(code, reason, message);
                answer(&mut handle, http::Method::PATCH, path, code, body).await;
            });
            let err = backend
                .apply(&KubeObject::of(&namespace(&settings(), "alice")))
                .await
                .expect_err("refused");
            assert_eq!(
                err.to_string(),
                format!("kubernetes apply Namespace berth-alice: {code} {reason}: {message}")
            );
            server.await.expect("served");
        }
    }
}
