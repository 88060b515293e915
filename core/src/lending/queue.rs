//! The waiting line for cards (pure): its fair-share order, and each
//! waiting container's place and estimated start.

use super::{Request, Shares, State};
use crate::desired::gpus::GpuKey;
use std::collections::BTreeMap;

/// `waiting` in the order they are served: the group with the fewest
/// recent GPU-hours first, then the account with the fewest, then the
/// longest waiting, then by name (so the order is total).
pub fn order<'a>(waiting: &[&'a Request], shares: &Shares) -> Vec<&'a Request> {
    let share = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    let mut out = waiting.to_vec();
    out.sort_by(|a, b| {
        share(&shares.group, &a.group)
            .total_cmp(&share(&shares.group, &b.group))
            .then(
                share(&shares.account, &a.key.account)
                    .total_cmp(&share(&shares.account, &b.key.account)),
            )
            .then(a.since.cmp(&b.since))
            .then(a.key.cmp(&b.key))
    });
    out
}

/// A waiting container's place on its host (1 is next) and when it may
/// start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Place {
    pub position: usize,
    /// Unix ms; none when no card of its model can ever serve it.
    pub estimate: Option<i64>,
}

/// Every waiting container's place, estimated by playing the line
/// forward: each card frees when its grant ends, and each container
/// ahead holds the cards it takes for its whole length. Bookings and
/// caps are left out, so an estimate may be early.
pub fn places(now: i64, state: &State, shares: &Shares) -> BTreeMap<GpuKey, Place> {
    let waiting: Vec<&Request> = state.queue.iter().collect();
    let mut free_at: BTreeMap<(&str, &str), i64> = state
        .cards
        .iter()
        .map(|c| ((c.endpoint.as_str(), c.id.as_str()), now))
        .collect();
    for g in &state.grants {
        for c in &g.cards {
            if let Some(t) = free_at.get_mut(&(g.endpoint.as_str(), c.as_str())) {
                *t = (*t).max(g.end);
            }
        }
    }
    let mut positions: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for r in order(&waiting, shares) {
        let position = positions.entry(r.endpoint.as_str()).or_default();
        *position += 1;
        let mut fitting: Vec<(i64, &str)> = state
            .cards
            .iter()
            .filter(|c| c.endpoint == r.endpoint && r.model.as_ref().is_none_or(|m| *m == c.model))
            .map(|c| {
                (
                    free_at[&(c.endpoint.as_str(), c.id.as_str())],
                    c.id.as_str(),
                )
            })
            .collect();
        fitting.sort();
        let estimate = (fitting.len() >= r.count as usize && r.count > 0).then(|| {
            let chosen = &fitting[..r.count as usize];
            let start = chosen.iter().map(|(t, _)| *t).max().unwrap_or(now);
            for (_, id) in chosen {
                free_at.insert((r.endpoint.as_str(), id), start.saturating_add(r.length));
            }
            start
        });
        out.insert(
            r.key.clone(),
            Place {
                position: *position,
                estimate,
            },
        );
    }
    out
}
