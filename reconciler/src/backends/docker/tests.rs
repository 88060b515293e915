use super::images::split_tag;
use super::*;
use berth_core::desired::{PIDS_LIMIT, fixtures};
use bollard::models::MountType;
use std::collections::BTreeMap;

fn backend(api: &str) -> DockerBackend {
    let docker = Docker::connect_with_http("http://127.0.0.1:1", 1, bollard::API_DEFAULT_VERSION)
        .expect("client without IO");
    DockerBackend {
        name: "test".into(),
        docker,
        api_version: api.into(),
        pulls: Default::default(),
        pulled: Default::default(),
        registry_auth: None,
        build_slots: Arc::new(tokio::sync::Semaphore::new(2)),
        log_limits: DEFAULT_LOG_LIMITS,
    }
}

fn desired(gpus: u32) -> DesiredContainer {
    let mut spec = fixtures::spec();
    spec.command = Some(vec!["nginx".into()]);
    spec.ports = BTreeMap::from([(80, 20001)]);
    spec.cpus = 0.5;
    spec.memory = 64 << 20;
    spec.gpus = gpus;
    fixtures::container("web", spec, State::Running)
}

#[test]
fn container_body_is_confined_and_labelled() {
    let body = backend("1.41").create_body(&desired(0)).expect("body");
    let hc = body.host_config.expect("host config");
    assert_eq!(hc.privileged, Some(false));
    assert_eq!(
        hc.security_opt,
        Some(vec!["no-new-privileges:true".to_string()])
    );
    assert_eq!(hc.network_mode.as_deref(), Some("berth-alice"));
    assert_eq!(hc.memory, Some(64 << 20));
    assert_eq!(hc.nano_cpus, Some(500_000_000));
    assert_eq!(hc.pids_limit, Some(PIDS_LIMIT));
    assert!(hc.device_requests.is_none());
    assert!(hc.binds.is_none(), "never host paths");
    let binding = &hc.port_bindings.expect("ports")["80/tcp"]
        .clone()
        .expect("binding")[0];
    assert_eq!(
        (binding.host_ip.as_deref(), binding.host_port.as_deref()),
        (Some("127.0.0.1"), Some("20001"))
    );
    let mount = &hc.mounts.expect("mounts")[0];
    assert_eq!(mount.typ, Some(MountType::VOLUME));
    assert_eq!(mount.source.as_deref(), Some("berth-alice--data"));
    let labels = body.labels.expect("labels");
    assert_eq!(labels["berth.owner"], "alice");
    assert_eq!(labels["berth.workspace"], "alice/workspace");
    assert_eq!(labels["berth.revision"], "abc");
    assert_eq!(labels["berth.spec-hash"], desired(0).spec_hash);
}

#[test]
fn containers_are_created_with_rotated_logs() {
    let body = backend("1.41")
        .with_log_limits(5 << 20, 2)
        .create_body(&desired(0))
        .expect("body");
    let logs = body
        .host_config
        .and_then(|h| h.log_config)
        .expect("log config");
    assert_eq!(logs.typ.as_deref(), Some("json-file"));
    let config = logs.config.expect("options");
    assert_eq!(config["max-size"], (5u64 << 20).to_string());
    assert_eq!(config["max-file"], "2");
}

#[test]
fn gpus_become_device_requests_on_api_1_40_and_later_only() {
    let body = backend("1.41").create_body(&desired(2)).expect("body");
    let req = &body
        .host_config
        .expect("hc")
        .device_requests
        .expect("device requests")[0];
    assert_eq!(req.count, Some(2));
    assert_eq!(req.capabilities, Some(vec![vec!["gpu".to_string()]]));
    assert!(matches!(
        backend("1.39").create_body(&desired(1)),
        Err(DockerError::NoGpuSupport(_))
    ));
}

#[test]
fn tags_split_after_registry_ports() {
    assert_eq!(
        split_tag("127.0.0.1:5000/alice/tools:1.0"),
        ("127.0.0.1:5000/alice/tools", "1.0")
    );
    assert_eq!(
        split_tag("127.0.0.1:5000/alice/tools"),
        ("127.0.0.1:5000/alice/tools", "latest")
    );
    assert_eq!(
        split_tag("docker.io/library/nginx:1.27"),
        ("docker.io/library/nginx", "1.27")
    );
}

#[test]
fn api_versions_compare_numerically() {
    assert!(api_at_least("1.41", 1, 40));
    assert!(!api_at_least("1.39", 1, 40));
    assert!(api_at_least("1.100", 1, 40));
}
