//! An account's namespace-wide objects on Kubernetes: ResourceQuota and
//! LimitRange from its quota, the default-deny NetworkPolicy, and the
//! student's ServiceAccount, Role and RoleBinding (plus the kubeconfig a
//! student gets for them).

use super::{GPU, STUDENT, Settings, bytes, cpu, labels, meta};
use berth_spec::Site;
use berth_spec::policy::EffectiveQuota;
use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, ResourceQuota, ResourceQuotaSpec, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// The account's quota as a ResourceQuota.
pub fn resource_quota(s: &Settings, account: &str, q: &EffectiveQuota) -> ResourceQuota {
    let hard = BTreeMap::from([
        ("pods".to_string(), Quantity(q.containers.to_string())),
        ("requests.cpu".to_string(), cpu(q.cpus)),
        ("limits.cpu".to_string(), cpu(q.cpus)),
        ("requests.memory".to_string(), bytes(q.memory)),
        ("limits.memory".to_string(), bytes(q.memory)),
        (format!("requests.{GPU}"), Quantity(q.gpus.to_string())),
    ]);
    ResourceQuota {
        metadata: meta(
            "berth-quota",
            Some(&s.namespace(account)),
            labels(account, &[]),
        ),
        spec: Some(ResourceQuotaSpec {
            hard: Some(hard),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Defaults for containers that declare no resources (the site's), and
/// the account's quota as the most any one container may have.
pub fn limit_range(
    s: &Settings,
    site: &Site,
    account: &str,
    quota: Option<&EffectiveQuota>,
) -> LimitRange {
    let d = &site.policy.default_resources;
    let default = BTreeMap::from([
        ("cpu".to_string(), cpu(d.cpus)),
        (
            "memory".to_string(),
            bytes(d.memory.bytes().unwrap_or(512 << 20)),
        ),
    ]);
    LimitRange {
        metadata: meta(
            "berth-defaults",
            Some(&s.namespace(account)),
            labels(account, &[]),
        ),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".into(),
                default: Some(default.clone()),
                default_request: Some(default),
                max: quota.map(|q| {
                    BTreeMap::from([
                        ("cpu".to_string(), cpu(q.cpus)),
                        ("memory".to_string(), bytes(q.memory)),
                    ])
                }),
                ..Default::default()
            }],
        }),
    }
}

/// The student's identity in their namespace: read pods and logs, exec
/// (which `kubectl cp` uses), nothing else.
/// Default-deny ingress for the account's pods: only pods of the same
/// namespace and the site's ingress controller reach them, never another
/// student's. (Enforced only by a network plugin that implements
/// NetworkPolicy: the site's duty.)
pub fn network_policy(s: &Settings, account: &str) -> NetworkPolicy {
    let ns = s.namespace(account);
    let namespace_named = |name: &str| NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                name.to_string(),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    };
    NetworkPolicy {
        metadata: meta("berth-isolation", Some(&ns), labels(account, &[])),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![
                    namespace_named(&ns),
                    namespace_named(&s.ingress_namespace),
                ]),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

pub fn student_access(s: &Settings, account: &str) -> (ServiceAccount, Role, RoleBinding) {
    let ns = s.namespace(account);
    let rule = |resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    };
    let sa = ServiceAccount {
        metadata: meta(STUDENT, Some(&ns), labels(account, &[])),
        ..Default::default()
    };
    let role = Role {
        metadata: meta("berth-student", Some(&ns), labels(account, &[])),
        rules: Some(vec![
            rule(&["pods", "pods/log"], &["get", "list", "watch"]),
            rule(&["pods/exec"], &["create", "get"]),
        ]),
    };
    let binding = RoleBinding {
        metadata: meta("berth-student", Some(&ns), labels(account, &[])),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: "berth-student".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: STUDENT.into(),
            namespace: Some(ns),
            ..Default::default()
        }]),
    };
    (sa, role, binding)
}

/// A kubeconfig for the student: their namespace, their service account's
/// bound token, the cluster's address and CA (DER certificates).
pub fn kubeconfig(
    server: &str,
    ca_der: &[Vec<u8>],
    namespace: &str,
    account: &str,
    token: &str,
) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let pem: String = ca_der
        .iter()
        .map(|der| {
            let body = b64.encode(der);
            let lines: Vec<&str> = body
                .as_bytes()
                .chunks(64)
                .filter_map(|c| std::str::from_utf8(c).ok())
                .collect();
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                lines.join("\n")
            )
        })
        .collect();
    let ca = if pem.is_empty() {
        String::new()
    } else {
        format!("      certificate-authority-data: {}\n", b64.encode(pem))
    };
    format!(
        "apiVersion: v1
kind: Config
clusters:
  - name: berth
    cluster:
      server: {server}
{ca}contexts:
  - name: {account}
    context:
      cluster: berth
      namespace: {namespace}
      user: {account}
current-context: {account}
users:
  - name: {account}
    user:
      token: {token}
"
    )
}

/// Whether `role` lets its subject do `verb` on a core-group `resource`.
pub fn allows(role: &Role, verb: &str, resource: &str) -> bool {
    role.rules.iter().flatten().any(|r| {
        r.api_groups
            .iter()
            .flatten()
            .any(|g| g.is_empty() || g == "*")
            && r.resources
                .iter()
                .flatten()
                .any(|x| x == resource || x == "*")
            && r.verbs.iter().any(|v| v == verb || v == "*")
    })
}
