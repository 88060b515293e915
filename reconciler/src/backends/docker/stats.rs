//! Usage counters of running containers (one-shot stats: no two-second
//! wait for a CPU delta): CPU time and network bytes for the idle culler,
//! and a whole host's accounting round. Docker's stats have no GPU
//! figures.

use super::{DockerBackend, Result};
use bollard::query_parameters::StatsOptionsBuilder;
use futures::StreamExt;

/// Counters of one container at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// CPU time used, nanoseconds.
    pub cpu_ns: u64,
    /// Bytes received and sent, all interfaces.
    pub net_bytes: u64,
}

impl DockerBackend {
    /// The counters of container `id`, `None` when it is not running.
    pub async fn usage(&self, id: &str) -> Result<Option<Usage>> {
        let Some(stats) = self.one_shot(id).await? else {
            return Ok(None);
        };
        let cpu_ns = stats
            .cpu_stats
            .and_then(|c| c.cpu_usage)
            .and_then(|u| u.total_usage)
            .unwrap_or(0);
        let net_bytes = stats
            .networks
            .unwrap_or_default()
            .values()
            .map(|n| n.rx_bytes.unwrap_or(0) + n.tx_bytes.unwrap_or(0))
            .sum();
        Ok(Some(Usage { cpu_ns, net_bytes }))
    }

    /// One stats reading of a running container (no wait for a second
    /// one); `None` when it is not running.
    async fn one_shot(&self, id: &str) -> Result<Option<bollard::models::ContainerStatsResponse>> {
        let opts = StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(true)
            .build();
        let mut stream = self.docker.stats(id, Some(opts));
        match stream.next().await {
            None
            | Some(Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            })) => Ok(None),
            Some(Err(e)) => Err(Self::api("stats", id)(e)),
            Some(Ok(s)) => Ok(Some(s)),
        }
    }
}

/// Stats calls in flight at once on one host. dockerd answers a stats
/// call — even a one-shot one — at its stats collector's next tick, once a
/// second, whatever the number waiting: the calls in flight, not their
/// cost, set how many containers a second are read (8 at once made a
/// round of 600 containers take 78 s; 100 make it a few seconds). Each
/// is one open connection to the daemon while it waits.
pub const STATS_AT_ONCE: usize = 100;

/// Longest one sampling call may take: a daemon going down (a restart)
/// can hold a request open until the client's own 2-minute timeout, and a
/// round must not wait that long for it.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `f`, or an error once it took [`CALL_TIMEOUT`].
async fn bounded<T>(what: &str, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(CALL_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| {
            Err(super::DockerError::Answer {
                what: what.to_string(),
                message: format!("no answer within {} s", CALL_TIMEOUT.as_secs()),
            })
        })
}

impl DockerBackend {
    /// One accounting round's view of every Berth container on this host
    /// (runners included): each running one with its CPU counter, memory
    /// in use, start and what Docker reserves for it (`HostConfig`); and
    /// the stopped ones accounting may still owe time to — those in
    /// `followed` (running at the last round) and those created since
    /// `since` (Unix ms); and those in `followed` that are gone (removed
    /// by a recreate), with the time Docker's `die` event gives.
    /// `2 + 2 × running + those` API calls.
    pub async fn sample(
        &self,
        followed: &[berth_core::usage::Cursor],
        since: Option<i64>,
        now: i64,
    ) -> Result<Vec<berth_core::usage::Seen>> {
        use berth_core::desired::{LABEL_NAME, LABEL_OWNER};
        use bollard::models::ContainerSummaryStateEnum;
        let filters =
            std::collections::HashMap::from([("label".to_string(), vec![LABEL_OWNER.to_string()])]);
        let opts = bollard::query_parameters::ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let listed = bounded("the container list", async {
            self.docker
                .list_containers(Some(opts))
                .await
                .map_err(Self::api("list", "containers"))
        })
        .await?;
        let followed_ids: std::collections::BTreeSet<&str> =
            followed.iter().map(|c| c.id.as_str()).collect();
        let present: std::collections::BTreeSet<String> =
            listed.iter().filter_map(|c| c.id.clone()).collect();
        let gone: Vec<&berth_core::usage::Cursor> = followed
            .iter()
            .filter(|c| !present.contains(&c.id))
            .collect();
        // Read to this moment, not to the round's `now` (taken before the
        // list): a container stopped and removed between the two (a
        // recreate) died after `now`, and its last stretch would be lost.
        let until = jiff::Timestamp::now().as_millisecond().max(now);
        let died = match (gone.is_empty(), since) {
            (false, Some(since)) => bounded("the die events", self.deaths(since, until)).await?,
            _ => std::collections::BTreeMap::new(),
        };
        // A container gone without a `die` event Docker kept (a daemon
        // restart empties them) is forgotten: its last stretch is lost.
        let gone: Vec<berth_core::usage::Seen> = gone
            .into_iter()
            .filter(|c| died.contains_key(&c.id))
            .map(|c| berth_core::usage::Seen {
                id: c.id.clone(),
                account: c.account.clone(),
                name: c.name.clone(),
                running: false,
                started_at: c.started_at,
                finished_at: died.get(&c.id).copied(),
                cpu_ns: None,
                memory_used: None,
                reserved: c.reserved,
            })
            .collect();
        let wanted = listed.into_iter().filter_map(|c| {
            let id = c.id.clone()?;
            let running = matches!(
                c.state,
                Some(ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::RESTARTING)
            );
            let created_ms = c.created.unwrap_or(0) * 1000;
            let owed = followed_ids.contains(id.as_str()) || since.is_some_and(|s| created_ms >= s);
            let labels = c.labels.unwrap_or_default();
            let account = labels.get(LABEL_OWNER)?.clone();
            let name = labels
                .get(LABEL_NAME)
                .cloned()
                .or_else(|| {
                    c.names?
                        .first()
                        .map(|n| n.trim_start_matches('/').to_string())
                })
                .unwrap_or_default();
            (running || owed).then_some((id, account, name, running))
        });
        let seen: Vec<Option<berth_core::usage::Seen>> = futures::stream::iter(wanted)
            .map(|(id, account, name, running)| async move {
                bounded(
                    "a container's sample",
                    self.sample_one(id, account, name, running),
                )
                .await
            })
            .buffer_unordered(STATS_AT_ONCE)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        Ok(seen.into_iter().flatten().chain(gone).collect())
    }

    /// When each Berth container that stopped between `since` and `until`
    /// (Unix ms) stopped, from Docker's `die` events (one call; dockerd
    /// keeps its recent events in memory).
    async fn deaths(
        &self,
        since: i64,
        until: i64,
    ) -> Result<std::collections::BTreeMap<String, i64>> {
        let filters = std::collections::HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("event".to_string(), vec!["die".to_string()]),
            (
                "label".to_string(),
                vec![berth_core::desired::LABEL_OWNER.to_string()],
            ),
        ]);
        let seconds = |ms: i64| {
            format!(
                "{}.{:09}",
                ms.div_euclid(1000),
                ms.rem_euclid(1000) * 1_000_000
            )
        };
        let opts = bollard::query_parameters::EventsOptionsBuilder::default()
            .since(&seconds(since))
            .until(&seconds(until))
            .filters(&filters)
            .build();
        let mut out = std::collections::BTreeMap::new();
        let mut events = self.docker.events(Some(opts));
        while let Some(event) = events.next().await {
            let event = event.map_err(Self::api("read", "events"))?;
            if let (Some(id), Some(nanos)) = (event.actor.and_then(|a| a.id), event.time_nano) {
                out.insert(id, nanos.div_euclid(1_000_000));
            }
        }
        Ok(out)
    }

    /// `None` when the container went away meanwhile.
    async fn sample_one(
        &self,
        id: String,
        account: String,
        name: String,
        running: bool,
    ) -> Result<Option<berth_core::usage::Seen>> {
        let inspected = match self
            .docker
            .inspect_container(
                &id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(c) => c,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(None),
            Err(e) => return Err(Self::api("inspect", &id)(e)),
        };
        let state = inspected.state.unwrap_or_default();
        let millis = |t: Option<String>| {
            t.and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map(|t| t.as_millisecond())
                .filter(|ms| *ms > 0)
        };
        let Some(started_at) = millis(state.started_at) else {
            return Ok(None);
        };
        let host = inspected.host_config.unwrap_or_default();
        let reserved = berth_core::usage::Reserved {
            cpus: host.nano_cpus.unwrap_or(0) as f64 / 1e9,
            memory: host.memory.unwrap_or(0).max(0) as u64,
            gpus: host
                .device_requests
                .unwrap_or_default()
                .iter()
                .map(|d| match (&d.device_ids, d.count) {
                    (Some(ids), _) if !ids.is_empty() => ids.len() as u32,
                    (_, Some(n)) if n > 0 => n as u32,
                    _ => 0,
                })
                .sum(),
        };
        let running = running && state.running.unwrap_or(false);
        let (cpu_ns, memory_used) = if running {
            match self.counters(&id).await? {
                Some(c) => (Some(c.0), Some(c.1)),
                None => (None, None),
            }
        } else {
            (None, None)
        };
        Ok(Some(berth_core::usage::Seen {
            id,
            account,
            name,
            running: running && cpu_ns.is_some(),
            started_at,
            finished_at: millis(state.finished_at),
            cpu_ns,
            memory_used,
            reserved,
        }))
    }

    /// CPU counter (ns) and memory in use (bytes, the page cache left out
    /// as `docker stats` does) of a running container.
    async fn counters(&self, id: &str) -> Result<Option<(u64, u64)>> {
        let Some(stats) = self.one_shot(id).await? else {
            return Ok(None);
        };
        let cpu = stats
            .cpu_stats
            .and_then(|c| c.cpu_usage)
            .and_then(|u| u.total_usage)
            .unwrap_or(0);
        let memory = stats.memory_stats.unwrap_or_default();
        let cache = memory
            .stats
            .as_ref()
            .and_then(|s| {
                s.get("inactive_file")
                    .or_else(|| s.get("total_inactive_file"))
                    .copied()
            })
            .unwrap_or(0);
        Ok(Some((cpu, memory.usage.unwrap_or(0).saturating_sub(cache))))
    }
}
