//! Usage counters of a running container (one-shot stats: no two-second
//! wait for a CPU delta), for the idle culler: CPU time and network bytes
//! so far. Docker's stats have no GPU figures.

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
        let opts = StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(true)
            .build();
        let mut stream = self.docker.stats(id, Some(opts));
        let Some(item) = stream.next().await else {
            return Ok(None);
        };
        let stats = match item {
            Ok(s) => s,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                return Ok(None);
            }
            Err(e) => return Err(Self::api("stats", id)(e)),
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
}
