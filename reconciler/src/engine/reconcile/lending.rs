//! GPU lending inside a reconcile: what `site.yaml` says of cards and
//! grants, as [`berth_core::lending`] takes it, and which of an account's
//! GPU containers hold cards now. A container without a grant is queued
//! and kept stopped; one whose cards are free gets them at once (a
//! lending tick in `serve` serves the rest of the queue and ends grants).

use crate::clients::{Context, Result};
use berth_core::desired::GpuKey;
use berth_core::lending::{self, Card, Change, Request, Rules};
use berth_spec::{Site, Workspace};
use std::collections::{BTreeMap, BTreeSet};

/// Every lendable card of every Docker host.
pub fn cards(site: &Site) -> Vec<Card> {
    site.backends
        .docker
        .iter()
        .flat_map(|d| {
            berth_spec::site::lendable(d.gpus, &d.gpu_cards)
                .into_iter()
                .map(|l| Card {
                    endpoint: d.name.value.clone(),
                    id: l.id,
                    model: l.model,
                    parent: l.parent,
                })
        })
        .collect()
}

fn millis(text: Option<&berth_spec::Located<String>>, default: &str) -> i64 {
    let text = text.map_or(default, |t| t.value.as_str());
    berth_spec::site::parse_duration(text)
        .or_else(|_| berth_spec::site::parse_duration(default))
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The site's lending rules.
pub fn rules(site: &Site) -> Rules {
    let p = &site.policy.gpus;
    Rules {
        sharing: site
            .backends
            .docker
            .iter()
            .filter(|d| d.gpu_sharing)
            .map(|d| d.name.value.clone())
            .collect(),
        caps: site
            .policy
            .quotas
            .iter()
            .filter_map(|(g, q)| Some((g.clone(), q.gpus_at_once?)))
            .collect(),
        warn_before: millis(Some(&p.warn_before), "15m"),
        shortest: millis(Some(&p.shortest), "30m"),
        idle_after: p.idle_after.as_ref().map(|d| millis(Some(d), "1h")),
    }
}

/// The group an account's GPUs count against: of its groups with a
/// quota, the one giving the most GPUs (the first by name on a tie).
pub fn group_for(site: &Site, groups: &[String]) -> String {
    let mut best: Option<(&String, u32)> = None;
    for (g, q) in &site.policy.quotas {
        if groups.contains(g) && best.is_none_or(|(_, n)| q.gpus > n) {
            best = Some((g, q.gpus));
        }
    }
    best.map(|(g, _)| g.clone()).unwrap_or_default()
}

/// How long a container's grant lasts: what it asks (`gpu_time`), at
/// most its group's `gpu_time_max`; the group's `gpu_time` otherwise.
pub fn length_for(site: &Site, group: &str, asked: Option<&berth_spec::Located<String>>) -> i64 {
    let quota = site.policy.quotas.get(group);
    let default = millis(
        quota.and_then(|q| q.gpu_time.as_ref()),
        berth_spec::site::DEFAULT_GRANT,
    );
    let max = quota
        .and_then(|q| q.gpu_time_max.as_ref())
        .map_or(default, |m| {
            millis(Some(m), berth_spec::site::DEFAULT_GRANT)
        });
    asked
        .map_or(default, |a| {
            millis(Some(a), berth_spec::site::DEFAULT_GRANT)
        })
        .min(max.max(default))
}

/// What lending gives an account's GPU containers in this reconcile.
#[derive(Debug, Default)]
pub struct Lent {
    /// Device ids per container: its grant's, or for one that waits the
    /// ids it last had (so its spec, and the stopped container, stay).
    pub devices: BTreeMap<GpuKey, Vec<String>>,
    /// Containers that wait for cards (kept stopped).
    pub waiting: BTreeSet<String>,
}

/// Lends `account`'s GPU containers on `endpoint` what is free now, and
/// queues the rest; with `keep` false (a preview) the store is left as
/// it was. A container the culler or a grant's end stopped asks for
/// nothing until started again (`wake`: a new revision does).
pub fn lend(
    ctx: &Context,
    account: &str,
    groups: &[String],
    ws: &Workspace,
    endpoint: &str,
    keep: bool,
    wake: bool,
) -> Result<Lent> {
    let site = &ctx.site;
    let now = crate::store::now_ms();
    let asks_gpus = ws.containers.iter().any(|c| {
        berth_spec::policy::backend_of(site, c) == berth_spec::Backend::Docker
            && berth_spec::policy::requested(site, c).2 > 0
    });
    // Most accounts ask for no GPU: what they held (if anything) goes
    // back, and nothing else of lending is read on their reconcile.
    if !asks_gpus {
        if keep {
            ctx.store.gpu_release_others(account, &[], now)?;
        }
        return Ok(Lent::default());
    }
    let culled: BTreeSet<String> = if wake {
        BTreeSet::new()
    } else {
        ctx.store.culled(account)?.into_keys().collect()
    };
    let mut state = ctx.store.lending(now)?;
    state.cards = cards(site);
    // A member of a group with a booking running now asks as that group,
    // so the booked cards serve it.
    let group = state
        .bookings
        .iter()
        .find(|b| b.start <= now && now < b.end && groups.contains(&b.group))
        .map_or_else(|| group_for(site, groups), |b| b.group.clone());
    let last = ctx.store.gpus(endpoint)?;
    let mut out = Lent::default();
    let mut asks = Vec::new();
    for c in ws
        .containers
        .iter()
        .filter(|c| berth_spec::policy::backend_of(site, c) == berth_spec::Backend::Docker)
    {
        let (_, _, gpus) = berth_spec::policy::requested(site, c);
        if gpus == 0 {
            continue;
        }
        let key = GpuKey {
            account: account.into(),
            container: c.name.value.clone(),
        };
        let resting = c.state() != berth_spec::State::Running
            || culled.contains(&berth_spec::names::qualified(account, &c.name.value));
        if resting {
            // Stopped: it holds no cards, and keeps the ids it had.
            out.waiting.insert(key.container.clone());
            if let Some(ids) = last.get(&key) {
                out.devices.insert(key, ids.clone());
            }
            continue;
        }
        let r = c.resources.as_ref();
        asks.push(Request {
            key,
            group: group.clone(),
            endpoint: endpoint.into(),
            count: gpus,
            model: r
                .and_then(|r| r.gpu_model.as_ref())
                .map(|m| m.value.clone()),
            length: length_for(site, &group, r.and_then(|r| r.gpu_time.as_ref())),
            since: now,
        });
    }
    let keys: Vec<GpuKey> = asks.iter().map(|r| r.key.clone()).collect();
    // What the account no longer asks for is released (and, in a
    // preview, left out of what is decided).
    if keep {
        ctx.store.gpu_release_others(account, &keys, now)?;
    }
    state
        .grants
        .retain(|g| g.key.account != account || keys.contains(&g.key));
    state
        .queue
        .retain(|r| r.key.account != account || keys.contains(&r.key));
    let resting = out.waiting.len();
    for r in &asks {
        let grant = state.grants.iter().find(|g| g.key == r.key);
        match grant {
            Some(g) if g.endpoint == r.endpoint && g.cards.len() == r.count as usize => {
                out.devices.insert(r.key.clone(), g.cards.clone());
                continue;
            }
            // Moved or resized: the old grant ends, the new ask queues.
            Some(_) if keep => {
                ctx.store.gpu_end(&r.key, now)?;
                state.grants.retain(|g| g.key != r.key);
            }
            Some(_) => state.grants.retain(|g| g.key != r.key),
            None => {}
        }
        let queued = state.queue.iter().find(|q| q.key == r.key).cloned();
        let request = Request {
            since: queued.as_ref().map_or(now, |q| q.since),
            ..r.clone()
        };
        if keep {
            ctx.store.gpu_enqueue(&request)?;
        }
        state.queue.retain(|q| q.key != r.key);
        state.queue.push(request);
        out.waiting.insert(r.key.container.clone());
        if let Some(ids) = last.get(&r.key) {
            out.devices.insert(r.key.clone(), ids.clone());
        }
    }
    if out.waiting.len() == resting {
        return Ok(out);
    }
    // Serve what is free now. Grants past their end still hold their
    // cards here: only the lending tick, once it stopped their
    // containers, frees them.
    let mut holding = state.clone();
    for g in &mut holding.grants {
        g.end = i64::MAX;
    }
    let shares = ctx.store.gpu_shares(now)?;
    let starts: Vec<Change> = lending::step(now, &holding, &shares, &BTreeMap::new(), &rules(site))
        .into_iter()
        .filter(|c| matches!(c, Change::Start(g) if g.key.account == account))
        .collect();
    if keep && !starts.is_empty() {
        ctx.store.apply_lending(now, &starts)?;
    }
    for c in starts {
        if let Change::Start(g) = c {
            out.waiting.remove(&g.key.container);
            out.devices.insert(g.key, g.cards);
        }
    }
    Ok(out)
}
