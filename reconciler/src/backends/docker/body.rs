//! The create request of a container: confined (never privileged, no new
//! privileges, a PIDs limit, `init`), limited (CPUs, memory, GPUs by the
//! host's device ids), labelled, its ports bound to the endpoint's address.

use super::{DockerBackend, DockerError, Result, api_at_least};
use berth_core::desired::{DesiredContainer, PIDS_LIMIT};
use bollard::models::{
    ContainerCreateBody, DeviceRequest, HostConfig, HostConfigLogConfig, Mount, MountType,
    MountVolumeOptions, MountVolumeOptionsDriverConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};
use std::collections::HashMap;

impl DockerBackend {
    pub(super) fn create_body(&self, d: &DesiredContainer) -> Result<ContainerCreateBody> {
        let spec = &d.spec;
        let device_requests = if spec.gpus > 0 {
            if !api_at_least(&self.api_version, 1, 40) {
                return Err(DockerError::NoGpuSupport(self.api_version.clone()));
            }
            // The host's assigned cards by id; a bare count would let
            // dockerd pick cards another account already uses.
            let (count, device_ids) = if spec.gpu_devices.is_empty() {
                (Some(i64::from(spec.gpus)), None)
            } else {
                (None, Some(spec.gpu_devices.clone()))
            };
            Some(vec![DeviceRequest {
                driver: Some("nvidia".into()),
                count,
                device_ids,
                capabilities: Some(vec![vec!["gpu".into()]]),
                ..Default::default()
            }])
        } else {
            None
        };
        let port_bindings = spec
            .ports
            .iter()
            .map(|(c, h)| {
                let binding = PortBinding {
                    host_ip: Some(spec.bind_address.clone()),
                    host_port: Some(h.to_string()),
                };
                (format!("{c}/tcp"), Some(vec![binding]))
            })
            .collect::<HashMap<_, _>>();
        let mounts = spec
            .volumes
            .iter()
            .map(|(path, vol)| Mount {
                target: Some(path.clone()),
                source: Some(vol.clone()),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            })
            .chain(spec.home.iter().map(|h| Mount {
                target: Some(h.target.clone()),
                source: Some(h.volume.clone()),
                typ: Some(MountType::VOLUME),
                // The local driver binds the directory with these options
                // (moby remounts a bind with them): nothing set-uid or a
                // device node there works in the container.
                volume_options: Some(MountVolumeOptions {
                    driver_config: Some(MountVolumeOptionsDriverConfig {
                        name: Some("local".into()),
                        options: Some(HashMap::from([
                            ("type".to_string(), "none".to_string()),
                            ("o".to_string(), "bind,nosuid,nodev".to_string()),
                            ("device".to_string(), h.source.clone()),
                        ])),
                    }),
                    labels: Some(HashMap::from([
                        (
                            berth_core::desired::LABEL_OWNER.to_string(),
                            d.account.clone(),
                        ),
                        (berth_core::desired::LABEL_HOME.to_string(), "true".into()),
                    ])),
                    ..Default::default()
                }),
                ..Default::default()
            }))
            .chain(spec.docker_socket.iter().map(|socket| Mount {
                target: Some("/var/run/docker.sock".into()),
                source: Some(socket.clone()),
                typ: Some(MountType::BIND),
                ..Default::default()
            }))
            .collect();
        let host_config = HostConfig {
            memory: i64::try_from(spec.memory).ok(),
            nano_cpus: Some((spec.cpus * 1e9) as i64),
            pids_limit: Some(PIDS_LIMIT),
            device_requests,
            port_bindings: Some(port_bindings),
            mounts: Some(mounts),
            network_mode: Some(spec.network.clone()),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            privileged: Some(false),
            init: Some(true),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(HashMap::from([
                    ("max-size".to_string(), self.log_limits.0.to_string()),
                    ("max-file".to_string(), self.log_limits.1.to_string()),
                ])),
            }),
            ..Default::default()
        };
        Ok(ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: spec.command.clone(),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(d.labels().into_iter().collect()),
            // A home directory is written as its owner, never as root.
            user: spec.home.as_ref().map(|h| format!("{}:{}", h.uid, h.gid)),
            exposed_ports: Some(spec.ports.keys().map(|c| format!("{c}/tcp")).collect()),
            host_config: Some(host_config),
            ..Default::default()
        })
    }
}
