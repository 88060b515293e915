//! Desired state: a validated workspace, the account's identity and the
//! site's defaults, turned into the exact containers Berth wants on a
//! backend, with their labels and spec hash. Also the two pure decisions
//! that desired state needs: endpoint placement and host-port allocation.

pub mod gpus;
pub mod kube;
pub mod placement;

use berth_spec::names::qualified;
use berth_spec::{Backend, ImageRef, Site, State, Workspace, policy};
pub use gpus::GpuKey;
pub use placement::{
    Host, Needs, PortKey, PortsExhausted, allocate_ports, gpu_needs, place, port_needs,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const LABEL_OWNER: &str = "berth.owner";
pub const LABEL_WORKSPACE: &str = "berth.workspace";
pub const LABEL_NAME: &str = "berth.name";
pub const LABEL_HASH: &str = "berth.spec-hash";
pub const LABEL_REVISION: &str = "berth.revision";
/// On the volume that binds an account's home directory: never a data
/// volume (not listed, measured, moved or mounted as one).
pub const LABEL_HOME: &str = "berth.home";
/// The applied spec as flat JSON, so `diff` can name changed fields (like
/// kubectl's last-applied annotation).
pub const LABEL_SPEC: &str = "berth.spec";
/// Default processes per container: stops fork bombs, fits real work.
pub const PIDS_LIMIT: i64 = 1024;

/// Everything about a container that forces recreation when it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub image: String,
    pub command: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    /// Container port → host port.
    pub ports: BTreeMap<u16, u16>,
    pub bind_address: String,
    pub cpus: f64,
    pub memory: u64,
    pub gpus: u32,
    /// The host's GPU ids (indexes or UUIDs) lent to this container (see
    /// [`crate::lending`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpu_devices: Vec<String>,
    /// Mount path → volume name.
    pub volumes: BTreeMap<String, String>,
    pub network: String,
    /// Host Docker socket mounted at /var/run/docker.sock. Only Berth's own
    /// runner containers get one; nothing in a workspace can ask for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_socket: Option<String>,
    /// Files put into the container before it starts: path → SHA-256 of the
    /// content (the content itself may be secret and stays out of labels).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    /// The student's home directory, mounted `nosuid,nodev`; the container
    /// then runs as the student's uid and gid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<HomeMount>,
}

/// A home directory mount as the site and the directory define it: the
/// host path (checked by the reconciler before it gets here), where it
/// appears, the volume that binds it, and whom the container runs as.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HomeMount {
    pub source: String,
    pub target: String,
    pub volume: String,
    pub uid: u32,
    pub gid: u32,
}

impl ContainerSpec {
    /// Short stable hash of the spec: equal specs, equal hashes.
    pub fn hash(&self) -> String {
        short_hash(self)
    }

    /// Flat `field → value` view for showing what changed.
    pub fn fields(&self) -> BTreeMap<String, String> {
        let mut f = BTreeMap::new();
        f.insert("image".into(), self.image.clone());
        if let Some(cmd) = &self.command {
            f.insert(
                "command".into(),
                serde_json::to_string(cmd).unwrap_or_default(),
            );
        }
        for (k, v) in &self.env {
            f.insert(format!("env.{k}"), v.clone());
        }
        for (c, h) in &self.ports {
            f.insert(format!("ports.{c}"), format!("{}:{h}", self.bind_address));
        }
        f.insert("cpus".into(), self.cpus.to_string());
        f.insert("memory".into(), human_bytes(self.memory));
        if self.gpus > 0 {
            f.insert("gpus".into(), self.gpus.to_string());
        }
        if !self.gpu_devices.is_empty() {
            f.insert("gpu_devices".into(), self.gpu_devices.join(","));
        }
        for (path, vol) in &self.volumes {
            f.insert(format!("volumes.{path}"), vol.clone());
        }
        if let Some(h) = &self.home {
            f.insert(format!("home.{}", h.target), h.source.clone());
            f.insert("user".into(), format!("{}:{}", h.uid, h.gid));
        }
        for (path, hash) in &self.files {
            f.insert(
                format!("files.{path}"),
                format!("sha256:{}", &hash[..hash.len().min(12)]),
            );
        }
        f
    }
}

/// One container as Berth wants it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DesiredContainer {
    pub account: String,
    /// Name as declared (`web`).
    pub name: String,
    /// Name on the backend (`alice--web`).
    pub full_name: String,
    pub workspace: String,
    pub revision: String,
    pub backend: Backend,
    pub state: State,
    pub spec: ContainerSpec,
    pub spec_hash: String,
    /// Content of `spec.files`, filled in just before creation.
    #[serde(skip)]
    pub uploads: Vec<(String, Vec<u8>)>,
}

impl DesiredContainer {
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_OWNER.into(), self.account.clone()),
            (LABEL_WORKSPACE.into(), self.workspace.clone()),
            (LABEL_NAME.into(), self.name.clone()),
            (LABEL_HASH.into(), self.spec_hash.clone()),
            (LABEL_REVISION.into(), self.revision.clone()),
            (
                LABEL_SPEC.into(),
                serde_json::to_string(&self.spec.fields()).unwrap_or_default(),
            ),
        ])
    }
}

/// 16 hex digits of the SHA-256 of `value` as JSON: the `berth.spec-hash`
/// of a backend object.
pub fn short_hash(value: &impl Serialize) -> String {
    let canonical = serde_json::to_vec(value).unwrap_or_default();
    let digest = Sha256::digest(&canonical);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The image reference a container runs: normalised, and pinned to the
/// digest its revision was accepted with when there is one (department
/// images; see the reconciler's `reconcile::pins`).
pub fn pinned_image(image: &str, pins: &BTreeMap<String, String>) -> String {
    match ImageRef::parse(image) {
        Ok(r) => match pins.get(&policy::pin_key(&r)) {
            Some(digest) => format!("{}@{digest}", r.repository()),
            None => r.to_string(),
        },
        Err(_) => image.to_string(),
    }
}

/// `67108864` → `64Mi`; sizes that are not whole KiB stay in bytes.
fn human_bytes(n: u64) -> String {
    for (unit, size) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if n >= size && n.is_multiple_of(size) {
            return format!("{}{unit}", n / size);
        }
    }
    n.to_string()
}

pub fn network_name(account: &str) -> String {
    format!("berth-{account}")
}

/// `berth-<account>--<volume>`: never another account's volume (see
/// [`berth_spec::names::qualified`]).
pub fn volume_name(account: &str, volume: &str) -> String {
    format!("berth-{}", qualified(account, volume))
}

/// `berth-<account>.home`, the volume binding the account's home
/// directory: a declared volume's name holds no `.`, so no workspace can
/// name it (a container mounting it without `home: true` would run as
/// root in the student's home).
pub fn home_volume_name(account: &str) -> String {
    format!("berth-{account}.home")
}

/// Inputs that are not in the workspace file.
pub struct Context<'a> {
    pub site: &'a Site,
    pub account: &'a str,
    pub workspace: &'a str,
    pub revision: &'a str,
    pub bind_address: &'a str,
    /// Host port of each (container, container port); see [`allocate_ports`].
    pub ports: &'a BTreeMap<PortKey, u16>,
    /// Digests the revision was accepted with (pin key → digest).
    pub pins: &'a BTreeMap<String, String>,
    /// GPU ids given to each GPU container on the host.
    pub gpus: &'a BTreeMap<GpuKey, Vec<String>>,
    /// GPU containers waiting for cards (or whose grant ended): kept
    /// stopped until lending gives them cards.
    pub gpu_waiting: &'a std::collections::BTreeSet<String>,
    /// A disabled account keeps its containers, stopped.
    pub disabled: bool,
    /// The account's home directory on this host, for `home: true`.
    pub home: Option<&'a HomeMount>,
}

/// The Docker containers of a workspace (Kubernetes ones are the Kubernetes
/// backend's).
pub fn containers(ws: &Workspace, cx: &Context<'_>) -> Vec<DesiredContainer> {
    ws.containers
        .iter()
        .filter(|c| policy::backend_of(cx.site, c) == Backend::Docker)
        .map(|c| {
            let (cpus, memory, gpus) = policy::requested(cx.site, c);
            let image = pinned_image(&c.image, cx.pins);
            let ports = c
                .ports
                .iter()
                .filter_map(|p| u16::try_from(p.value).ok())
                .filter_map(|p| {
                    let key = PortKey {
                        account: cx.account.into(),
                        container: c.name.value.clone(),
                        container_port: p,
                    };
                    cx.ports.get(&key).map(|h| (p, *h))
                })
                .collect();
            let spec = ContainerSpec {
                image,
                command: c.command.as_ref().map(|c| c.value.clone()),
                env: c
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.value.clone()))
                    .collect(),
                ports,
                bind_address: cx.bind_address.to_string(),
                cpus,
                memory,
                gpus,
                gpu_devices: cx
                    .gpus
                    .get(&GpuKey {
                        account: cx.account.into(),
                        container: c.name.value.clone(),
                    })
                    .cloned()
                    .unwrap_or_default(),
                volumes: c
                    .volumes
                    .iter()
                    .map(|v| (v.path.value.clone(), volume_name(cx.account, &v.name)))
                    .collect(),
                network: network_name(cx.account),
                docker_socket: None,
                files: BTreeMap::new(),
                home: if c.home { cx.home.cloned() } else { None },
            };
            DesiredContainer {
                account: cx.account.into(),
                name: c.name.value.clone(),
                full_name: qualified(cx.account, &c.name.value),
                workspace: cx.workspace.into(),
                revision: cx.revision.into(),
                backend: Backend::Docker,
                state: if cx.disabled || cx.gpu_waiting.contains(&c.name.value) {
                    State::Stopped
                } else {
                    c.state()
                },
                spec_hash: spec.hash(),
                spec,
                uploads: vec![],
            }
        })
        .collect()
}

/// Fixtures shared by the tests of the modules that consume desired
/// containers (plan, backends).
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures {
    use super::*;

    /// nginx with one env var, port 80 on 127.0.0.1:20000 and a volume.
    pub fn spec() -> ContainerSpec {
        ContainerSpec {
            image: "docker.io/library/nginx:1".into(),
            command: None,
            env: BTreeMap::from([("GREETING".into(), "hello".into())]),
            ports: BTreeMap::from([(80, 20000)]),
            bind_address: "127.0.0.1".into(),
            cpus: 1.0,
            memory: 1 << 28,
            gpus: 0,
            gpu_devices: vec![],
            volumes: BTreeMap::from([("/data".into(), "berth-alice--data".into())]),
            network: "berth-alice".into(),
            home: None,
            docker_socket: None,
            files: BTreeMap::new(),
        }
    }

    /// alice's container `name` with `spec`.
    pub fn container(name: &str, spec: ContainerSpec, state: State) -> DesiredContainer {
        DesiredContainer {
            account: "alice".into(),
            name: name.into(),
            full_name: format!("alice--{name}"),
            workspace: "alice/workspace".into(),
            revision: "abc".into(),
            backend: Backend::Docker,
            state,
            spec_hash: spec.hash(),
            spec,
            uploads: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tag_runs_the_digest_it_was_pinned_to() {
        let (a, b) = (
            format!("sha256:{}", "a".repeat(64)),
            format!("sha256:{}", "b".repeat(64)),
        );
        let pins = BTreeMap::from([
            ("reg.example/alice/tools:1".to_string(), a.clone()),
            ("reg.example/alice/tools:2".to_string(), b.clone()),
        ]);
        assert_eq!(
            pinned_image("reg.example/alice/tools:1", &pins),
            format!("reg.example/alice/tools@{a}")
        );
        assert_eq!(
            pinned_image("reg.example/alice/tools:2", &pins),
            format!("reg.example/alice/tools@{b}")
        );
        assert_eq!(
            pinned_image("reg.example/alice/tools:3", &pins),
            "reg.example/alice/tools:3"
        );
    }

    #[test]
    fn spec_hash_changes_with_the_spec_only() {
        let spec = fixtures::spec();
        let mut other = spec.clone();
        assert_eq!(spec.hash(), other.hash());
        other.env.insert("GREETING".into(), "hi".into());
        assert_ne!(spec.hash(), other.hash());
        assert_eq!(other.fields()["env.GREETING"], "hi");
        assert_eq!(spec.fields()["memory"], "256Mi");
        assert_eq!(spec.fields()["ports.80"], "127.0.0.1:20000");
    }
}
