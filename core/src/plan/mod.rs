//! The plan: a pure function from desired and observed state to an ordered
//! list of actions. Computing it never touches a backend, so `diff`,
//! `apply --dry-run` and `apply` share one code path. Only objects carrying
//! Berth's labels are ever observed, so nothing else can appear in a plan.

pub mod drift;
pub mod kube;

pub use self::kube::{is_absent, plan_kube, revoke_student};

use crate::desired::DesiredContainer;
use crate::desired::kube::KubeObject;
use berth_spec::State;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A Berth container as a backend reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ObservedContainer {
    pub id: String,
    pub account: String,
    /// Declared name (`berth.name` label).
    pub name: String,
    pub full_name: String,
    /// The image reference the container was created from.
    pub image: String,
    pub spec_hash: String,
    pub revision: String,
    pub running: bool,
    /// Backend's words for the state (`running`, `exited`, …).
    pub state: String,
    /// The applied spec's fields (`berth.spec` label), if readable.
    pub fields: BTreeMap<String, String>,
    /// `host_ip:host_port` per container port.
    pub ports: BTreeMap<u16, String>,
}

/// What a backend holds for one account.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ObservedAccount {
    pub containers: Vec<ObservedContainer>,
    pub network: bool,
    /// The account's data volumes (never its home directory's).
    pub volumes: BTreeSet<String>,
    /// Of each volume, the containers (full names) that mount it, running
    /// or not.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub volume_users: BTreeMap<String, Vec<String>>,
}

/// A pod of a Berth Deployment, as status shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PodState {
    pub name: String,
    /// Declared container name (`berth.name` label).
    pub workload: String,
    pub phase: String,
    pub ready: bool,
    pub restarts: i32,
    /// Why the container is not running (`ImagePullBackOff`, …), if it says;
    /// `Unschedulable` when no node can take the pod.
    pub reason: Option<String>,
    /// The words that go with `reason`, when there are any (the
    /// scheduler's `0/2 nodes are available: …`).
    pub message: Option<String>,
}

/// What the cluster holds for one account: Berth-labelled objects in the
/// account's namespace (and the namespace itself), and its pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct KubeObserved {
    pub objects: Vec<KubeObject>,
    pub pods: Vec<PodState>,
}

impl KubeObserved {
    pub fn get(&self, kind: &str, name: &str) -> Option<&KubeObject> {
        self.objects
            .iter()
            .find(|o| o.kind == kind && o.name == name)
    }
}

/// A changed field: `None` means absent on that side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    CreateNetwork {
        name: String,
    },
    CreateVolume {
        name: String,
    },
    /// Create, and start when desired running.
    Create {
        container: Box<DesiredContainer>,
    },
    /// Remove the old container, create the new one.
    Recreate {
        id: String,
        container: Box<DesiredContainer>,
        changes: Vec<Change>,
    },
    Start {
        id: String,
        name: String,
    },
    Stop {
        id: String,
        name: String,
    },
    /// Remove a Berth container that is no longer declared (volumes stay).
    Remove {
        id: String,
        name: String,
    },
    /// Register a GitLab runner for the account's project.
    RegisterRunner {
        project: u64,
        tags: Vec<String>,
    },
    /// Delete the account's GitLab runner.
    UnregisterRunner {
        id: u64,
    },
    /// Rewrite the running runner container's `config.toml` in place (its
    /// allow-lists changed); GitLab Runner reloads it without restarting
    /// its jobs. The template holds a placeholder, never the token.
    UpdateRunnerConfig {
        id: String,
        name: String,
        hash: String,
        #[serde(skip)]
        template: Vec<(String, Vec<u8>)>,
    },
    /// Server-side apply of Kubernetes objects, in order: the account's
    /// namespace objects, or one container's workload. `create` when its
    /// main object (Namespace or Deployment) does not exist yet.
    KubeApply {
        target: String,
        create: bool,
        objects: Vec<KubeObject>,
        changes: Vec<Change>,
    },
    /// Delete a Berth-labelled object that is no longer declared. Never a
    /// PersistentVolumeClaim or a Namespace: data outlives declarations.
    KubeDelete {
        target: String,
        kind: String,
        namespace: String,
        name: String,
    },
}

impl Action {
    /// `create`, `recreate`, … for metrics and the audit log.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::CreateNetwork { .. } => "create_network",
            Action::CreateVolume { .. } => "create_volume",
            Action::Create { .. } => "create",
            Action::Recreate { .. } => "recreate",
            Action::Start { .. } => "start",
            Action::Stop { .. } => "stop",
            Action::Remove { .. } => "remove",
            Action::RegisterRunner { .. } => "register_runner",
            Action::UnregisterRunner { .. } => "unregister_runner",
            Action::UpdateRunnerConfig { .. } => "update_runner_config",
            Action::KubeApply { create: true, .. } => "kube_create",
            Action::KubeApply { create: false, .. } => "kube_update",
            Action::KubeDelete { .. } => "kube_delete",
        }
    }

    /// The object acted on.
    pub fn target(&self) -> &str {
        match self {
            Action::CreateNetwork { name } | Action::CreateVolume { name } => name,
            Action::Create { container } | Action::Recreate { container, .. } => {
                &container.full_name
            }
            Action::Start { name, .. }
            | Action::Stop { name, .. }
            | Action::Remove { name, .. }
            | Action::UpdateRunnerConfig { name, .. } => name,
            Action::RegisterRunner { .. } | Action::UnregisterRunner { .. } => "gitlab runner",
            Action::KubeApply { target, .. } | Action::KubeDelete { target, .. } => target,
        }
    }
}

/// Ordered actions turning `observed` into `desired` for one account:
/// network and volumes first, then removals and stops (freeing names, ports
/// and GPUs), then recreations, creations and starts.
pub fn plan(
    desired: &[DesiredContainer],
    observed: &ObservedAccount,
    network: &str,
) -> Vec<Action> {
    let mut setup = Vec::new();
    let mut removes = Vec::new();
    let mut recreates = Vec::new();
    let mut creates = Vec::new();
    let mut stops = Vec::new();
    let mut starts = Vec::new();
    if !desired.is_empty() && !observed.network {
        setup.push(Action::CreateNetwork {
            name: network.to_string(),
        });
    }
    let wanted_volumes: BTreeSet<&String> = desired
        .iter()
        .flat_map(|d| d.spec.volumes.values())
        .collect();
    for v in wanted_volumes {
        if !observed.volumes.contains(v) {
            setup.push(Action::CreateVolume { name: v.clone() });
        }
    }
    let by_name: BTreeMap<&str, &DesiredContainer> =
        desired.iter().map(|d| (d.full_name.as_str(), d)).collect();
    let mut seen = BTreeSet::new();
    for o in &observed.containers {
        let Some(d) = by_name.get(o.full_name.as_str()) else {
            removes.push(Action::Remove {
                id: o.id.clone(),
                name: o.full_name.clone(),
            });
            continue;
        };
        seen.insert(o.full_name.as_str());
        if o.spec_hash != d.spec_hash {
            recreates.push(Action::Recreate {
                id: o.id.clone(),
                changes: changes(&o.fields, &d.spec.fields()),
                container: Box::new((*d).clone()),
            });
        } else if d.state == State::Running && !o.running {
            starts.push(Action::Start {
                id: o.id.clone(),
                name: o.full_name.clone(),
            });
        } else if d.state == State::Stopped && o.running {
            stops.push(Action::Stop {
                id: o.id.clone(),
                name: o.full_name.clone(),
            });
        }
    }
    for d in desired {
        if !seen.contains(d.full_name.as_str()) {
            creates.push(Action::Create {
                container: Box::new(d.clone()),
            });
        }
    }
    setup
        .into_iter()
        .chain(removes)
        .chain(stops)
        .chain(recreates)
        .chain(creates)
        .chain(starts)
        .collect()
}

/// Stops every running container of an account (its workspace cannot be
/// read, and it may not run). Nothing is removed.
pub fn stop_all(observed: &ObservedAccount) -> Vec<Action> {
    observed
        .containers
        .iter()
        .filter(|c| c.running)
        .map(|c| Action::Stop {
            id: c.id.clone(),
            name: c.full_name.clone(),
        })
        .collect()
}

/// Field-level differences between two flat specs.
pub fn changes(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<Change> {
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| Change {
            field: k.clone(),
            old: old.get(k).cloned(),
            new: new.get(k).cloned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::fixtures;

    fn desired(name: &str, env: &str, state: State) -> DesiredContainer {
        let mut spec = fixtures::spec();
        spec.env.insert("GREETING".into(), env.into());
        fixtures::container(name, spec, state)
    }

    fn observed(d: &DesiredContainer, running: bool) -> ObservedContainer {
        ObservedContainer {
            id: format!("id-{}", d.name),
            account: d.account.clone(),
            name: d.name.clone(),
            full_name: d.full_name.clone(),
            image: d.spec.image.clone(),
            spec_hash: d.spec_hash.clone(),
            revision: d.revision.clone(),
            running,
            state: if running { "running" } else { "exited" }.into(),
            fields: d.spec.fields(),
            ports: BTreeMap::new(),
        }
    }

    fn kinds(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| format!("{} {}", a.kind(), a.target()))
            .collect()
    }

    fn world(containers: Vec<ObservedContainer>) -> ObservedAccount {
        ObservedAccount {
            containers,
            network: true,
            volumes: BTreeSet::from(["berth-alice--data".to_string()]),
            volume_users: BTreeMap::new(),
        }
    }

    #[test]
    fn fresh_account_gets_network_volume_and_container() {
        let d = desired("web", "hi", State::Running);
        let got = plan(&[d], &ObservedAccount::default(), "berth-alice");
        assert_eq!(
            kinds(&got),
            [
                "create_network berth-alice",
                "create_volume berth-alice--data",
                "create alice--web"
            ]
        );
    }

    #[test]
    fn converged_account_has_an_empty_plan() {
        let d = desired("web", "hi", State::Running);
        assert!(
            plan(
                std::slice::from_ref(&d),
                &world(vec![observed(&d, true)]),
                "berth-alice"
            )
            .is_empty()
        );
    }

    #[test]
    fn changed_spec_recreates_with_field_changes() {
        let old = desired("web", "hello", State::Running);
        let new = desired("web", "hi", State::Running);
        let got = plan(&[new], &world(vec![observed(&old, true)]), "berth-alice");
        let [Action::Recreate { changes, .. }] = got.as_slice() else {
            panic!("{got:?}")
        };
        assert_eq!(
            changes,
            &[Change {
                field: "env.GREETING".into(),
                old: Some("hello".into()),
                new: Some("hi".into())
            }]
        );
    }

    #[test]
    fn drifted_state_is_reverted_both_ways() {
        let run = desired("web", "hi", State::Running);
        let stop = desired("job", "hi", State::Stopped);
        let got = plan(
            &[run.clone(), stop.clone()],
            &world(vec![observed(&run, false), observed(&stop, true)]),
            "berth-alice",
        );
        assert_eq!(kinds(&got), ["stop alice--job", "start alice--web"]);
    }

    #[test]
    fn undeclared_berth_containers_are_removed_first() {
        let keep = desired("web", "hi", State::Running);
        let gone = desired("old", "hi", State::Running);
        let fresh = desired("new", "hi", State::Running);
        let got = plan(
            &[keep.clone(), fresh],
            &world(vec![observed(&keep, true), observed(&gone, true)]),
            "berth-alice",
        );
        assert_eq!(kinds(&got), ["remove alice--old", "create alice--new"]);
    }

    #[test]
    fn empty_workspace_removes_containers_but_never_volumes_or_creates_a_network() {
        let gone = desired("web", "hi", State::Running);
        let got = plan(&[], &world(vec![observed(&gone, true)]), "berth-alice");
        assert_eq!(kinds(&got), ["remove alice--web"]);
    }
}
