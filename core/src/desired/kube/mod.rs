//! The Kubernetes backend's manifests, built as typed `k8s-openapi` objects
//! (API v1.33) by pure functions: a namespace per account with Pod Security
//! Admission `baseline` enforced; per container a Deployment (Recreate, 1 or
//! 0 replicas), a Service for declared ports, an Ingress for ports the site
//! marks HTTP, PersistentVolumeClaims that are never pruned; ResourceQuota
//! and LimitRange from the account's quota; and the student's
//! ServiceAccount, Role (get/list/watch pods and logs, exec) and RoleBinding.
//!
//! [`manifests`] gathers one account's objects as [`KubeObject`]s (the JSON
//! that is server-side applied), which the plan compares with live objects.

use crate::desired::{LABEL_OWNER, LABEL_WORKSPACE};
use berth_spec::policy::EffectiveQuota;
use berth_spec::{Container, Site};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use std::collections::BTreeMap;

mod account;
mod workload;

pub use self::account::{
    allows, kubeconfig, limit_range, network_policy, resource_quota, student_access,
};
pub use self::workload::{Workload, workload};

/// The student's service account in every account namespace.
pub const STUDENT: &str = "student";
const GPU: &str = "nvidia.com/gpu";
const CLAIM_SIZE: &str = "1Gi";

/// What the site says about its cluster.
#[derive(Clone, Debug)]
pub struct Settings {
    pub namespace_prefix: String,
    /// The ingress controller's namespace, let through the default deny.
    pub ingress_namespace: String,
    pub ingress_domain: Option<String>,
    pub http_ports: Vec<u16>,
}

impl Settings {
    pub fn from_site(site: &Site) -> Option<Settings> {
        let k = site.backends.kubernetes.as_ref()?;
        Some(Settings {
            namespace_prefix: k.namespace_prefix.value.clone(),
            ingress_namespace: k.ingress_namespace.clone(),
            ingress_domain: k.ingress_domain.clone(),
            http_ports: k.http_ports.clone(),
        })
    }

    pub fn namespace(&self, account: &str) -> String {
        format!("{}{account}", self.namespace_prefix)
    }
}

/// Who a workload belongs to and which revision it comes from.
pub struct Owner<'a> {
    pub account: &'a str,
    /// `<account>/<repository>`.
    pub repository: &'a str,
    pub revision: &'a str,
    /// A disabled account keeps its Deployments, scaled to zero.
    pub disabled: bool,
    /// Digests the revision was accepted with (share key → digest).
    pub pins: &'a BTreeMap<String, String>,
}

/// One manifest as the JSON Berth server-side applies.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KubeObject {
    pub kind: String,
    /// `None` for cluster-scoped objects (the namespace).
    pub namespace: Option<String>,
    pub name: String,
    pub value: serde_json::Value,
}

impl KubeObject {
    /// The typed object as JSON, with its `apiVersion` and `kind`.
    pub fn of<K>(object: &K) -> KubeObject
    where
        K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta> + Serialize,
    {
        let meta = object.metadata();
        KubeObject {
            kind: K::KIND.to_string(),
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            value: serde_json::to_value(object).unwrap_or_default(),
        }
    }

    /// `berth-alice/web` (or `berth-alice` for the namespace).
    pub fn describe_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// Everything Berth wants in one account's namespace.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccountManifests {
    pub namespace: String,
    /// Namespace, quota, defaults and the student's access, in apply order.
    pub account: Vec<KubeObject>,
    /// Per declared container: claims, Deployment, Service, Ingress, in
    /// apply order.
    pub workloads: BTreeMap<String, Vec<KubeObject>>,
}

/// The account's Kubernetes objects for the `backend: kubernetes`
/// containers of its workspace. A disabled account keeps its workloads
/// scaled to zero and loses the student's RoleBinding (no kubectl access).
pub fn manifests(
    s: &Settings,
    site: &Site,
    owner: &Owner<'_>,
    containers: &[&Container],
    quota: Option<&EffectiveQuota>,
) -> AccountManifests {
    let mut account = vec![KubeObject::of(&namespace(s, owner.account))];
    if let Some(q) = quota {
        account.push(KubeObject::of(&resource_quota(s, owner.account, q)));
    }
    account.push(KubeObject::of(&limit_range(s, site, owner.account, quota)));
    account.push(KubeObject::of(&network_policy(s, owner.account)));
    let (sa, role, binding) = student_access(s, owner.account);
    account.push(KubeObject::of(&sa));
    account.push(KubeObject::of(&role));
    if !owner.disabled {
        account.push(KubeObject::of(&binding));
    }
    let workloads = containers
        .iter()
        .map(|c| {
            let w = workload(s, site, owner, c);
            let mut objects: Vec<KubeObject> = w.claims.iter().map(KubeObject::of).collect();
            objects.push(KubeObject::of(&w.deployment));
            objects.extend(w.service.as_ref().map(KubeObject::of));
            objects.extend(w.ingress.as_ref().map(KubeObject::of));
            (c.name.value.clone(), objects)
        })
        .collect();
    AccountManifests {
        namespace: s.namespace(owner.account),
        account,
        workloads,
    }
}

fn labels(account: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([(LABEL_OWNER.to_string(), account.to_string())]);
    l.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    l
}

fn meta(name: &str, namespace: Option<&str>, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels),
        ..Default::default()
    }
}

pub fn namespace(s: &Settings, account: &str) -> Namespace {
    let l = labels(
        account,
        &[
            ("pod-security.kubernetes.io/enforce", "baseline"),
            ("pod-security.kubernetes.io/enforce-version", "latest"),
        ],
    );
    Namespace {
        metadata: meta(&s.namespace(account), None, l),
        ..Default::default()
    }
}

fn cpu(cores: f64) -> Quantity {
    Quantity(format!("{}m", (cores * 1000.0).round() as u64))
}

fn bytes(n: u64) -> Quantity {
    Quantity(n.to_string())
}

/// `<account>/<repository>` is not a valid label value (no `/`), so on
/// Kubernetes the workspace goes in an annotation.
fn annotated(mut meta: ObjectMeta, repository: &str) -> ObjectMeta {
    meta.annotations = Some(BTreeMap::from([(
        LABEL_WORKSPACE.to_string(),
        repository.to_string(),
    )]));
    meta
}

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures {
    use super::Owner;
    use std::collections::BTreeMap;

    static NO_PINS: BTreeMap<String, String> = BTreeMap::new();

    pub fn owner(disabled: bool) -> Owner<'static> {
        Owner {
            account: "alice",
            repository: "alice/workspace",
            revision: "abc",
            disabled,
            pins: &NO_PINS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::owner;
    use super::*;
    use k8s_openapi::Resource;

    fn site() -> berth_spec::Site {
        crate::fixtures::example_site()
    }

    fn api() -> berth_spec::Container {
        let text = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/workspace-kubernetes.yaml"
        ))
        .expect("example");
        berth_spec::parse_workspace(&text)
            .expect("valid")
            .containers
            .remove(0)
    }

    fn settings() -> Settings {
        Settings::from_site(&site()).expect("the example site has a cluster")
    }

    /// Round-trips through JSON with the typed API: the manifest uses only
    /// fields of the Kubernetes v1.33 schema, with their wire names.
    fn round_trips<
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + Resource,
    >(
        object: &T,
    ) {
        let json = serde_json::to_value(object).expect("serializes");
        assert_eq!(json["apiVersion"], T::API_VERSION);
        assert_eq!(json["kind"], T::KIND);
        let back: T = serde_json::from_value(json).expect("deserializes");
        assert_eq!(&back, object);
    }

    #[test]
    fn kubeconfig_points_the_student_at_their_namespace() {
        let text = kubeconfig(
            "https://k8s.example:6443",
            &[vec![1, 2, 3]],
            "berth-alice",
            "alice",
            "tok.en",
        );
        let v: serde_json::Value = serde_saphyr::from_str(&text).expect("valid YAML");
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "https://k8s.example:6443"
        );
        assert_eq!(v["contexts"][0]["context"]["namespace"], "berth-alice");
        assert_eq!(v["users"][0]["user"]["token"], "tok.en");
        assert_eq!(v["current-context"], "alice");
        use base64::Engine;
        let ca = v["clusters"][0]["cluster"]["certificate-authority-data"]
            .as_str()
            .expect("CA");
        let pem = base64::engine::general_purpose::STANDARD
            .decode(ca)
            .expect("base64");
        assert!(String::from_utf8_lossy(&pem).starts_with("-----BEGIN CERTIFICATE-----\nAQID\n"));
    }

    #[test]
    fn student_rbac_matches_the_table() {
        let (_, role, binding) = student_access(&settings(), "alice");
        let allowed = [
            ("get", "pods"),
            ("list", "pods"),
            ("watch", "pods"),
            ("get", "pods/log"),
            ("create", "pods/exec"),
        ];
        let denied = [
            ("create", "pods"),
            ("delete", "pods"),
            ("patch", "pods"),
            ("get", "secrets"),
            ("list", "secrets"),
            ("create", "pods/portforward"),
            ("create", "deployments"),
            ("get", "nodes"),
            ("create", "serviceaccounts/token"),
            ("escalate", "roles"),
        ];
        for (verb, resource) in allowed {
            assert!(
                allows(&role, verb, resource),
                "{verb} {resource} must be allowed"
            );
        }
        for (verb, resource) in denied {
            assert!(
                !allows(&role, verb, resource),
                "{verb} {resource} must be denied"
            );
        }
        assert_eq!(
            binding.subjects.as_ref().map(|s| s[0].namespace.clone()),
            Some(Some("berth-alice".into()))
        );
        round_trips(&role);
        round_trips(&binding);
    }

    #[test]
    fn deployment_is_confined_and_follows_the_file() {
        let s = settings();
        let w = workload(&s, &site(), &owner(false), &api());
        let d = &w.deployment;
        assert_eq!(d.metadata.namespace.as_deref(), Some("berth-alice"));
        let spec = d.spec.as_ref().expect("spec");
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(
            spec.strategy.as_ref().and_then(|s| s.type_.as_deref()),
            Some("Recreate")
        );
        let pod = spec.template.spec.as_ref().expect("pod");
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert!(pod.host_network.is_none() && pod.host_pid.is_none() && pod.host_ipc.is_none());
        assert!(pod.volumes.iter().flatten().all(|v| v.host_path.is_none()));
        let c = &pod.containers[0];
        let sc = c.security_context.as_ref().expect("security context");
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
            Some("RuntimeDefault")
        );
        assert_eq!(
            c.args.as_deref(),
            Some(
                &[
                    "python".to_string(),
                    "-m".into(),
                    "http.server".into(),
                    "8080".into()
                ][..]
            )
        );
        let limits = c
            .resources
            .as_ref()
            .and_then(|r| r.limits.clone())
            .expect("limits");
        assert_eq!(limits["cpu"], Quantity("500m".into()));
        assert_eq!(limits["memory"], Quantity((256u64 << 20).to_string()));
        let ingress = w
            .ingress
            .as_ref()
            .expect("8080 is an HTTP port of the site");
        let host = ingress
            .spec
            .as_ref()
            .and_then(|s| s.rules.as_ref())
            .and_then(|r| r[0].host.clone());
        assert_eq!(host.as_deref(), Some("alice--api.apps.berth.test"));
        assert!(w.service.is_some());
        round_trips(d);
        round_trips(ingress);
        round_trips(w.service.as_ref().expect("service"));
        let stopped = workload(&s, &site(), &owner(true), &api());
        assert_eq!(
            stopped.deployment.spec.and_then(|s| s.replicas),
            Some(0),
            "disabled accounts scale to zero"
        );
    }

    #[test]
    fn gpus_volumes_namespace_and_quota() {
        let s = settings();
        let text = "version: 1\ncontainers:\n  - name: train\n    image: pytorch/pytorch:2\n    backend: kubernetes\n    resources: { gpus: 1 }\n    volumes: [{ name: work, path: /work }]\n";
        let c = berth_spec::parse_workspace(text.as_bytes())
            .expect("valid")
            .containers
            .remove(0);
        let w = workload(&s, &site(), &owner(false), &c);
        let pod = w
            .deployment
            .spec
            .as_ref()
            .and_then(|d| d.template.spec.clone())
            .expect("pod");
        let limits = pod.containers[0]
            .resources
            .as_ref()
            .and_then(|r| r.limits.clone())
            .expect("limits");
        assert_eq!(limits[GPU], Quantity("1".into()));
        assert_eq!(w.claims.len(), 1);
        assert_eq!(w.claims[0].metadata.name.as_deref(), Some("work"));
        round_trips(&w.claims[0]);
        let ns = namespace(&s, "alice");
        assert_eq!(
            ns.metadata
                .labels
                .as_ref()
                .map(|l| l["pod-security.kubernetes.io/enforce"].clone()),
            Some("baseline".into())
        );
        round_trips(&ns);
        let q = berth_spec::policy::effective_quota(&site(), &["students".into()]).expect("quota");
        let quota = resource_quota(&s, "alice", &q);
        assert_eq!(
            quota
                .spec
                .as_ref()
                .and_then(|s| s.hard.clone())
                .map(|h| h[&format!("requests.{GPU}")].clone()),
            Some(Quantity("1".into()))
        );
        round_trips(&quota);
        let limits = limit_range(&s, &site(), "alice", Some(&q));
        let max = limits.spec.as_ref().and_then(|l| l.limits[0].max.clone());
        assert_eq!(
            max.map(|m| m["cpu"].clone()),
            Some(Quantity("4000m".into()))
        );
        round_trips(&limits);
    }
}
