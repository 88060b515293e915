//! An in-process fake Kubernetes API server for end-to-end tests: no API
//! server can be installed on the test machines. It keeps objects in
//! memory and answers the calls Berth makes the way an API server does:
//! server-side apply (PATCH with `application/apply-patch+yaml`) stores the
//! object as [`crate::apiserver::stored`] models it (defaults, canonical
//! quantities, empty lists dropped: a `diff` after `apply` would show any
//! false drift); GET of objects and of collections (with `labelSelector`),
//! DELETE, one Running pod per Deployment with replicas, and two log lines
//! per pod. Namespaces can
//! be made to answer 403 to test how API errors surface.

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// Where an object lives: API prefix (`/api/v1`, `/apis/apps/v1`),
/// resource (`deployments`), namespace, name.
type Key = (String, String, Option<String>, String);

#[derive(Default)]
struct State {
    objects: BTreeMap<Key, Value>,
    forbidden: BTreeSet<String>,
    /// `METHOD path?query` of every request, in order.
    log: Vec<String>,
    version: u64,
}

#[derive(Clone)]
pub struct FakeKube {
    pub server: Arc<MockServer>,
    state: Arc<Mutex<State>>,
}

impl FakeKube {
    pub async fn start() -> FakeKube {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State::default()));
        let handler = Arc::clone(&state);
        Mock::given(any())
            .respond_with(move |r: &Request| {
                let mut s = handler.lock().unwrap_or_else(|p| p.into_inner());
                respond(&mut s, r)
            })
            .mount(&server)
            .await;
        FakeKube {
            server: Arc::new(server),
            state,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A kubeconfig file pointing at this server.
    pub fn write_kubeconfig(&self, path: &std::path::Path) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n  - name: fake\n    cluster: {{ server: \"{}\" }}\ncontexts:\n  - name: fake\n    context: {{ cluster: fake, user: admin, namespace: default }}\ncurrent-context: fake\nusers:\n  - name: admin\n    user: {{ token: fake-admin-token }}\n",
            self.server.uri()
        );
        std::fs::write(path, text).expect("write kubeconfig");
    }

    /// The stored object at an API path such as
    /// `/apis/apps/v1/namespaces/berth-alice/deployments/web`.
    pub fn get(&self, path: &str) -> Option<Value> {
        let key = parse(path).and_then(|r| r.key())?;
        self.state().objects.get(&key).cloned()
    }

    /// Replaces a stored object (an admin's `kubectl edit`, or an object
    /// Berth did not create).
    pub fn put(&self, path: &str, value: Value) {
        let key = parse(path).and_then(|r| r.key()).expect("an object path");
        self.state().objects.insert(key, value);
    }

    /// Every write (PATCH, DELETE, POST) so far, as `METHOD path?query`.
    pub fn writes(&self) -> Vec<String> {
        self.state()
            .log
            .iter()
            .filter(|l| !l.starts_with("GET "))
            .cloned()
            .collect()
    }

    /// Makes every write in `namespace` answer 403 Forbidden.
    pub fn forbid(&self, namespace: &str) {
        self.state().forbidden.insert(namespace.to_string());
    }
}

struct Route {
    prefix: String,
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
    /// `token` in `…/serviceaccounts/student/token`.
    sub: Option<String>,
}

impl Route {
    fn key(&self) -> Option<Key> {
        Some((
            self.prefix.clone(),
            self.resource.clone(),
            self.namespace.clone(),
            self.name.clone()?,
        ))
    }
}

fn parse(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (prefix, rest) = match *segs.first()? {
        "api" => (format!("/api/{}", segs.get(1)?), &segs[2..]),
        "apis" => (
            format!("/apis/{}/{}", segs.get(1)?, segs.get(2)?),
            &segs[3..],
        ),
        _ => return None,
    };
    let s = |i: usize| rest.get(i).map(|x| x.to_string());
    Some(match (rest.first().copied(), rest.len()) {
        (Some("namespaces"), 1) | (Some(_), 1) => Route {
            prefix,
            resource: s(0)?,
            namespace: None,
            name: None,
            sub: None,
        },
        (Some("namespaces"), 2) => Route {
            prefix,
            resource: "namespaces".into(),
            namespace: None,
            name: s(1),
            sub: None,
        },
        (Some("namespaces"), 3) => Route {
            prefix,
            resource: s(2)?,
            namespace: s(1),
            name: None,
            sub: None,
        },
        (Some("namespaces"), 4) => Route {
            prefix,
            resource: s(2)?,
            namespace: s(1),
            name: s(3),
            sub: None,
        },
        (Some("namespaces"), 5) => Route {
            prefix,
            resource: s(2)?,
            namespace: s(1),
            name: s(3),
            sub: s(4),
        },
        _ => return None,
    })
}

fn status(code: u16, reason: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(code).set_body_json(json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code
    }))
}

fn selector_matches(query: &str, labels: &Value) -> bool {
    let selector = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("labelSelector="))
        .map(|s| s.replace("%3D", "=").replace("%2C", ","));
    let Some(selector) = selector else {
        return true;
    };
    selector
        .split(',')
        .filter(|t| !t.is_empty())
        .all(|term| match term.split_once('=') {
            Some((k, v)) => labels[k].as_str() == Some(v),
            None => labels.get(term).is_some(),
        })
}

fn respond(s: &mut State, r: &Request) -> ResponseTemplate {
    let path = r.url.path().to_string();
    let query = r.url.query().unwrap_or_default().to_string();
    s.log.push(format!("{} {path}?{query}", r.method));
    let Some(route) = parse(&path) else {
        return status(404, "NotFound", &format!("no route {path}"));
    };
    if route.resource == "pods" && route.name.is_none() {
        return list(&pods(s, route.namespace.as_deref(), &query));
    }
    let method = r.method.as_str();
    if method != "GET" {
        let ns = route.namespace.clone().or_else(|| {
            (route.resource == "namespaces")
                .then(|| route.name.clone())
                .flatten()
        });
        if let Some(ns) = ns.filter(|n| s.forbidden.contains(n)) {
            return status(
                403,
                "Forbidden",
                &format!(
                    "{} is forbidden: User \"system:serviceaccount:berth:reconciler\" cannot patch resource \"{}\" in namespace \"{ns}\"",
                    route.resource, route.resource
                ),
            );
        }
    }
    if method == "POST" && route.sub.as_deref() == Some("token") {
        return token(s, &route, &r.body);
    }
    // A pod's log: two lines naming the pod (only pods that exist).
    if method == "GET" && route.resource == "pods" && route.sub.as_deref() == Some("log") {
        let name = route.name.clone().unwrap_or_default();
        let exists = pods(s, route.namespace.as_deref(), "")
            .iter()
            .any(|p| p["metadata"]["name"] == name.as_str());
        if !exists {
            return status(404, "NotFound", &format!("pods \"{name}\" not found"));
        }
        return ResponseTemplate::new(200).set_body_string(format!(
            "2026-11-26T12:00:00Z fake log line 1 from {name}\n2026-11-26T12:00:01Z fake log line 2 from {name}\n"
        ));
    }
    if route.sub.is_some() {
        return status(404, "NotFound", &format!("no subresource {path}"));
    }
    match (method, route.key()) {
        ("GET", None) => {
            let items: Vec<Value> = s
                .objects
                .iter()
                .filter(|((p, res, ns, _), _)| {
                    *p == route.prefix
                        && *res == route.resource
                        && (route.namespace.is_none() || *ns == route.namespace)
                })
                .map(|(_, v)| v.clone())
                .filter(|v| selector_matches(&query, &v["metadata"]["labels"]))
                .map(|mut v| {
                    // Like the real server, list items carry no type.
                    if let Some(o) = v.as_object_mut() {
                        o.remove("kind");
                        o.remove("apiVersion");
                    }
                    v
                })
                .collect();
            list(&items)
        }
        ("GET", Some(key)) => match s.objects.get(&key) {
            Some(v) => ResponseTemplate::new(200).set_body_json(v),
            None => status(
                404,
                "NotFound",
                &format!("{} \"{}\" not found", key.1, key.3),
            ),
        },
        ("PATCH", Some(key)) => {
            let Ok(body) = serde_json::from_slice::<Value>(&r.body) else {
                return status(400, "BadRequest", "body is not JSON");
            };
            if body["metadata"]["name"].as_str() != Some(key.3.as_str()) {
                return status(422, "Invalid", "metadata.name does not match the path");
            }
            s.version += 1;
            let stored = crate::apiserver::stored(body, s.version);
            s.objects.insert(key, stored.clone());
            ResponseTemplate::new(200).set_body_json(stored)
        }
        ("DELETE", Some(key)) => match s.objects.remove(&key) {
            Some(_) => ResponseTemplate::new(200).set_body_json(json!({
                "kind": "Status", "apiVersion": "v1", "status": "Success"})),
            None => status(
                404,
                "NotFound",
                &format!("{} \"{}\" not found", key.1, key.3),
            ),
        },
        _ => status(405, "MethodNotAllowed", "not supported by the fake"),
    }
}

/// TokenRequest for a service account that exists: a fake bound token
/// naming the account and the lifetime asked for.
fn token(s: &State, route: &Route, body: &[u8]) -> ResponseTemplate {
    let Some(ns) = &route.namespace else {
        return status(404, "NotFound", "no namespace");
    };
    let account = route.name.as_deref().unwrap_or_default();
    let key = (
        route.prefix.clone(),
        "serviceaccounts".to_string(),
        Some(ns.clone()),
        account.to_string(),
    );
    if !s.objects.contains_key(&key) {
        return status(
            404,
            "NotFound",
            &format!("serviceaccounts \"{account}\" not found"),
        );
    }
    let request: Value = serde_json::from_slice(body).unwrap_or_default();
    let seconds = request["spec"]["expirationSeconds"]
        .as_i64()
        .unwrap_or(3600);
    ResponseTemplate::new(201).set_body_json(json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": request["spec"],
        "status": {"token": format!("fake-bound-{ns}-{account}-{seconds}s"),
                   "expirationTimestamp": "2026-11-26T18:00:00Z"}
    }))
}

fn list(items: &[Value]) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items
    }))
}

/// One Running, ready pod per Deployment with replicas.
fn pods(s: &State, namespace: Option<&str>, query: &str) -> Vec<Value> {
    s.objects
        .iter()
        .filter(|((_, res, ns, _), _)| {
            res == "deployments" && (namespace.is_none() || ns.as_deref() == namespace)
        })
        .filter(|(_, d)| d["spec"]["replicas"].as_i64().unwrap_or(1) > 0)
        .map(|((_, _, ns, name), d)| {
            json!({
                "metadata": {"name": format!("{name}-7d4b9c-x2x9q"), "namespace": ns,
                             "labels": d["spec"]["template"]["metadata"]["labels"]},
                "status": {"phase": "Running", "containerStatuses": [{
                    "name": name, "ready": true, "restartCount": 0,
                    "image": d["spec"]["template"]["spec"]["containers"][0]["image"],
                    "imageID": "", "state": {"running": {}}}]}
            })
        })
        .filter(|p| selector_matches(query, &p["metadata"]["labels"]))
        .collect()
}
