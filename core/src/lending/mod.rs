//! GPU lending (pure): which cards a GPU container is lent and until
//! when, who waits for cards and in what order, and what an admin's
//! booking takes. The reconciler keeps the state (cards, grants, the
//! queue, bookings) in the store, calls [`step`] on every lending tick
//! and after each change, and applies the [`Change`]s it returns in one
//! transaction, so a crash between two ticks loses or doubles nothing:
//! the next tick decides again from what the store holds.
//!
//! The rules, as the admin guide states them (`docs/admin/gpus.md`):
//!
//! - A grant lends whole cards or MIG instances of one host for a time
//!   (the container's `gpu_time`, at most its group's maximum); it ends at
//!   that time, earlier when a booking of another group claims its cards
//!   (it is shortened as soon as the booking exists, and its holder told),
//!   or when its cards stay idle for the site's `idle_after`.
//! - No card has two holders, unless the host allows sharing.
//! - Those waiting are served in fair-share order ([`queue::order`]): the
//!   group with the fewest recent GPU-hours first, then the account with
//!   the fewest, then the longest waiting. On a host, one that does not
//!   fit blocks those behind it (no overtaking, so a request for several
//!   cards is not starved by single-card ones), except for requests a
//!   group cap holds back (skipped, they could not be served anyway) and
//!   requests that fit on cards booked for their own group.
//! - During a booking its cards serve only the booking's group.

pub mod booking;
pub mod queue;

use crate::desired::gpus::GpuKey;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A lendable device on a host: a whole card (an index or `GPU-…`
/// UUID) or a MIG instance (`MIG-…`), as dockerd's device requests name it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Card {
    pub endpoint: String,
    pub id: String,
    pub model: String,
    /// The whole card, for a MIG instance: while one is lent the other is
    /// not.
    pub parent: Option<String>,
}

/// Cards lent to one container, from `start` until `end` (Unix ms).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub key: GpuKey,
    pub group: String,
    pub endpoint: String,
    pub cards: Vec<String>,
    pub start: i64,
    pub end: i64,
    /// The end its holder was last warned of (none yet).
    pub told_end: Option<i64>,
}

impl Grant {
    /// Other groups' bookings that claim one of its cards at some time in
    /// `[from, to)`.
    fn foreign_bookings<'a>(
        &'a self,
        state: &'a State,
        from: i64,
        to: i64,
    ) -> impl Iterator<Item = &'a Booking> {
        state.bookings.iter().filter(move |b| {
            b.group != self.group
                && self
                    .cards
                    .iter()
                    .any(|c| b.claims(&self.endpoint, c, from, to))
        })
    }
}

/// A container waiting for cards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub key: GpuKey,
    /// The group whose quota and share it counts against.
    pub group: String,
    pub endpoint: String,
    pub count: u32,
    /// Cards of this model only; any model when none.
    pub model: Option<String>,
    /// How long a grant should last, ms (already within the group's
    /// maximum).
    pub length: i64,
    /// When it began waiting (Unix ms).
    pub since: i64,
}

/// Cards of one host reserved for a group from `start` to `end`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    pub id: i64,
    pub group: String,
    pub endpoint: String,
    pub cards: Vec<String>,
    pub start: i64,
    pub end: i64,
}

impl Booking {
    /// Whether it holds `card` of `endpoint` at some time in `[from, to)`.
    fn claims(&self, endpoint: &str, card: &str, from: i64, to: i64) -> bool {
        self.endpoint == endpoint
            && self.cards.iter().any(|c| c == card)
            && self.start < to
            && from < self.end
    }
}

/// Everything lending decides from (the store's copy).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub cards: Vec<Card>,
    pub grants: Vec<Grant>,
    pub queue: Vec<Request>,
    pub bookings: Vec<Booking>,
}

/// What the site allows.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// Hosts where two containers may hold one card.
    pub sharing: BTreeSet<String>,
    /// Cards a group's containers may hold at once.
    pub caps: BTreeMap<String, u32>,
    /// How long before a grant ends its holder is warned, ms.
    pub warn_before: i64,
    /// The shortest grant worth giving ahead of another group's booking,
    /// ms (a request shorter than this may still take a card for all of
    /// its length).
    pub shortest: i64,
    /// A grant whose cards stay idle this long ends (ms); never when none
    /// (no metrics source).
    pub idle_after: Option<i64>,
}

/// Recent GPU-hours per group and per account, for fair share.
#[derive(Clone, Debug, Default)]
pub struct Shares {
    pub group: BTreeMap<String, f64>,
    pub account: BTreeMap<String, f64>,
}

/// Why a grant ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ended {
    /// Its time was up.
    Time,
    /// A booking of another group claimed its cards.
    Booked,
    /// Its cards stayed idle for `idle_after`.
    Idle,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ended::Time => "its time is up",
            Ended::Booked => "its cards are booked",
            Ended::Idle => "its cards stayed idle",
        })
    }
}

/// What the caller does, in this order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Change {
    /// The grant is over: stop the container (volumes kept), free its cards.
    End { key: GpuKey, why: Ended },
    /// The grant now ends at `end`, before booking `booking`: store it and
    /// tell the holder.
    Shorten { key: GpuKey, end: i64, booking: i64 },
    /// Tell the holder its grant ends at `end` (then record `told_end`).
    Warn { key: GpuKey, end: i64, why: Ended },
    /// A waiting container is lent cards: store the grant, drop the
    /// request, start the container.
    Start(Grant),
}

/// When `g` ends at the latest and why, given the bookings and, where
/// its cards are idle, since when; and the booking that cuts it short, if
/// one does (where it starts, its id).
fn effective_end(
    g: &Grant,
    state: &State,
    idle_since: Option<i64>,
    rules: &Rules,
) -> (i64, Ended, Option<(i64, i64)>) {
    // A grant already cut to a booking's start ends for it.
    let booking = g
        .foreign_bookings(state, g.start, g.end.saturating_add(1))
        .map(|b| (b.start.max(g.start), b.id))
        .min();
    let mut end = (g.end, Ended::Time);
    if let Some((cut, _)) = booking
        && cut <= end.0
    {
        end = (cut, Ended::Booked);
    }
    if let (Some(since), Some(after)) = (idle_since, rules.idle_after)
        && since.saturating_add(after) < end.0
    {
        end = (since.saturating_add(after), Ended::Idle);
    }
    (end.0, end.1, booking)
}

/// One lending tick at `now` (Unix ms): grants that end or are shortened,
/// warnings due, and the waiting containers that can start. `idle` says
/// since when each grant's cards have been idle (only grants that are).
pub fn step(
    now: i64,
    state: &State,
    shares: &Shares,
    idle: &BTreeMap<GpuKey, i64>,
    rules: &Rules,
) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut live = Vec::new();
    for g in &state.grants {
        let (end, why, booking) = effective_end(g, state, idle.get(&g.key).copied(), rules);
        if end <= now {
            changes.push(Change::End {
                key: g.key.clone(),
                why,
            });
            continue;
        }
        // Shortened even when idleness would end it sooner: the stored end
        // must never run into the booking, whatever the cards do next.
        if let Some((cut, booking)) = booking
            && cut < g.end
        {
            changes.push(Change::Shorten {
                key: g.key.clone(),
                end: cut,
                booking,
            });
        }
        if end - now <= rules.warn_before && g.told_end != Some(end) {
            changes.push(Change::Warn {
                key: g.key.clone(),
                end,
                why,
            });
        }
        live.push(Grant { end, ..g.clone() });
    }
    let mut holders = Holders::of(&live);
    let mut shares = shares.clone();
    let mut waiting: Vec<&Request> = state.queue.iter().collect();
    // The queue's order changes as grants add to shares: the line is
    // walked again, from its head, after every start.
    loop {
        let order = queue::order(&waiting, &shares);
        let mut blocked: BTreeSet<String> = BTreeSet::new();
        let mut started = None;
        for (i, r) in order.iter().enumerate() {
            if rules
                .caps
                .get(&r.group)
                .is_some_and(|cap| holders.of_group(&r.group) + r.count > *cap)
            {
                continue;
            }
            let own_only = blocked.contains(&r.endpoint);
            match pick(now, state, &holders, r, rules, own_only) {
                Some((cards, end)) => {
                    started = Some((i, cards, end));
                    break;
                }
                None if !own_only => {
                    blocked.insert(r.endpoint.clone());
                }
                None => {}
            }
        }
        let Some((i, cards, end)) = started else {
            break;
        };
        let r = order[i];
        let grant = Grant {
            key: r.key.clone(),
            group: r.group.clone(),
            endpoint: r.endpoint.clone(),
            cards,
            start: now,
            end,
            told_end: None,
        };
        holders.add(&grant);
        let hours = f64::from(r.count) * (end - now) as f64 / 3_600_000.0;
        *shares.group.entry(r.group.clone()).or_default() += hours;
        *shares.account.entry(r.key.account.clone()).or_default() += hours;
        waiting.retain(|w| w.key != r.key);
        changes.push(Change::Start(grant));
    }
    changes
}

/// Who holds what, as a tick goes.
struct Holders {
    cards: BTreeMap<(String, String), usize>,
    groups: BTreeMap<String, u32>,
}

impl Holders {
    fn of(grants: &[Grant]) -> Holders {
        let mut h = Holders {
            cards: BTreeMap::new(),
            groups: BTreeMap::new(),
        };
        grants.iter().for_each(|g| h.add(g));
        h
    }

    fn add(&mut self, g: &Grant) {
        for c in &g.cards {
            *self
                .cards
                .entry((g.endpoint.clone(), c.clone()))
                .or_default() += 1;
        }
        *self.groups.entry(g.group.clone()).or_default() += g.cards.len() as u32;
    }

    fn on(&self, endpoint: &str, card: &str) -> usize {
        self.cards
            .get(&(endpoint.to_string(), card.to_string()))
            .copied()
            .unwrap_or(0)
    }

    fn of_group(&self, group: &str) -> u32 {
        self.groups.get(group).copied().unwrap_or(0)
    }
}

/// The cards `r` would be lent now and until when, if enough fit:
/// free (or shareable), of its model, not booked now for another group,
/// and free of other groups' bookings for long enough. With `own_only`,
/// only cards booked now for its own group.
fn pick(
    now: i64,
    state: &State,
    holders: &Holders,
    r: &Request,
    rules: &Rules,
    own_only: bool,
) -> Option<(Vec<String>, i64)> {
    let sharing = rules.sharing.contains(&r.endpoint);
    let wanted_until = now.saturating_add(r.length);
    let mut fitting: Vec<(bool, usize, std::cmp::Reverse<i64>, &str)> = state
        .cards
        .iter()
        .filter(|c| c.endpoint == r.endpoint)
        .filter(|c| r.model.as_ref().is_none_or(|m| *m == c.model))
        .filter_map(|c| {
            let held = holders.on(&c.endpoint, &c.id);
            if held > 0 && !sharing {
                return None;
            }
            // A MIG instance and its card exclude each other, shared or not.
            let related = state.cards.iter().filter(|o| {
                o.endpoint == c.endpoint
                    && (c.parent.as_ref() == Some(&o.id) || o.parent.as_ref() == Some(&c.id))
            });
            if related.clone().any(|o| holders.on(&o.endpoint, &o.id) > 0) {
                return None;
            }
            let own_now = state.bookings.iter().any(|b| {
                b.group == r.group && b.claims(&c.endpoint, &c.id, now, now.saturating_add(1))
            });
            if own_only && !own_now {
                return None;
            }
            // Until another group's booking claims it.
            let until = state
                .bookings
                .iter()
                .filter(|b| b.group != r.group && b.claims(&c.endpoint, &c.id, now, wanted_until))
                .map(|b| b.start)
                .min()
                .unwrap_or(wanted_until);
            if until <= now || until - now < rules.shortest.min(r.length) {
                return None;
            }
            Some((!own_now, held, std::cmp::Reverse(until), c.id.as_str()))
        })
        .collect();
    if fitting.len() < r.count as usize || r.count == 0 {
        return None;
    }
    // Own booked cards first, then the least shared, then the longest
    // free; never a card with one of its MIG instances.
    fitting.sort();
    let parent_of = |id: &str| {
        state
            .cards
            .iter()
            .find(|c| c.endpoint == r.endpoint && c.id == id)
            .and_then(|c| c.parent.as_deref())
    };
    let mut chosen: Vec<(bool, usize, std::cmp::Reverse<i64>, &str)> = Vec::new();
    for f in fitting {
        let clashes = chosen
            .iter()
            .any(|c| parent_of(f.3) == Some(c.3) || parent_of(c.3) == Some(f.3));
        if !clashes {
            chosen.push(f);
        }
        if chosen.len() == r.count as usize {
            break;
        }
    }
    if chosen.len() < r.count as usize {
        return None;
    }
    let end = chosen
        .iter()
        .map(|(_, _, until, _)| until.0)
        .min()
        .unwrap_or(wanted_until);
    let mut cards: Vec<String> = chosen.iter().map(|(.., id)| id.to_string()).collect();
    cards.sort();
    Some((cards, end))
}

/// Why an extension was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExtendRefused {
    #[error("no grant for this container")]
    NoGrant,
    #[error("{0} container(s) wait for cards on this host")]
    Waiting(usize),
    #[error("its cards are booked by group `{group}` from then")]
    Booked { group: String },
}

/// A grant's new end if its holder asks for `length` more from now (at
/// most `max` from now): only while nobody waits on its host, and never
/// into another group's booking.
pub fn extend(
    now: i64,
    state: &State,
    key: &GpuKey,
    length: i64,
    max: i64,
) -> Result<i64, ExtendRefused> {
    let g = state
        .grants
        .iter()
        .find(|g| &g.key == key)
        .ok_or(ExtendRefused::NoGrant)?;
    let waiting = state
        .queue
        .iter()
        .filter(|r| r.endpoint == g.endpoint)
        .count();
    if waiting > 0 {
        return Err(ExtendRefused::Waiting(waiting));
    }
    let wanted = now.saturating_add(length.min(max)).max(g.end);
    let claimed = g
        .foreign_bookings(state, g.end, wanted)
        .min_by_key(|b| b.start);
    match claimed {
        Some(b) if b.start <= g.end => Err(ExtendRefused::Booked {
            group: b.group.clone(),
        }),
        Some(b) => Ok(b.start),
        None => Ok(wanted),
    }
}

#[cfg(test)]
mod tests;
