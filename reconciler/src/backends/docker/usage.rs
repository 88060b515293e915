//! Measuring the accounts' data volumes on one dockerd: their sizes from
//! Docker's disk-usage walk (`GET /system/df`), and whether a running
//! container mounts each, in two calls whatever the number of volumes.
//!
//! bollard types every answer after the newest Engine API, where
//! `/system/df` changed shape (API 1.52); a daemon before that (Debian's
//! 20.10 speaks 1.41) answers in the old shape, which bollard 0.21 drops.
//! So the answer is read here as JSON, in either shape, through bollard's
//! own transport (a unix socket, TCP and TLS alike).

use super::{DockerBackend, DockerError, Result};
use berth_core::desired::{LABEL_HOME, LABEL_OWNER};
use bollard::models::ContainerSummaryStateEnum;
use bollard::query_parameters::ListContainersOptionsBuilder;
use futures::StreamExt;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

/// Largest disk-usage answer read: it lists every image, container and
/// volume of the host (about 1 KiB each).
const MAX_ANSWER: usize = 64 << 20;

/// A data volume of an account, as one measurement found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeSize {
    pub name: String,
    pub account: String,
    /// `None` when Docker does not walk it (it reports -1).
    pub bytes: Option<u64>,
    /// A running container mounts it.
    pub in_use: bool,
}

impl DockerBackend {
    /// Every Berth data volume on this daemon with its size (home
    /// directories' volumes are left out: Docker does not walk a bind, and
    /// they are not Berth's to count).
    pub async fn measure_volumes(&self) -> Result<Vec<VolumeSize>> {
        let filters = HashMap::from([("label".to_string(), vec![LABEL_OWNER.to_string()])]);
        let running = ListContainersOptionsBuilder::default()
            .filters(&filters)
            .build();
        let (df, containers) = tokio::try_join!(
            self.get_raw("/system/df?type=volume&verbose=1", MAX_ANSWER),
            async {
                self.docker
                    .list_containers(Some(running))
                    .await
                    .map_err(Self::api("list", "containers"))
            }
        )?;
        let in_use: BTreeSet<String> = containers
            .into_iter()
            .filter(|c| {
                matches!(
                    c.state,
                    Some(
                        ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::RESTARTING
                    )
                )
            })
            .flat_map(|c| c.mounts.unwrap_or_default())
            .filter_map(|m| m.name)
            .collect();
        let answer: Value = serde_json::from_slice(&df).map_err(|e| DockerError::Answer {
            what: "GET /system/df".into(),
            message: e.to_string(),
        })?;
        Ok(volume_sizes(&answer)
            .into_iter()
            .map(|mut v| {
                v.in_use = in_use.contains(&v.name);
                v
            })
            .collect())
    }

    /// `GET path` on this daemon (under the negotiated API version), the
    /// body read up to `limit` bytes. Borrows bollard's transport: a
    /// request modifier points a raw-body call (`GET /images/{name}/get`)
    /// at `path`.
    async fn get_raw(&self, path: &str, limit: usize) -> Result<Vec<u8>> {
        const STAND_IN: &str = "/images/berth-raw-request/get";
        let target = path.to_string();
        let docker = self.docker.clone().with_request_modifier(move |mut req| {
            let uri = req.uri().to_string().replacen(STAND_IN, &target, 1);
            if let Ok(uri) = uri.parse() {
                *req.uri_mut() = uri;
            }
            req
        });
        let mut body = Vec::new();
        let mut stream = std::pin::pin!(docker.export_image("berth-raw-request"));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(Self::api("read", path))?;
            if body.len() + chunk.len() > limit {
                return Err(DockerError::Answer {
                    what: format!("GET {path}"),
                    message: format!("it is larger than {limit} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The Berth data volumes of a disk-usage answer, in either shape:
/// `Volumes` (API < 1.52) or `VolumeUsage.Items` (1.52 on).
fn volume_sizes(answer: &Value) -> Vec<VolumeSize> {
    let list = answer["Volumes"]
        .as_array()
        .or_else(|| answer["VolumeUsage"]["Items"].as_array());
    list.into_iter()
        .flatten()
        .filter_map(|v| {
            let labels = v["Labels"].as_object()?;
            if labels.contains_key(LABEL_HOME) {
                return None;
            }
            let account = labels.get(LABEL_OWNER)?.as_str()?;
            Some(VolumeSize {
                name: v["Name"].as_str()?.to_string(),
                account: account.to_string(),
                bytes: v["UsageData"]["Size"]
                    .as_i64()
                    .and_then(|b| u64::try_from(b).ok()),
                in_use: false,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_shapes_of_the_answer_are_read() {
        let volume = |name: &str, labels: Value, size: i64| {
            json!({"Name": name, "Driver": "local", "Labels": labels,
                   "UsageData": {"Size": size, "RefCount": 1}})
        };
        let items = vec![
            volume("berth-alice--data", json!({"berth.owner": "alice"}), 4096),
            volume(
                "berth-alice.home",
                json!({"berth.owner": "alice", "berth.home": "true"}),
                -1,
            ),
            volume("someones", json!({}), 10),
            volume("berth-bob--x", json!({"berth.owner": "bob"}), -1),
        ];
        let want = vec![
            VolumeSize {
                name: "berth-alice--data".into(),
                account: "alice".into(),
                bytes: Some(4096),
                in_use: false,
            },
            VolumeSize {
                name: "berth-bob--x".into(),
                account: "bob".into(),
                bytes: None,
                in_use: false,
            },
        ];
        let old = json!({"LayersSize": 0, "Images": [], "Volumes": items.clone()});
        let new = json!({"VolumeUsage": {"TotalCount": 4, "Items": items}});
        assert_eq!(volume_sizes(&old), want);
        assert_eq!(volume_sizes(&new), want);
        assert!(volume_sizes(&json!({})).is_empty());
    }
}
