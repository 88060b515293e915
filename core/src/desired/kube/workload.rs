//! One workspace container on Kubernetes: its Deployment (Recreate, 1 or 0
//! replicas, requests = limits, no privilege escalation, no service-account
//! token), a Service for declared ports, an Ingress for the first port the
//! site serves over HTTP (host `<account>--<name>.<domain>`), and its
//! PersistentVolumeClaims.

use super::{CLAIM_SIZE, GPU, Owner, Settings, annotated, bytes, cpu, labels, meta};
use crate::desired::{LABEL_HASH, LABEL_NAME, LABEL_REVISION, pinned_image, short_hash};
use berth_spec::names::qualified;
use berth_spec::policy::requested;
use berth_spec::{Container, Site, State};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container as PodContainer, ContainerPort, EnvVar, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec,
    SeccompProfile, SecurityContext, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// Everything one workspace container becomes.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub deployment: Deployment,
    pub service: Option<Service>,
    pub ingress: Option<Ingress>,
    pub claims: Vec<PersistentVolumeClaim>,
}

/// The manifests of one container of `account`'s workspace.
pub fn workload(s: &Settings, site: &Site, owner: &Owner<'_>, c: &Container) -> Workload {
    let (account, repository, revision) = (owner.account, owner.repository, owner.revision);
    let ns = s.namespace(account);
    let name = c.name.value.as_str();
    let (cores, memory, gpus) = requested(site, c);
    let mut limits = BTreeMap::from([
        ("cpu".to_string(), cpu(cores)),
        ("memory".to_string(), bytes(memory)),
    ]);
    if gpus > 0 {
        limits.insert(GPU.to_string(), Quantity(gpus.to_string()));
    }
    let ports: Vec<u16> = c
        .ports
        .iter()
        .filter_map(|p| u16::try_from(p.value).ok())
        .collect();
    let image = pinned_image(&c.image, owner.pins);
    let container = PodContainer {
        name: name.to_string(),
        image: Some(image),
        // The workspace's `command` replaces the image's command, as on
        // Docker (CMD), keeping the image's entrypoint.
        args: c.command.as_ref().map(|c| c.value.clone()),
        env: Some(
            c.env
                .iter()
                .map(|(k, v)| EnvVar {
                    name: k.clone(),
                    value: Some(v.value.clone()),
                    ..Default::default()
                })
                .collect(),
        ),
        ports: Some(
            ports
                .iter()
                .map(|p| ContainerPort {
                    container_port: i32::from(*p),
                    ..Default::default()
                })
                .collect(),
        ),
        resources: Some(k8s_openapi::api::core::v1::ResourceRequirements {
            requests: Some(limits.clone()),
            limits: Some(limits),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["NET_RAW".into()]),
                ..Default::default()
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(
            c.volumes
                .iter()
                .map(|v| VolumeMount {
                    name: v.name.value.clone(),
                    mount_path: v.path.value.clone(),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    };
    let selector = labels(account, &[(LABEL_NAME, name)]);
    let pod = PodSpec {
        containers: vec![container],
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        volumes: Some(
            c.volumes
                .iter()
                .map(|v| Volume {
                    name: v.name.value.clone(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: v.name.value.clone(),
                        read_only: None,
                    }),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    };
    let spec = DeploymentSpec {
        replicas: Some(if owner.disabled || c.state() == State::Stopped {
            0
        } else {
            1
        }),
        selector: LabelSelector {
            match_labels: Some(selector.clone()),
            ..Default::default()
        },
        strategy: Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            ..Default::default()
        }),
        template: PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(selector.clone()),
                ..Default::default()
            }),
            spec: Some(pod),
        },
        ..Default::default()
    };
    let hash = short_hash(&spec);
    let object_labels = labels(
        account,
        &[
            (LABEL_NAME, name),
            (LABEL_HASH, &hash),
            (LABEL_REVISION, revision),
        ],
    );
    let object_meta = annotated(meta(name, Some(&ns), object_labels), repository);
    let deployment = Deployment {
        metadata: object_meta.clone(),
        spec: Some(spec),
        ..Default::default()
    };
    let service = (!ports.is_empty()).then(|| Service {
        metadata: object_meta.clone(),
        spec: Some(ServiceSpec {
            selector: Some(selector.clone()),
            ports: Some(
                ports
                    .iter()
                    .map(|p| ServicePort {
                        name: Some(format!("p{p}")),
                        port: i32::from(*p),
                        target_port: Some(IntOrString::Int(i32::from(*p))),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    });
    let http_port = ports.iter().find(|p| s.http_ports.contains(p));
    let ingress = match (&s.ingress_domain, http_port) {
        (Some(domain), Some(port)) => Some(Ingress {
            metadata: object_meta.clone(),
            spec: Some(IngressSpec {
                rules: Some(vec![IngressRule {
                    host: Some(format!("{}.{domain}", qualified(account, name))),
                    http: Some(HTTPIngressRuleValue {
                        paths: vec![HTTPIngressPath {
                            path: Some("/".into()),
                            path_type: "Prefix".into(),
                            backend: IngressBackend {
                                service: Some(IngressServiceBackend {
                                    name: name.to_string(),
                                    port: Some(ServiceBackendPort {
                                        number: Some(i32::from(*port)),
                                        ..Default::default()
                                    }),
                                }),
                                ..Default::default()
                            },
                        }],
                    }),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        _ => None,
    };
    let claims = c
        .volumes
        .iter()
        .map(|v| PersistentVolumeClaim {
            metadata: meta(&v.name, Some(&ns), labels(account, &[])),
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_string(),
                        Quantity(CLAIM_SIZE.into()),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    Workload {
        deployment,
        service,
        ingress,
        claims,
    }
}
