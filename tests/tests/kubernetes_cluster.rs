//! The Kubernetes backend against a real control plane: the one
//! `scripts/test.sh` builds from the Kubernetes Go modules and starts
//! (etcd, kube-apiserver with RBAC and the NodeRestriction/ResourceQuota
//! admission plugins, kube-controller-manager, kube-scheduler, kwok's
//! simulated nodes), or any cluster `BERTH_KUBECONFIG` names. What a fake
//! cannot show is shown here: server-side apply and the server's defaulting
//! against Berth's drift rules, RBAC confining a student's kubeconfig,
//! admission enforcing the quota, the garbage collector after a prune.
//! Faults and exact request shapes stay with the fake (`kubernetes.rs`).

use berth_tests::cluster::Cluster;
use berth_tests::fixture::World;
use berth_tests::{Services, stdout, wait_for};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{
    LimitRange, PersistentVolumeClaim, Pod, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;
use std::time::Duration;

/// Pods of simulated nodes are Ready within seconds; the slack is for a
/// loaded CI machine and the controllers' back-off.
const SETTLE: Duration = Duration::from_secs(120);

/// A Kubernetes-only workspace: `api` always, `extra` when given.
fn workspace(greeting: &str, with_api: bool, extra: &str) -> String {
    let api = if with_api {
        format!(
            "  - name: api
    image: python:3.12
    backend: kubernetes
    command: [python, -m, http.server, \"8080\"]
    env: {{ GREETING: {greeting} }}
    ports: [8080]
    resources: {{ cpus: 0.5, memory: 256Mi }}
    volumes: [{{ name: data, path: /srv }}]
"
        )
    } else {
        String::new()
    };
    if api.is_empty() && extra.is_empty() {
        return "version: 1\ncontainers: []\n".into();
    }
    format!("version: 1\ncontainers:\n{api}{extra}")
}

fn run(w: &World, args: &[&str]) -> (Option<i32>, String) {
    let out = w.reconciler(args);
    (
        out.status.code(),
        format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr)),
    )
}

/// A world on the cluster, with a namespace prefix of its own (`t123x4-`):
/// the tests share one cluster and run at once, and each must see only its
/// own accounts, as two Berths sharing a cluster would.
fn setup(first_port: u16) -> Option<(Cluster, World, String)> {
    let s = Services::from_env()?;
    let cluster = Cluster::from_env()?;
    let mut w = World::new(&s, first_port);
    let prefix = format!("{}-", w.prefix());
    w.site_overrides.kubeconfig = Some(cluster.kubeconfig.clone());
    w.site_overrides.kube_namespace_prefix = Some(prefix.clone());
    Some((cluster, w, prefix))
}

/// A world whose one student's `api` (greeting `greeting`) runs on the
/// cluster; the world, the account and its namespace (removed at the end).
fn running_api(
    first_port: u16,
    short: &str,
    greeting: &str,
) -> Option<(Cluster, World, String, String)> {
    let (cluster, mut w, p) = setup(first_port)?;
    let a = w.account(short, &["students"]);
    let ns = format!("{p}{a}");
    cluster.forget_at_end(&ns);
    w.commit(&a, Some(&workspace(greeting, true, "")), &w.mail(&a));
    w.apply(0);
    wait_running(&w, &a, "api");
    Some((cluster, w, a, ns))
}

/// The container `name`'s entry in the account's status.
fn state_of(w: &World, account: &str, name: &str) -> Option<serde_json::Value> {
    let status = w.status(account);
    status["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
}

fn wait_running(w: &World, account: &str, name: &str) {
    wait_for(SETTLE, &format!("{account}'s {name} to run"), || {
        state_of(w, account, name).filter(|c| c["state"] == "running")
    });
}

fn pods(cluster: &Cluster, ns: &str, name: &str) -> Vec<Pod> {
    cluster
        .block_on(
            cluster
                .api::<Pod>(ns)
                .list(&ListParams::default().labels(&format!("berth.name={name}"))),
        )
        .map(|l| l.items)
        .unwrap_or_default()
}

#[test]
fn apply_diff_drift_and_prune_against_a_real_api_server() {
    let Some((cluster, w, a, ns)) = running_api(24_100, "kreal", "hello") else {
        return;
    };
    let mail = w.mail(&a);

    // What admission and the controllers made of it.
    let quota: ResourceQuota = cluster.get(&ns, "berth-quota").expect("quota");
    let hard = quota.spec.and_then(|s| s.hard).unwrap_or_default();
    assert_eq!(hard["pods"].0, "4");
    // Berth writes bytes; the server keeps the quantity's own format.
    assert_eq!(hard["limits.memory"].0, "4294967296");
    assert_eq!(hard["limits.cpu"].0, "4");
    // The quota controller really accounts the pod against it.
    wait_for(SETTLE, "the quota to count the pod", || {
        let q: ResourceQuota = cluster.get(&ns, "berth-quota")?;
        let used = q.status?.used?;
        (used.get("pods").map(|q| q.0.as_str()) == Some("1")).then_some(())
    });
    assert!(cluster.get::<LimitRange>(&ns, "berth-defaults").is_some());
    let policy: NetworkPolicy = cluster.get(&ns, "berth-isolation").expect("policy");
    let spec = policy.spec.expect("policy spec");
    assert_eq!(
        spec.pod_selector.unwrap_or_default(),
        Default::default(),
        "default deny selects every pod"
    );
    assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string()]));
    let dep: Deployment = cluster.get(&ns, "api").expect("deployment");
    let managers: Vec<_> = dep
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.manager, m.operation))
        .collect();
    assert!(
        managers.contains(&(Some("berth".into()), Some("Apply".into()))),
        "server-side applied by berth: {managers:?}"
    );
    let svc: Service = cluster.get(&ns, "api").expect("service");
    assert!(
        svc.spec.and_then(|s| s.cluster_ip).is_some(),
        "the API server allocated a cluster IP"
    );
    let ingress: Ingress = cluster.get(&ns, "api").expect("ingress");
    let host = ingress.spec.and_then(|s| s.rules).unwrap_or_default()[0]
        .host
        .clone();
    assert_eq!(
        host.as_deref(),
        Some(format!("{a}--api.apps.test").as_str())
    );
    let claim: PersistentVolumeClaim = cluster.get(&ns, "data").expect("claim");
    assert_eq!(
        claim.status.and_then(|s| s.phase).as_deref(),
        Some("Bound"),
        "bound to one of the harness's volumes"
    );

    // A hand-made Deployment beside Berth's: never taken over, never pruned.
    let theirs: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "theirs", "labels": {"app": "theirs"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "theirs"}},
            "template": {"metadata": {"labels": {"app": "theirs"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1.36",
                    "resources": {"limits": {"cpu": "100m", "memory": "32Mi"}}}]}}}
    }))
    .expect("deployment");
    cluster.create(&ns, &theirs);

    // No drift against the server's defaults (clusterIP, protocol,
    // imagePullPolicy, terminationGracePeriodSeconds, canonical quantities…).
    let (code, text) = run(&w, &["diff"]);
    assert_eq!(code, Some(0), "drift right after apply:\n{text}");

    // An admin's edit of a field Berth owns, by another field manager, is
    // drift; apply takes it back.
    cluster.block_on(async {
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "api", "image": "evil:latest"}]}}}});
        cluster
            .api::<Deployment>(&ns)
            .patch("api", &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .expect("admin edits");
    });
    let (code, text) = run(&w, &["diff"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("evil:latest"), "{text}");
    w.apply(0);
    let dep: Deployment = cluster.get(&ns, "api").expect("deployment");
    assert_eq!(
        dep.spec
            .and_then(|s| s.template.spec)
            .map(|s| s.containers[0].image.clone()),
        Some(Some("docker.io/library/python:3.12".into()))
    );
    let (code, text) = run(&w, &["diff"]);
    assert_eq!(code, Some(0), "{text}");

    // A change of the workspace is exactly that drift.
    w.commit(&a, Some(&workspace("changed", true, "")), &mail);
    let (code, text) = run(&w, &["diff"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("GREETING"), "{text}");
    w.apply(0);
    wait_running(&w, &a, "api");
    let (code, text) = run(&w, &["diff"]);
    assert_eq!(code, Some(0), "{text}");

    // Prune: Berth's Deployment, Service and Ingress go, and the garbage
    // collector takes their ReplicaSets and pods; the claim, the namespace
    // and the hand-made Deployment stay.
    w.commit(&a, Some(&workspace("", false, "")), &mail);
    w.apply(0);
    assert!(cluster.get::<Deployment>(&ns, "api").is_none(), "pruned");
    assert!(cluster.get::<Service>(&ns, "api").is_none());
    assert!(cluster.get::<Ingress>(&ns, "api").is_none());
    wait_for(SETTLE, "the garbage collector to remove the pods", || {
        let sets = cluster
            .block_on(
                cluster
                    .api::<ReplicaSet>(&ns)
                    .list(&ListParams::default().labels("berth.name=api")),
            )
            .map(|l| l.items.len())
            .unwrap_or(1);
        (sets == 0 && pods(&cluster, &ns, "api").is_empty()).then_some(())
    });
    assert!(
        cluster.get::<PersistentVolumeClaim>(&ns, "data").is_some(),
        "claims are never pruned"
    );
    assert!(
        cluster.get::<Deployment>(&ns, "theirs").is_some(),
        "what Berth did not create is never pruned"
    );
    let (code, text) = run(&w, &["diff"]);
    assert_eq!(code, Some(0), "{text}");

    // Taking over: a name Berth would create, already made by someone else.
    let squat: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "api", "labels": {"app": "squat"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "squat"}},
            "template": {"metadata": {"labels": {"app": "squat"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1.36",
                    "resources": {"limits": {"cpu": "100m", "memory": "32Mi"}}}]}}}
    }))
    .expect("deployment");
    cluster.create(&ns, &squat);
    w.commit(&a, Some(&workspace("back", true, "")), &mail);
    let text = w.apply(2);
    assert!(text.contains("not created by Berth"), "{text}");
    let dep: Deployment = cluster.get(&ns, "api").expect("still theirs");
    assert_eq!(
        dep.metadata
            .labels
            .unwrap_or_default()
            .get("app")
            .map(String::as_str),
        Some("squat"),
        "left exactly as it was"
    );
}

#[test]
fn a_students_kubeconfig_is_confined_by_real_rbac() {
    let Some((cluster, mut w, p)) = setup(24_200) else {
        return;
    };
    let a = w.account("krbac", &["students"]);
    let b = w.account("kother", &["students"]);
    for acc in [&a, &b] {
        let mail = w.mail(acc);
        w.commit(acc, Some(&workspace("hi", true, "")), &mail);
        cluster.forget_at_end(&format!("{p}{acc}"));
    }
    w.apply(0);
    let (ns, other) = (format!("{p}{a}"), format!("{p}{b}"));
    wait_running(&w, &a, "api");

    let (code, printed) = run(&w, &["kubeconfig", "--account", &a]);
    assert_eq!(code, Some(0), "{printed}");
    assert!(printed.contains(&format!("namespace: {ns}")), "{printed}");
    let student = cluster.student(&printed);

    cluster.block_on(async {
        let own: Api<Pod> = Api::namespaced(student.clone(), &ns);
        let list = own
            .list(&ListParams::default())
            .await
            .expect("a student lists their own pods");
        assert_eq!(list.items.len(), 1, "the api pod");
        let refused = |r: Result<_, kube::Error>, what: &str| match r {
            Err(kube::Error::Api(e)) => assert_eq!(e.code, 403, "{what}: {e:?}"),
            Ok(_) => panic!("{what} was allowed"),
            Err(e) => panic!("{what}: {e}"),
        };
        let secrets: Api<Secret> = Api::namespaced(student.clone(), &ns);
        refused(
            secrets.list(&ListParams::default()).await.map(|_| ()),
            "own secrets",
        );
        let theirs: Api<Pod> = Api::namespaced(student.clone(), &other);
        refused(
            theirs.list(&ListParams::default()).await.map(|_| ()),
            "another student's pods",
        );
        let system: Api<Pod> = Api::namespaced(student.clone(), "kube-system");
        refused(
            system.list(&ListParams::default()).await.map(|_| ()),
            "kube-system",
        );
        let deployments: Api<Deployment> = Api::namespaced(student.clone(), &ns);
        let patch = json!({"spec": {"replicas": 5}});
        refused(
            deployments
                .patch("api", &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map(|_| ()),
            "scaling past Berth",
        );
        let accounts: Api<ServiceAccount> = Api::namespaced(student.clone(), &ns);
        refused(
            accounts.list(&ListParams::default()).await.map(|_| ()),
            "service accounts",
        );
    });
    // Logs and exec need a kubelet to stream; the authorizer's answer is
    // what Berth decides, and it is checked as such.
    assert!(cluster.may(&student, &ns, "get", "pods/log"));
    assert!(cluster.may(&student, &ns, "create", "pods/exec"));
    assert!(!cluster.may(&student, &ns, "create", "pods"));
    assert!(!cluster.may(&student, &ns, "delete", "pods"));
    assert!(!cluster.may(&student, &other, "get", "pods/log"));
    assert!(!cluster.may(&student, &other, "create", "pods/exec"));
    assert!(!cluster.may(&student, "kube-system", "create", "pods/exec"));
    assert!(!cluster.may(&student, &ns, "create", "rolebindings"));
}

#[test]
fn a_workload_over_quota_is_admitted_and_the_student_is_told() {
    let Some((cluster, w, a, ns)) = running_api(24_300, "kquota", "hi") else {
        return;
    };
    let mail = w.mail(&a);

    // Something else in the namespace holds most of the quota (an admin's
    // leftover job, say): 3.8 of the 4 CPUs.
    let hog: Pod = serde_json::from_value(json!({
        "metadata": {"name": "admin-job"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36",
            "resources": {"limits": {"cpu": "3300m", "memory": "64Mi"},
                          "requests": {"cpu": "3300m", "memory": "64Mi"}}}]}
    }))
    .expect("pod");
    cluster.create(&ns, &hog);

    // Berth's own check passes (0.5 + 0.5 CPUs of 4), so the Deployment is
    // admitted; its pod is not.
    let second = "  - name: worker
    image: python:3.12
    backend: kubernetes
    command: [sleep, infinity]
    resources: { cpus: 0.5, memory: 64Mi }
";
    w.commit(&a, Some(&workspace("hi", true, second)), &mail);
    w.apply(0);
    assert!(
        cluster.get::<Deployment>(&ns, "worker").is_some(),
        "the Deployment is admitted"
    );
    let worker = wait_for(SETTLE, "the student to be told of the quota", || {
        state_of(&w, &a, "worker").filter(|c| c["state"] == "over quota")
    });
    let why = worker["why"].as_str().unwrap_or_default();
    assert!(
        why.contains("exceeded quota: berth-quota"),
        "the API server's words reach the student: {worker}"
    );
    assert!(pods(&cluster, &ns, "worker").is_empty());
    // `status` in text says it too.
    let (_, text) = run(&w, &["status", "--account", &a]);
    assert!(text.contains("over quota"), "{text}");
    assert!(text.contains("exceeded quota"), "{text}");

    // Once the quota has room, the ReplicaSet controller's retry starts it.
    cluster.block_on(async {
        cluster
            .api::<Pod>(&ns)
            .delete("admin-job", &Default::default())
            .await
            .expect("delete the hog");
    });
    wait_running(&w, &a, "worker");
    assert!(state_of(&w, &a, "worker").is_some_and(|c| c["why"].is_null()));
}

#[test]
fn a_removed_student_is_scaled_to_zero_and_loses_the_binding() {
    let Some((cluster, w, a, ns)) = running_api(24_400, "kgone", "hi") else {
        return;
    };
    assert!(cluster.get::<RoleBinding>(&ns, "berth-student").is_some());
    let (code, printed) = run(&w, &["kubeconfig", "--account", &a]);
    assert_eq!(code, Some(0), "{printed}");
    let student = cluster.student(&printed);
    assert!(cluster.may(&student, &ns, "create", "pods/exec"));

    w.set_group(&a, "students", false);
    w.apply(0);
    let dep: Deployment = cluster.get(&ns, "api").expect("kept, scaled down");
    assert_eq!(dep.spec.and_then(|s| s.replicas), Some(0));
    assert!(
        cluster.get::<RoleBinding>(&ns, "berth-student").is_none(),
        "binding removed"
    );
    wait_for(SETTLE, "the pod to go", || {
        pods(&cluster, &ns, "api").is_empty().then_some(())
    });
    // The token the student holds still authenticates, and now may nothing.
    assert!(!cluster.may(&student, &ns, "create", "pods/exec"));
    assert!(!cluster.may(&student, &ns, "list", "pods"));
    assert!(
        cluster.get::<PersistentVolumeClaim>(&ns, "data").is_some(),
        "their data stays"
    );
    assert_eq!(
        state_of(&w, &a, "api").map(|c| c["state"].clone()),
        Some(json!("stopped"))
    );
}

#[test]
fn a_workload_no_node_can_take_says_why() {
    let Some((cluster, mut w, p)) = setup(24_500) else {
        return;
    };
    let a = w.account("kgpu", &["students"]);
    let mail = w.mail(&a);
    let ns = format!("{p}{a}");
    cluster.forget_at_end(&ns);
    // The students' quota allows one GPU; no node of this cluster has any.
    let gpu = "version: 1
containers:
  - name: train
    image: python:3.12
    backend: kubernetes
    command: [sleep, infinity]
    resources: { cpus: 0.5, memory: 64Mi, gpus: 1 }
";
    w.commit(&a, Some(gpu), &mail);
    w.apply(0);
    let dep: Deployment = cluster.get(&ns, "train").expect("deployment");
    let limits = dep
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers[0].resources.clone())
        .and_then(|r| r.limits)
        .unwrap_or_default();
    assert_eq!(
        limits.get("nvidia.com/gpu").map(|q| q.0.as_str()),
        Some("1")
    );
    let train = wait_for(SETTLE, "the scheduler's answer in status", || {
        state_of(&w, &a, "train").filter(|c| c["state"] == "Unschedulable")
    });
    assert!(
        train["why"]
            .as_str()
            .is_some_and(|m| m.contains("Insufficient nvidia.com/gpu")),
        "{train}"
    );
}

/// Usage accounting on the cluster: a workload's requests (0.5 CPU, one
/// ready replica) count as reserved hours at its rate, sampled every
/// second by `serve`; nothing counts as used (no counters are read there).
#[test]
fn a_workloads_requests_count_as_reserved_hours() {
    let Some((_cluster, mut w, a, _ns)) = running_api(24_600, "kuse", "hi") else {
        return;
    };
    w.site_overrides.policy_extra = "  usage: { sample_every: 1s }\n".into();
    let _server = w.serve();
    let reserved = || {
        let out = w.reconciler(&["usage", "--output", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["lines"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["key"] == a.as_str()).cloned())
            .map(|l| {
                (
                    l["cpu_hours_reserved"].as_f64().unwrap_or(0.0) * 3600.0,
                    l["cpu_hours_used"].as_f64().unwrap_or(0.0),
                )
            })
            .unwrap_or((0.0, 0.0))
    };
    let first = wait_for(SETTLE, "the workload to be counted", || {
        let (r, _) = reserved();
        (r > 0.0).then_some((r, std::time::Instant::now()))
    });
    let (second, used) = wait_for(SETTLE, "more of it to be counted", || {
        let (r, u) = reserved();
        (r >= first.0 + 3.0).then_some((r, u))
    });
    let rate = (second - first.0) / first.1.elapsed().as_secs_f64();
    assert!(
        (0.3..=0.7).contains(&rate),
        "counted {rate:.2} CPU-seconds per second for a 0.5 CPU request"
    );
    assert_eq!(used, 0.0, "nothing is counted as used on the cluster");
}
