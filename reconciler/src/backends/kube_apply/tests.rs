//! The Kubernetes backend against a scripted API server (kube-rs's
//! `tower-test` pattern): exact verbs, paths, parameters and bodies.

use super::*;
use berth_core::desired::kube::{Settings, manifests, namespace};
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
        &berth_core::desired::kube::fixtures::owner(false),
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
