//! What only a fake API server can show: the exact requests Berth makes
//! (verbs, paths, `fieldManager=berth`, `force=true`, their order and
//! number, nothing written by `diff`) and faults a healthy cluster does not
//! produce (a 403 for one namespace). The real reconciler binary, real
//! dockerd, slapd and git, and an in-process fake API server
//! (`berth_tests::fakekube`). Behaviour against a real API server —
//! defaulting, drift, RBAC, quota admission, pruning, ownership — is
//! `kubernetes_cluster.rs`, against the control plane `scripts/test.sh`
//! starts.

use berth_tests::fakekube::FakeKube;
use berth_tests::fixture::World;
use berth_tests::{Services, stdout};

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces";

fn mixed(image: &str, greeting: &str, with_api: bool) -> String {
    let api = if with_api {
        "  - name: api
    image: python:3.12
    backend: kubernetes
    command: [python, -m, http.server, \"8080\"]
    env: { MODE: prod }
    ports: [8080]
    resources: { cpus: 0.5, memory: 256Mi }
    volumes: [{ name: data, path: /srv }]
"
    } else {
        ""
    };
    format!(
        "version: 1
containers:
  - name: web
    image: {image}
    env: {{ GREETING: {greeting} }}
    ports: [8080]
    resources: {{ cpus: 0.2, memory: 32Mi }}
{api}"
    )
}

fn world_with_cluster(s: &Services, first_port: u16) -> (World, FakeKube, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let kube = rt.block_on(FakeKube::start());
    let mut w = World::new(s, first_port);
    let kubeconfig = w.dir.join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig);
    w.site_overrides.kubeconfig = Some(kubeconfig);
    (w, kube, rt)
}

fn run(w: &World, args: &[&str]) -> (Option<i32>, String) {
    let out = w.reconciler(args);
    (
        out.status.code(),
        format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn mixed_workspace_applies_with_the_requests_berth_means() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (mut w, kube, _rt) = world_with_cluster(&s, 23_100);
    let a = w.account("kmix", &["students"]);
    let mail = w.mail(&a);
    let ns = format!("berth-{a}");
    w.commit(&a, Some(&mixed(&s.test_image, "hello", true)), &mail);

    let (code, text) = run(&w, &["diff"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(&format!("+ create {a}--web")), "{text}");
    assert!(
        text.contains(&format!("+ create {ns} (kubernetes)")),
        "{text}"
    );
    assert!(
        text.contains(&format!("+ create {ns}/api (kubernetes)")),
        "{text}"
    );
    assert!(
        kube.writes().is_empty(),
        "diff wrote to the cluster: {:?}",
        kube.writes()
    );

    w.apply(0);
    // Docker half: the container really runs.
    assert_eq!(
        w.inspect(&format!("{a}--web"), "{{.State.Running}}")
            .as_deref(),
        Some("true")
    );
    // Kubernetes half: every object server-side applied by `berth`, forced.
    let writes = kube.writes();
    assert!(
        writes.iter().all(|l| l.starts_with("PATCH ")
            && l.contains("fieldManager=berth")
            && l.contains("force=true")),
        "{writes:#?}"
    );
    let paths: Vec<&str> = writes
        .iter()
        .map(|l| l.split(['?', ' ']).nth(1).unwrap_or_default())
        .collect();
    let want = [
        format!("/api/v1/namespaces/{ns}"),
        format!("/api/v1/namespaces/{ns}/resourcequotas/berth-quota"),
        format!("/api/v1/namespaces/{ns}/limitranges/berth-defaults"),
        format!("/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/berth-isolation"),
        format!("/api/v1/namespaces/{ns}/serviceaccounts/student"),
        format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/berth-student"),
        format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings/berth-student"),
        format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/data"),
        format!("{DEPLOYMENTS}/{ns}/deployments/api"),
        format!("/api/v1/namespaces/{ns}/services/api"),
        format!("/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses/api"),
    ];
    assert_eq!(paths, want.iter().map(String::as_str).collect::<Vec<_>>());
    let dep = kube
        .get(&format!("{DEPLOYMENTS}/{ns}/deployments/api"))
        .expect("deployment stored");
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        "docker.io/library/python:3.12"
    );
    assert_eq!(dep["metadata"]["labels"]["berth.owner"], a.as_str());

    // No false drift from the server's defaults and canonical quantities.
    let (code, text) = run(&w, &["diff"]);
    assert_eq!(code, Some(0), "drift right after apply:\n{text}");

    // Status: Docker state and Kubernetes readiness, pods, URL.
    let status = w.status(&a);
    let api = status["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "api"))
        .unwrap_or_else(|| panic!("api not in {status}"));
    assert_eq!(api["backend"], "kubernetes");
    assert_eq!(api["state"], "running");
    assert_eq!(api["ready"], "1/1");
    assert_eq!(api["restarts"], 0);
    assert_eq!(api["url"], format!("http://{a}--api.apps.test/"));
    assert_eq!(api["ports"][0], format!("api.{ns}.svc:8080"));

    // The student's kubeconfig: their namespace, a bound token of the
    // site's lifetime (8h by default), the cluster's address.
    let (code, config) = run(&w, &["kubeconfig", "--account", &a]);
    assert_eq!(code, Some(0), "{config}");
    assert!(
        config.contains(&format!("server: {}", kube.server.uri())),
        "{config}"
    );
    assert!(config.contains(&format!("namespace: {ns}")), "{config}");
    assert!(
        config.contains(&format!("token: fake-bound-{ns}-student-28800s")),
        "{config}"
    );
    let (code, text) = run(&w, &["kubeconfig", "--account", "nobody-here"]);
    assert_eq!(code, Some(2), "no namespace, no token: {text}");

    // Drift, its repair and pruning against a real API server's objects:
    // kubernetes_cluster.rs.
}

#[test]
fn api_errors_surface_in_status_and_other_accounts_converge() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (mut w, kube, _rt) = world_with_cluster(&s, 23_200);
    let denied = w.account("kden", &["students"]);
    let fine = w.account("kok", &["students"]);
    for a in [&denied, &fine] {
        let mail = w.mail(a);
        w.commit(a, Some(&mixed(&s.test_image, "hi", true)), &mail);
    }
    kube.forbid(&format!("berth-{denied}"));
    let text = w.apply(2);
    assert!(text.contains("403"), "{text}");

    let status = w.status(&denied);
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("Namespace berth-{denied}")) && error.contains("403 Forbidden"),
        "status names the object and the reason: {status}"
    );
    // The account's Docker container is not held back by the cluster.
    assert_eq!(
        w.inspect(&format!("{denied}--web"), "{{.State.Running}}")
            .as_deref(),
        Some("true")
    );
    let ok = w.status(&fine);
    assert!(ok["last_error"].is_null(), "{ok}");
    assert!(
        kube.get(&format!("{DEPLOYMENTS}/berth-{fine}/deployments/api"))
            .is_some(),
        "the other account converged"
    );
}

#[test]
fn serve_converges_kubernetes_containers_on_push() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (mut w, kube, rt) = world_with_cluster(&s, 23_600);
    // Webhooks need the GitLab section; its API (commit statuses) says yes.
    let gitlab = rt.block_on(async {
        let gl = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::any())
            .respond_with(wiremock::ResponseTemplate::new(201).set_body_json(serde_json::json!({})))
            .mount(&gl)
            .await;
        gl
    });
    rt.block_on(w.use_gitlab(&gitlab));
    let a = w.account("kserve", &["students"]);
    let mail = w.mail(&a);
    let path = format!("{DEPLOYMENTS}/berth-{a}/deployments/api");
    let server = w.serve();
    let env_of = |kube: &FakeKube| {
        kube.get(&path).map(|d| {
            d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
    };
    let r1 = w.commit(&a, Some(&mixed(&s.test_image, "one", true)), &mail);
    let secret = berth_tests::fixture::WEBHOOK_SECRET;
    assert_eq!(server.push(&a, &r1, &a, "k1", secret), 202);
    berth_tests::wait_for(
        std::time::Duration::from_secs(30),
        "the first reconcile to finish (its last object is the Ingress)",
        || {
            kube.get(&format!(
                "/apis/networking.k8s.io/v1/namespaces/berth-{a}/ingresses/api"
            ))
        },
    );
    assert_eq!(env_of(&kube).as_deref(), Some("prod"));
    // A change reaches the cluster through the account's own (namespaced)
    // observation, and nothing else is rewritten.
    let before = kube.writes().len();
    let changed = mixed(&s.test_image, "two", true).replace("MODE: prod", "MODE: test");
    let r2 = w.commit(&a, Some(&changed), &mail);
    assert_eq!(server.push(&a, &r2, &a, "k2", secret), 202);
    berth_tests::wait_for(
        std::time::Duration::from_secs(30),
        "the deployment to follow the push",
        || env_of(&kube).filter(|v| v == "test"),
    );
    // The Deployment is the second of the workload's four writes.
    berth_tests::wait_for(
        std::time::Duration::from_secs(30),
        "the workload's remaining writes",
        || (kube.writes().len() >= before + 4).then_some(()),
    );
    // `terminate` lets an in-flight reconcile finish: nothing more follows.
    let (code, _) = server.terminate();
    assert_eq!(code, Some(0));
    let writes = kube.writes();
    let new: Vec<&String> = writes[before..].iter().collect();
    assert_eq!(
        new.len(),
        4,
        "claims, Deployment, Service, Ingress only: {new:#?}"
    );
    assert!(new[1].contains("/deployments/api"), "{new:#?}");
}
