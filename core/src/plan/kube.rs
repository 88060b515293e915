//! The Kubernetes half of the plan (pure): an account's manifests against
//! the objects the cluster holds, compared under server-side-apply rules
//! ([`super::drift`]), into apply and prune actions. Prune never touches a
//! PersistentVolumeClaim or a Namespace.

use super::drift::drift;
use super::{Action, Change, KubeObserved};
use crate::desired::kube::{AccountManifests, KubeObject};
use std::collections::BTreeSet;

/// Deletes the student's RoleBinding in `namespace`, if Berth made one: no
/// more kubectl for an account that may not run.
pub fn revoke_student(namespace: &str, observed: &KubeObserved) -> Vec<Action> {
    observed
        .objects
        .iter()
        .filter(|o| o.kind == "RoleBinding")
        .map(|o| Action::KubeDelete {
            target: format!("{namespace}/{} (rolebinding)", o.name),
            kind: o.kind.clone(),
            namespace: namespace.to_string(),
            name: o.name.clone(),
        })
        .collect()
}

/// Kinds the plan may delete when no longer declared, in deletion order
/// (dependents first).
const PRUNABLE: &[&str] = &[
    "Ingress",
    "Service",
    "Deployment",
    "RoleBinding",
    "Role",
    "ServiceAccount",
    "LimitRange",
    "ResourceQuota",
];

/// Ordered Kubernetes actions for one account: its namespace objects
/// first (namespace, quota, access), then deletions of Berth objects no
/// longer declared (freeing quota), then each container's workload.
/// An account with no Kubernetes containers and no namespace gets nothing.
pub fn plan_kube(desired: &AccountManifests, observed: &KubeObserved) -> Vec<Action> {
    let ns = desired.namespace.as_str();
    let has_namespace = observed.get("Namespace", ns).is_some();
    if desired.workloads.is_empty() && !has_namespace {
        return vec![];
    }
    let mut actions = Vec::new();
    let account_changes = object_changes(&desired.account, observed);
    if !account_changes.is_empty() {
        actions.push(Action::KubeApply {
            target: ns.to_string(),
            create: !has_namespace,
            objects: desired.account.clone(),
            changes: account_changes,
        });
    }
    let wanted: BTreeSet<(&str, &str)> = desired
        .account
        .iter()
        .chain(desired.workloads.values().flatten())
        .map(|o| (o.kind.as_str(), o.name.as_str()))
        .collect();
    let mut unwanted: Vec<(usize, &KubeObject)> = observed
        .objects
        .iter()
        .filter(|o| !wanted.contains(&(o.kind.as_str(), o.name.as_str())))
        .filter_map(|o| Some((PRUNABLE.iter().position(|k| *k == o.kind)?, o)))
        .collect();
    unwanted.sort_by(|a, b| (a.0, &a.1.name).cmp(&(b.0, &b.1.name)));
    actions.extend(unwanted.into_iter().map(|(_, o)| Action::KubeDelete {
        target: format!("{ns}/{} ({})", o.name, o.kind.to_lowercase()),
        kind: o.kind.clone(),
        namespace: ns.to_string(),
        name: o.name.clone(),
    }));
    for (name, objects) in &desired.workloads {
        let changes = object_changes(objects, observed);
        if !changes.is_empty() {
            actions.push(Action::KubeApply {
                target: format!("{ns}/{name}"),
                create: observed.get("Deployment", name).is_none(),
                objects: objects.clone(),
                changes,
            });
        }
    }
    actions
}

/// The change that says `o` does not exist yet: `deployment: (none) → ns/web`.
fn absent(o: &KubeObject) -> Change {
    Change {
        field: o.kind.to_lowercase(),
        old: None,
        new: Some(o.describe_name()),
    }
}

/// Whether `changes` say `o` does not exist yet, so that applying it would
/// create it (and must not take over someone else's object of that name).
pub fn is_absent(changes: &[Change], o: &KubeObject) -> bool {
    changes.contains(&absent(o))
}

/// What differs between desired objects and their live versions, with
/// fields named `deployment.spec.replicas`; a missing object is one change.
/// Claims are only checked for existence: their spec is the storage's.
fn object_changes(desired: &[KubeObject], observed: &KubeObserved) -> Vec<Change> {
    let mut out = Vec::new();
    for d in desired {
        let kind = d.kind.to_lowercase();
        match observed.get(&d.kind, &d.name) {
            None => out.push(absent(d)),
            Some(_) if d.kind == "PersistentVolumeClaim" => {}
            Some(live) => {
                let container = format!("spec.template.spec.containers[{}].", d.name);
                out.extend(drift(&d.value, &live.value).into_iter().map(|c| Change {
                    field: format!("{kind}.{}", c.field.replace(&container, "container.")),
                    ..c
                }));
            }
        }
    }
    out
}

/// The test suite's model of an API server's stored objects, shared with
/// the end-to-end tests' fake API server.
#[cfg(test)]
#[path = "../../../tests/src/apiserver.rs"]
mod apiserver;

#[cfg(test)]
mod kube_tests {
    use super::*;
    use crate::desired::kube::{AccountManifests, Settings, fixtures, manifests};
    use serde_json::json;

    const WORKSPACE: &str = "version: 1
containers:
  - name: api
    image: python:3.12
    backend: kubernetes
    command: [python, -m, http.server, \"8080\"]
    env: { GREETING: hello }
    ports: [8080]
    resources: { cpus: 1, memory: 256Mi }
    volumes: [{ name: data, path: /data }]
  - name: job
    image: busybox:1.36
    backend: kubernetes
    state: stopped
";

    fn settings() -> Settings {
        Settings {
            namespace_prefix: "berth-".into(),
            ingress_namespace: "ingress-nginx".into(),
            ingress_domain: Some("apps.test".into()),
            http_ports: vec![8080],
        }
    }

    fn desired_from(text: &str, disabled: bool) -> AccountManifests {
        let site = crate::fixtures::example_site();
        let ws = berth_spec::parse_workspace(text.as_bytes()).expect("valid");
        let containers: Vec<&berth_spec::Container> = ws.containers.iter().collect();
        let quota = berth_spec::policy::effective_quota(&site, &["students".into()]);
        manifests(
            &settings(),
            &site,
            &fixtures::owner(disabled),
            &containers,
            quota.as_ref(),
        )
    }

    /// The object as an API server stores it after the apply.
    fn served(o: &KubeObject) -> KubeObject {
        KubeObject {
            value: apiserver::stored(o.value.clone(), 1),
            ..o.clone()
        }
    }

    fn cluster_holding(d: &AccountManifests) -> KubeObserved {
        KubeObserved {
            objects: d
                .account
                .iter()
                .chain(d.workloads.values().flatten())
                .map(served)
                .collect(),
            pods: vec![],
        }
    }

    fn kinds(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| format!("{} {}", a.kind(), a.target()))
            .collect()
    }

    #[test]
    fn a_fresh_account_gets_its_namespace_before_its_workloads() {
        let d = desired_from(WORKSPACE, false);
        let got = plan_kube(&d, &KubeObserved::default());
        assert_eq!(
            kinds(&got),
            [
                "kube_create berth-alice",
                "kube_create berth-alice/api",
                "kube_create berth-alice/job"
            ]
        );
        let Action::KubeApply { objects, .. } = &got[1] else {
            panic!()
        };
        let order: Vec<&str> = objects.iter().map(|o| o.kind.as_str()).collect();
        assert_eq!(
            order,
            ["PersistentVolumeClaim", "Deployment", "Service", "Ingress"]
        );
    }

    #[test]
    fn fields_the_api_server_defaults_are_not_drift() {
        let d = desired_from(WORKSPACE, false);
        let live = cluster_holding(&d);
        let got = plan_kube(&d, &live);
        assert!(got.is_empty(), "false drift: {got:#?}");
    }

    #[test]
    fn a_new_revision_with_the_same_spec_changes_nothing() {
        let d = desired_from(WORKSPACE, false);
        let mut live = cluster_holding(&d);
        for o in &mut live.objects {
            if let Some(labels) = o.value["metadata"]["labels"].as_object_mut()
                && labels.contains_key("berth.revision")
            {
                labels.insert("berth.revision".into(), json!("0123456789ab"));
            }
        }
        assert!(plan_kube(&d, &live).is_empty());
    }

    #[test]
    fn a_kubectl_edit_of_a_field_berth_sets_is_drift_and_reverted() {
        let d = desired_from(WORKSPACE, false);
        let mut live = cluster_holding(&d);
        let dep = live
            .objects
            .iter_mut()
            .find(|o| o.kind == "Deployment" && o.name == "api")
            .expect("deployment");
        dep.value["spec"]["template"]["spec"]["containers"][0]["image"] = json!("evil:latest");
        dep.value["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] =
            json!("4Gi");
        let got = plan_kube(&d, &live);
        let [
            Action::KubeApply {
                target,
                create: false,
                changes,
                ..
            },
        ] = got.as_slice()
        else {
            panic!("{got:#?}")
        };
        assert_eq!(target, "berth-alice/api");
        let fields: Vec<(&str, Option<&str>, Option<&str>)> = changes
            .iter()
            .map(|c| (c.field.as_str(), c.old.as_deref(), c.new.as_deref()))
            .collect();
        assert_eq!(
            fields,
            [
                (
                    "deployment.container.image",
                    Some("evil:latest"),
                    Some("docker.io/library/python:3.12")
                ),
                (
                    "deployment.container.resources.limits.memory",
                    Some("4Gi"),
                    Some("268435456")
                ),
            ]
        );
    }

    #[test]
    fn removed_containers_are_pruned_but_their_claims_kept() {
        let before = desired_from(WORKSPACE, false);
        let live = cluster_holding(&before);
        let after = desired_from("version: 1\ncontainers: []\n", false);
        let got = plan_kube(&after, &live);
        assert_eq!(
            kinds(&got),
            [
                "kube_delete berth-alice/api (ingress)",
                "kube_delete berth-alice/api (service)",
                "kube_delete berth-alice/api (deployment)",
                "kube_delete berth-alice/job (deployment)",
            ]
        );
    }

    #[test]
    fn an_account_that_never_used_the_cluster_gets_nothing() {
        let d = desired_from("version: 1\ncontainers: []\n", false);
        assert!(plan_kube(&d, &KubeObserved::default()).is_empty());
    }

    #[test]
    fn a_disabled_account_is_scaled_to_zero_and_loses_kubectl_access() {
        let before = desired_from(WORKSPACE, false);
        let live = cluster_holding(&before);
        let got = plan_kube(&desired_from(WORKSPACE, true), &live);
        assert_eq!(
            kinds(&got),
            [
                "kube_delete berth-alice/berth-student (rolebinding)",
                "kube_update berth-alice/api"
            ]
        );
        let Action::KubeApply { changes, .. } = &got[1] else {
            panic!()
        };
        let replicas = changes
            .iter()
            .find(|c| c.field == "deployment.spec.replicas")
            .expect("replicas change");
        assert_eq!(replicas.new.as_deref(), Some("0"));
    }

    #[test]
    fn a_deleted_service_is_recreated() {
        let d = desired_from(WORKSPACE, false);
        let mut live = cluster_holding(&d);
        live.objects.retain(|o| o.kind != "Service");
        let got = plan_kube(&d, &live);
        let [Action::KubeApply { changes, .. }] = got.as_slice() else {
            panic!("{got:#?}")
        };
        assert_eq!(changes[0].field, "service");
        assert_eq!(changes[0].new.as_deref(), Some("berth-alice/api"));
    }
}
