//! Opt-in: the Kubernetes backend against a real cluster. Runs only when
//! `KUBECONFIG` is set (the other tests use a fake API server); see
//! docs/kubernetes.md for running it on kind or k3s. It applies a workspace,
//! waits for the pod to be ready, expects `diff` to find no drift against
//! the real API server's defaults, changes the workspace, checks the
//! student's kubeconfig against real RBAC, prunes, and deletes the
//! namespace it made (Berth itself never deletes namespaces).

use berth_tests::fixture::World;
use berth_tests::{Services, stdout, wait_for};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use std::time::Duration;

fn workspace(greeting: &str, with_web: bool) -> String {
    let image = std::env::var("BERTH_KUBE_TEST_IMAGE")
        .unwrap_or_else(|_| "docker.io/library/busybox:1.36".into());
    if !with_web {
        return "version: 1\ncontainers: []\n".into();
    }
    format!(
        "version: 1
containers:
  - name: web
    image: {image}
    backend: kubernetes
    command: [httpd, -f, -p, \"8080\"]
    env: {{ GREETING: {greeting} }}
    ports: [8080]
    resources: {{ cpus: 0.1, memory: 32Mi }}
    volumes: [{{ name: data, path: /data }}]
"
    )
}

fn run(w: &World, args: &[&str]) -> (Option<i32>, String) {
    let out = w.reconciler(args);
    (
        out.status.code(),
        format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr)),
    )
}

fn web_state(w: &World, account: &str) -> Option<String> {
    let status = w.status(account);
    status["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == "web")
        .and_then(|c| c["state"].as_str().map(str::to_string))
}

#[test]
fn real_cluster_apply_diff_change_access_prune() {
    let Some(kubeconfig) = std::env::var_os("KUBECONFIG") else {
        eprintln!("skipping: KUBECONFIG is not set (opt-in real-cluster test)");
        return;
    };
    let Some(s) = Services::from_env() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let admin = rt
        .block_on(kube::Client::try_default())
        .expect("a client from KUBECONFIG");
    let mut w = World::new(&s, 23_500);
    w.site_overrides.kubeconfig = Some(kubeconfig.into());
    let a = w.account("kreal", &["students"]);
    let mail = w.mail(&a);
    let ns = format!("berth-{a}");
    let cleanup = scopeguard(admin.clone(), ns.clone());

    w.commit(&a, Some(&workspace("hello", true)), &mail);
    w.apply(0);
    wait_for(Duration::from_secs(300), "the pod to be ready", || {
        (web_state(&w, &a).as_deref() == Some("running")).then_some(())
    });
    let (code, text) = run(&w, &["diff"]);
    assert_eq!(code, Some(0), "drift against a real API server:\n{text}");

    w.commit(&a, Some(&workspace("changed", true)), &mail);
    let (code, text) = run(&w, &["diff"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("env[GREETING].value"), "{text}");
    w.apply(0);
    let (code, text) = run(&w, &["diff"]);
    assert_eq!(code, Some(0), "{text}");

    // The student's kubeconfig: own pods yes, secrets and other namespaces no.
    let (code, config) = run(&w, &["kubeconfig", "--account", &a]);
    assert_eq!(code, Some(0), "{config}");
    let yaml = config
        .find("apiVersion")
        .map(|i| &config[i..])
        .unwrap_or(&config);
    let student = rt.block_on(async {
        let kc = kube::config::Kubeconfig::from_yaml(yaml).expect("kubeconfig parses");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("config");
        kube::Client::try_from(cfg).expect("student client")
    });
    rt.block_on(async {
        let own: Api<Pod> = Api::namespaced(student.clone(), &ns);
        own.list(&ListParams::default())
            .await
            .expect("a student may list their pods");
        let secrets: Api<Secret> = Api::namespaced(student.clone(), &ns);
        assert!(
            secrets.list(&ListParams::default()).await.is_err(),
            "no secrets"
        );
        let other: Api<Pod> = Api::namespaced(student.clone(), "kube-system");
        assert!(
            other.list(&ListParams::default()).await.is_err(),
            "no other namespaces"
        );
    });

    w.commit(&a, Some(&workspace("", false)), &mail);
    w.apply(0);
    assert_eq!(web_state(&w, &a), None, "deployment pruned");
    rt.block_on(async {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), &ns);
        assert!(
            claims.get_opt("data").await.expect("get claim").is_some(),
            "claims are never pruned"
        );
    });
    let (code, text) = run(&w, &["diff"]);
    assert_eq!(code, Some(0), "{text}");
    drop(cleanup);
}

/// Deletes the test's namespace however the test ends.
struct NamespaceGuard(kube::Client, String);

fn scopeguard(client: kube::Client, ns: String) -> NamespaceGuard {
    NamespaceGuard(client, ns)
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        let (client, ns) = (self.0.clone(), self.1.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().ok()?;
            rt.block_on(async {
                let api: Api<Namespace> = Api::all(client);
                api.delete(&ns, &DeleteParams::background()).await.ok()
            })
        })
        .join();
    }
}
