//! Where an account's Docker containers go and what host resources they
//! hold (pure; the caller persists): the endpoint (sticky, else least
//! loaded), host ports from the endpoint's range, and GPU device ids
//! ([`crate::desired::gpus`]).

use super::gpus::GpuKey;
use berth_spec::site::PortRange;
use berth_spec::{Backend, Site, Workspace, policy};
use std::collections::{BTreeMap, BTreeSet};

/// A host port given to one container port of one account.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortKey {
    pub account: String,
    pub container: String,
    pub container_port: u16,
}

/// GPU containers of a workspace on Docker and how many GPUs each wants.
pub fn gpu_needs(ws: &Workspace, site: &Site, account: &str) -> Vec<(GpuKey, u32)> {
    ws.containers
        .iter()
        .filter(|c| policy::backend_of(site, c) == Backend::Docker)
        .filter_map(|c| {
            let (_, _, gpus) = policy::requested(site, c);
            (gpus > 0).then(|| {
                (
                    GpuKey {
                        account: account.into(),
                        container: c.name.value.clone(),
                    },
                    gpus,
                )
            })
        })
        .collect()
}

/// Container ports a workspace publishes on Docker, as allocation keys.
pub fn port_needs(ws: &Workspace, site: &Site, account: &str) -> Vec<PortKey> {
    ws.containers
        .iter()
        .filter(|c| policy::backend_of(site, c) == Backend::Docker)
        .flat_map(|c| {
            c.ports
                .iter()
                .filter_map(|p| u16::try_from(p.value).ok())
                .map(|p| PortKey {
                    account: account.into(),
                    container: c.name.value.clone(),
                    container_port: p,
                })
        })
        .collect()
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("host port range {first}–{last} of endpoint `{endpoint}` is exhausted")]
pub struct PortsExhausted {
    pub endpoint: String,
    pub first: u16,
    pub last: u16,
}

/// Host ports for `needs` (all of one account): existing allocations are
/// kept (stable across recreation and restarts), new ones take the lowest
/// port of the range not held by anyone. Pure: the caller persists.
pub fn allocate_ports(
    endpoint: &str,
    range: PortRange,
    existing: &BTreeMap<PortKey, u16>,
    needs: &[PortKey],
) -> Result<BTreeMap<PortKey, u16>, PortsExhausted> {
    let mut taken: BTreeSet<u16> = existing.values().copied().collect();
    let mut out = BTreeMap::new();
    let mut fresh = Vec::new();
    for key in needs {
        match existing.get(key) {
            Some(port) => {
                out.insert(key.clone(), *port);
            }
            None => fresh.push(key.clone()),
        }
    }
    let mut candidate = range.first;
    for key in fresh {
        while taken.contains(&candidate) {
            if candidate == range.last {
                return Err(PortsExhausted {
                    endpoint: endpoint.into(),
                    first: range.first,
                    last: range.last,
                });
            }
            candidate += 1;
        }
        taken.insert(candidate);
        out.insert(key, candidate);
    }
    Ok(out)
}

/// A Docker host as placement sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub gpus: u32,
    /// Memory the site says the host has for accounts, if it says.
    pub memory: Option<u64>,
    /// Reachable now: a host that is down gets no new account.
    pub up: bool,
}

/// What an account needs of its host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    pub gpus: u32,
    pub memory: u64,
}

/// The endpoint of an account: sticky once chosen (its network and volumes
/// live there, and it stays even while that host is down: nothing is moved
/// automatically), else the reachable host with the fewest accounts among
/// those with the GPUs and memory it needs.
pub fn place(
    sticky: Option<&str>,
    hosts: &[Host],
    accounts_per_endpoint: &BTreeMap<String, usize>,
    needs: Needs,
) -> Option<String> {
    if let Some(s) = sticky
        && hosts.iter().any(|h| h.name == s)
    {
        return Some(s.to_string());
    }
    hosts
        .iter()
        .filter(|h| h.up && h.gpus >= needs.gpus)
        .filter(|h| h.memory.is_none_or(|m| m >= needs.memory))
        .min_by_key(|h| accounts_per_endpoint.get(&h.name).copied().unwrap_or(0))
        .map(|h| h.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: &str, p: u16) -> PortKey {
        PortKey {
            account: "alice".into(),
            container: c.into(),
            container_port: p,
        }
    }

    #[test]
    fn allocation_keeps_existing_ports_and_fills_the_lowest_gaps() {
        let range = PortRange {
            first: 20000,
            last: 20003,
        };
        let bob = PortKey {
            account: "bob".into(),
            container: "db".into(),
            container_port: 5432,
        };
        let existing = BTreeMap::from([(key("web", 80), 20002), (bob, 20000)]);
        let got = allocate_ports(
            "local",
            range,
            &existing,
            &[key("web", 80), key("api", 8080), key("api", 9090)],
        )
        .expect("fits");
        assert_eq!(got[&key("web", 80)], 20002);
        assert_eq!(got[&key("api", 8080)], 20001);
        assert_eq!(got[&key("api", 9090)], 20003);
        assert_eq!(got.len(), 3, "released keys are not returned");
        let err = allocate_ports(
            "local",
            range,
            &existing,
            &[key("a", 1), key("b", 2), key("c", 3)],
        );
        assert!(err.is_err());
    }

    fn host(name: &str, gpus: u32, memory: Option<u64>, up: bool) -> Host {
        Host {
            name: name.into(),
            gpus,
            memory,
            up,
        }
    }

    #[test]
    fn placement_is_sticky_then_least_loaded_among_hosts_that_fit() {
        let hosts = vec![host("a", 2, None, true), host("b", 0, Some(8 << 30), true)];
        let counts = BTreeMap::from([("a".to_string(), 5), ("b".to_string(), 2)]);
        let none = Needs::default();
        assert_eq!(
            place(Some("a"), &hosts, &counts, none).as_deref(),
            Some("a")
        );
        assert_eq!(place(None, &hosts, &counts, none).as_deref(), Some("b"));
        assert_eq!(
            place(Some("gone"), &hosts, &counts, none).as_deref(),
            Some("b")
        );
        assert_eq!(place(None, &[], &counts, none), None);
        // GPUs only where there are GPUs; memory only where it fits.
        let gpu = Needs { gpus: 1, memory: 0 };
        assert_eq!(place(None, &hosts, &counts, gpu).as_deref(), Some("a"));
        let big = Needs {
            gpus: 0,
            memory: 16 << 30,
        };
        assert_eq!(place(None, &hosts, &counts, big).as_deref(), Some("a"));
        let huge = Needs { gpus: 3, memory: 0 };
        assert_eq!(place(None, &hosts, &counts, huge), None);
    }

    #[test]
    fn a_host_that_is_down_keeps_its_accounts_and_gets_no_new_one() {
        let hosts = vec![host("a", 0, None, false), host("b", 0, None, true)];
        let counts = BTreeMap::from([("b".to_string(), 9)]);
        let none = Needs::default();
        assert_eq!(
            place(Some("a"), &hosts, &counts, none).as_deref(),
            Some("a")
        );
        assert_eq!(place(None, &hosts, &counts, none).as_deref(), Some("b"));
    }
}
