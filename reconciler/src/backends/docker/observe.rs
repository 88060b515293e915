//! Observation: every Berth-labelled container, network and volume on one
//! dockerd (or one account's), grouped by owning account, in one list call
//! per kind whatever the number of accounts.

use super::{DockerBackend, Result};
use berth_core::desired::{
    LABEL_HASH, LABEL_HOME, LABEL_NAME, LABEL_OWNER, LABEL_REVISION, LABEL_SPEC,
};
use berth_core::plan::{ObservedAccount, ObservedContainer};
use bollard::models::ContainerSummaryStateEnum;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
};
use std::collections::{BTreeMap, HashMap};

fn label_filter(label: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![label.to_string()])])
}

impl DockerBackend {
    /// Every Berth object on this daemon (or only `account`'s), grouped by
    /// owning account. One list call per object kind, whatever the number
    /// of accounts.
    pub async fn observe(
        &self,
        account: Option<&str>,
    ) -> Result<BTreeMap<String, ObservedAccount>> {
        let filter = match account {
            Some(a) => label_filter(&format!("{LABEL_OWNER}={a}")),
            None => label_filter(LABEL_OWNER),
        };
        let (containers, networks, volumes) = tokio::try_join!(
            async {
                let opts = ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filter)
                    .build();
                self.docker
                    .list_containers(Some(opts))
                    .await
                    .map_err(Self::api("list", "containers"))
            },
            async {
                let opts = ListNetworksOptionsBuilder::default()
                    .filters(&filter)
                    .build();
                self.docker
                    .list_networks(Some(opts))
                    .await
                    .map_err(Self::api("list", "networks"))
            },
            async {
                let opts = ListVolumesOptionsBuilder::default()
                    .filters(&filter)
                    .build();
                self.docker
                    .list_volumes(Some(opts))
                    .await
                    .map_err(Self::api("list", "volumes"))
            },
        )?;
        let mut out: BTreeMap<String, ObservedAccount> = BTreeMap::new();
        for c in containers {
            let labels = c.labels.unwrap_or_default();
            let Some(owner) = labels.get(LABEL_OWNER).cloned() else {
                continue;
            };
            let full_name = c
                .names
                .unwrap_or_default()
                .first()
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default();
            let state = c.state.map(|s| s.to_string()).unwrap_or_default();
            let running = matches!(
                c.state,
                Some(ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::RESTARTING)
            );
            let ports = c
                .ports
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| {
                    p.public_port
                        .map(|h| (p.private_port, format!("{}:{h}", p.ip.unwrap_or_default())))
                })
                .collect();
            let mine = out.entry(owner.clone()).or_default();
            for volume in c.mounts.iter().flatten().filter_map(|m| m.name.clone()) {
                mine.volume_users
                    .entry(volume)
                    .or_default()
                    .push(full_name.clone());
            }
            mine.containers.push(ObservedContainer {
                id: c.id.unwrap_or_default(),
                account: owner,
                name: labels.get(LABEL_NAME).cloned().unwrap_or_default(),
                full_name,
                image: c.image.clone().unwrap_or_default(),
                spec_hash: labels.get(LABEL_HASH).cloned().unwrap_or_default(),
                revision: labels.get(LABEL_REVISION).cloned().unwrap_or_default(),
                running,
                state,
                fields: labels
                    .get(LABEL_SPEC)
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or_default(),
                ports,
            });
        }
        for n in networks {
            if let Some(owner) = n.labels.as_ref().and_then(|l| l.get(LABEL_OWNER)) {
                out.entry(owner.clone()).or_default().network = true;
            }
        }
        // A home directory's volume is a bind of the student's directory,
        // not data Berth keeps: drain never copies it, nobody deletes it.
        for v in volumes.volumes.unwrap_or_default() {
            if v.labels.contains_key(LABEL_HOME) {
                continue;
            }
            if let Some(owner) = v.labels.get(LABEL_OWNER) {
                out.entry(owner.clone()).or_default().volumes.insert(v.name);
            }
        }
        Ok(out)
    }
}
