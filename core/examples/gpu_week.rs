//! A simulated week of GPU lending (`bench/gpu.sh`): 200 accounts in four
//! groups compete for 16 cards on two hosts, the clock injected, every
//! tick the real `berth_core::lending::step`. The same arrivals are played
//! twice: with fair share (the group's and the account's card-hours so
//! far) and first come, first served (no shares). Printed: the cards'
//! utilisation, waits per group (p50, p99) and Jain's fairness index of
//! card-hours per account among those who asked.

use berth_core::desired::GpuKey;
use berth_core::lending::{Card, Change, Request, Rules, Shares, State, step};
use std::collections::BTreeMap;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const WEEK: i64 = 7 * 24 * HOUR;
const TICK: i64 = 5 * MIN;

/// xorshift64*: the same arrivals in both runs, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One ask: who, when, how many cards, for how long.
#[derive(Clone)]
struct Ask {
    account: usize,
    at: i64,
    count: u32,
    length: i64,
}

fn group_of(account: usize) -> &'static str {
    // 20 heavy users in `ml`, then three groups of 60.
    match account {
        0..20 => "ml",
        20..80 => "vision",
        80..140 => "nlp",
        _ => "course",
    }
}

fn arrivals() -> Vec<Ask> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::new();
    for account in 0..200 {
        // Heavy users ask about every 8 hours, others every 3 days: about
        // 1.7 times what the cards can give in a week.
        let every = if account < 20 { 8 * HOUR } else { 72 * HOUR };
        let mut at = rng.below(every as u64) as i64;
        while at < WEEK {
            out.push(Ask {
                account,
                at,
                count: if rng.below(4) == 0 { 2 } else { 1 },
                length: (1 + rng.below(8) as i64) * HOUR,
            });
            at += every / 2 + rng.below(every as u64) as i64;
        }
    }
    out.sort_by_key(|a| a.at);
    out
}

struct Outcome {
    utilisation: f64,
    waits: BTreeMap<&'static str, Vec<i64>>,
    hours: BTreeMap<usize, f64>,
    asked: usize,
    served: usize,
}

fn play(fair: bool, asks: &[Ask]) -> Outcome {
    let cards: Vec<Card> = (0..16)
        .map(|i| Card {
            endpoint: format!("gpu{}", i / 8),
            id: (i % 8).to_string(),
            model: "A100".into(),
            parent: None,
        })
        .collect();
    let rules = Rules {
        warn_before: 15 * MIN,
        shortest: 30 * MIN,
        ..Rules::default()
    };
    let mut state = State {
        cards,
        ..State::default()
    };
    let mut waits: BTreeMap<&'static str, Vec<i64>> = BTreeMap::new();
    let mut hours: BTreeMap<usize, f64> = BTreeMap::new();
    let mut group_hours: BTreeMap<String, f64> = BTreeMap::new();
    let mut lent_ms = 0i64;
    let mut next = 0;
    let mut served = 0;
    let mut now = 0;
    while now < WEEK {
        while next < asks.len() && asks[next].at <= now {
            let a = &asks[next];
            let key = GpuKey {
                account: a.account.to_string(),
                container: format!("job{next}"),
            };
            state.queue.push(Request {
                key,
                group: group_of(a.account).into(),
                // Accounts are placed on a host by name, as Berth does.
                endpoint: format!("gpu{}", a.account % 2),
                count: a.count,
                model: None,
                length: a.length,
                since: a.at,
            });
            next += 1;
        }
        let shares = if fair {
            Shares {
                group: group_hours.clone(),
                account: hours.iter().map(|(a, h)| (a.to_string(), *h)).collect(),
            }
        } else {
            Shares::default()
        };
        for c in step(now, &state, &shares, &BTreeMap::new(), &rules) {
            match c {
                Change::End { key, .. } => state.grants.retain(|g| g.key != key),
                Change::Start(g) => {
                    let account: usize = g.key.account.parse().unwrap_or(0);
                    let r = state.queue.iter().find(|r| r.key == g.key).cloned();
                    if let Some(r) = r {
                        waits
                            .entry(group_of(account))
                            .or_default()
                            .push(now - r.since);
                    }
                    let h = g.cards.len() as f64 * (g.end - g.start) as f64 / HOUR as f64;
                    *hours.entry(account).or_default() += h;
                    *group_hours.entry(g.group.clone()).or_default() += h;
                    lent_ms += g.cards.len() as i64 * (g.end.min(WEEK) - g.start);
                    served += 1;
                    state.queue.retain(|r| r.key != g.key);
                    state.grants.push(g);
                }
                Change::Warn { key, end, .. } => {
                    if let Some(g) = state.grants.iter_mut().find(|g| g.key == key) {
                        g.told_end = Some(end);
                    }
                }
                Change::Shorten { .. } => {}
            }
        }
        now += TICK;
    }
    for a in asks {
        hours.entry(a.account).or_default();
    }
    Outcome {
        utilisation: lent_ms as f64 / (16 * WEEK) as f64,
        waits,
        hours,
        asked: asks.len(),
        served,
    }
}

fn percentile(v: &mut [i64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i] as f64 / HOUR as f64
}

fn jain(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.collect();
    let sum: f64 = v.iter().sum();
    let squares: f64 = v.iter().map(|x| x * x).sum();
    if squares == 0.0 {
        return 1.0;
    }
    sum * sum / (v.len() as f64 * squares)
}

fn main() {
    let asks = arrivals();
    println!(
        "| policy | card utilisation | asks served | Jain's index (card-hours per account) | wait p50 / p99 (h): ml (20 heavy users) | vision | nlp | course | simulated in |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, fair) in [
        ("fair share (Berth)", true),
        ("first come, first served", false),
    ] {
        let started = std::time::Instant::now();
        let mut o = play(fair, &asks);
        let waits: Vec<String> = ["ml", "vision", "nlp", "course"]
            .iter()
            .map(|g| {
                let v = o.waits.entry(g).or_default();
                format!("{:.1} / {:.1}", percentile(v, 0.5), percentile(v, 0.99))
            })
            .collect();
        println!(
            "| {name} | {:.1} % | {} of {} | {:.3} | {} | {:.2} s |",
            100.0 * o.utilisation,
            o.served,
            o.asked,
            jain(o.hours.values().copied()),
            waits.join(" | "),
            started.elapsed().as_secs_f64()
        );
    }
}
