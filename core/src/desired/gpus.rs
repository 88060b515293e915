//! GPU assignment on one Docker host (pure): which device ids each GPU
//! container gets. A host lists how many GPUs it has (`gpus: N`, ids
//! `0`..`N-1`); each container is given its own ids, kept across
//! recreations and restarts, and no id goes to two containers unless the
//! site allows sharing on that host (then the least-used ids are given).
//! The caller persists the result in the store, like host ports.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One container's claim on a host's GPUs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GpuKey {
    pub account: String,
    pub container: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "docker host `{endpoint}` has {total} GPU(s) and {free} free; `{container}` asks for {wanted}"
)]
pub struct GpusExhausted {
    pub endpoint: String,
    pub container: String,
    pub wanted: u32,
    pub free: usize,
    pub total: u32,
}

/// Device ids for `needs` (one account's GPU containers and counts).
/// `existing` holds every container's ids on the host; this account's
/// entries that no longer fit its needs are released first.
pub fn allocate(
    endpoint: &str,
    total: u32,
    sharing: bool,
    existing: &BTreeMap<GpuKey, Vec<u32>>,
    needs: &[(GpuKey, u32)],
) -> Result<BTreeMap<GpuKey, Vec<u32>>, GpusExhausted> {
    let account = needs.first().map(|(k, _)| k.account.as_str());
    let mut use_count: BTreeMap<u32, usize> = (0..total).map(|d| (d, 0)).collect();
    for (key, ids) in existing {
        if Some(key.account.as_str()) == account {
            continue;
        }
        for id in ids {
            *use_count.entry(*id).or_default() += 1;
        }
    }
    let mut out = BTreeMap::new();
    let mut fresh = Vec::new();
    for (key, wanted) in needs {
        match existing.get(key) {
            Some(ids)
                if ids.len() == *wanted as usize
                    && ids.iter().all(|id| *id < total)
                    && (sharing || ids.iter().all(|id| use_count.get(id) == Some(&0))) =>
            {
                for id in ids {
                    *use_count.entry(*id).or_default() += 1;
                }
                out.insert(key.clone(), ids.clone());
            }
            _ => fresh.push((key.clone(), *wanted)),
        }
    }
    for (key, wanted) in fresh {
        let mut candidates: Vec<(usize, u32)> = use_count
            .iter()
            .filter(|(_, n)| sharing || **n == 0)
            .map(|(id, n)| (*n, *id))
            .collect();
        candidates.sort();
        if candidates.len() < wanted as usize {
            return Err(GpusExhausted {
                endpoint: endpoint.to_string(),
                container: key.container.clone(),
                wanted,
                free: use_count.values().filter(|n| **n == 0).count(),
                total,
            });
        }
        let ids: BTreeSet<u32> = candidates
            .iter()
            .take(wanted as usize)
            .map(|(_, id)| *id)
            .collect();
        for id in &ids {
            *use_count.entry(*id).or_default() += 1;
        }
        out.insert(key, ids.into_iter().collect());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(account: &str, container: &str) -> GpuKey {
        GpuKey {
            account: account.into(),
            container: container.into(),
        }
    }

    #[test]
    fn each_container_gets_its_own_cards_and_keeps_them() {
        let alice = allocate(
            "gpu1",
            2,
            false,
            &BTreeMap::new(),
            &[(key("alice", "train"), 1)],
        )
        .expect("fits");
        assert_eq!(alice[&key("alice", "train")], [0]);
        let bob = allocate("gpu1", 2, false, &alice, &[(key("bob", "train"), 1)]).expect("fits");
        assert_eq!(bob[&key("bob", "train")], [1], "never alice's card");
        let mut all = alice.clone();
        all.extend(bob);
        // Stable across reconciles.
        let again = allocate("gpu1", 2, false, &all, &[(key("alice", "train"), 1)]).expect("fits");
        assert_eq!(again[&key("alice", "train")], [0]);
        // A third account finds no free card.
        let err = allocate("gpu1", 2, false, &all, &[(key("carol", "x"), 1)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "docker host `gpu1` has 2 GPU(s) and 0 free; `x` asks for 1"
        );
        // With sharing the least-used card is shared.
        let shared = allocate("gpu1", 2, true, &all, &[(key("carol", "x"), 1)]).expect("shares");
        assert_eq!(shared[&key("carol", "x")].len(), 1);
    }

    #[test]
    fn a_changed_count_reallocates_and_releases() {
        let first = allocate("h", 4, false, &BTreeMap::new(), &[(key("a", "t"), 1)]).expect("fits");
        let grown = allocate("h", 4, false, &first, &[(key("a", "t"), 3)]).expect("fits");
        assert_eq!(grown[&key("a", "t")], [0, 1, 2]);
        let none = allocate("h", 4, false, &grown, &[]).expect("nothing");
        assert!(none.is_empty());
    }
}
