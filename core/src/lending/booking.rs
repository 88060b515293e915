//! Bookings (pure): which cards an admin's booking of N cards of a model
//! for a group over a window takes. A booking names its cards when it is
//! made, so whether it is honoured never depends on a later choice: no
//! two bookings share a card at the same time, and grants of other groups
//! on its cards are shortened to end before it ([`super::step`]).

use super::{Booking, State};

/// What an admin asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask {
    pub group: String,
    /// A host, or any host with enough cards.
    pub endpoint: Option<String>,
    pub model: Option<String>,
    pub count: u32,
    pub start: i64,
    pub end: i64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BookRefused {
    #[error("a booking must end after it starts, and after now")]
    Window,
    #[error("a booking takes at least one card")]
    NoCards,
    #[error(
        "no host has {wanted} {model} card(s) unbooked over that window (at most {most} on one host)"
    )]
    NotEnough {
        wanted: u32,
        model: String,
        most: usize,
    },
}

/// The booking `ask` makes (its id left 0 for the store to give): on the
/// host with enough fitting cards unbooked over the window where the
/// fewest of them are held by grants it would shorten (the first host by
/// name on a tie), those cards.
pub fn book(now: i64, state: &State, ask: &Ask) -> Result<Booking, BookRefused> {
    if ask.end <= ask.start || ask.end <= now {
        return Err(BookRefused::Window);
    }
    if ask.count == 0 {
        return Err(BookRefused::NoCards);
    }
    let mut hosts: Vec<&str> = state.cards.iter().map(|c| c.endpoint.as_str()).collect();
    hosts.sort();
    hosts.dedup();
    let mut best: Option<(usize, &str, Vec<String>)> = None;
    let mut most = 0;
    for host in hosts {
        if ask.endpoint.as_deref().is_some_and(|e| e != host) {
            continue;
        }
        let mut free: Vec<(bool, &str)> = state
            .cards
            .iter()
            .filter(|c| c.endpoint == host)
            .filter(|c| ask.model.as_ref().is_none_or(|m| *m == c.model))
            .filter(|c| {
                !state
                    .bookings
                    .iter()
                    .any(|b| b.claims(host, &c.id, ask.start, ask.end))
            })
            .map(|c| {
                let shortens = state.grants.iter().any(|g| {
                    g.endpoint == host
                        && g.group != ask.group
                        && g.end > ask.start
                        && g.cards.contains(&c.id)
                });
                (shortens, c.id.as_str())
            })
            .collect();
        most = most.max(free.len());
        if free.len() < ask.count as usize {
            continue;
        }
        free.sort();
        let chosen = &free[..ask.count as usize];
        let cost = chosen.iter().filter(|(s, _)| *s).count();
        if best.as_ref().is_none_or(|(c, ..)| cost < *c) {
            best = Some((
                cost,
                host,
                chosen.iter().map(|(_, id)| id.to_string()).collect(),
            ));
        }
    }
    let Some((_, host, mut cards)) = best else {
        return Err(BookRefused::NotEnough {
            wanted: ask.count,
            model: ask.model.clone().unwrap_or_else(|| "any".into()),
            most,
        });
    };
    cards.sort();
    Ok(Booking {
        id: 0,
        group: ask.group.clone(),
        endpoint: host.to_string(),
        cards,
        start: ask.start,
        end: ask.end,
    })
}
