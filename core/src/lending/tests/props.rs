//! Lending's invariants over random sequences of asks, bookings,
//! departures, idle cards and time passing: checked after every tick.

use super::*;

/// One thing that may happen between two ticks.
#[derive(Clone, Debug)]
enum Event {
    Ask {
        who: u8,
        group: u8,
        count: u32,
        hours: i64,
    },
    Book {
        group: u8,
        count: u32,
        in_hours: i64,
        hours: i64,
    },
    Leave {
        who: u8,
    },
    Idle {
        who: u8,
    },
    Later {
        minutes: i64,
    },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (0u8..8, 0u8..3, 1u32..3, 1i64..6).prop_map(|(who, group, count, hours)| Event::Ask {
            who,
            group,
            count,
            hours
        }),
        (0u8..3, 1u32..3, 0i64..5, 1i64..4).prop_map(|(group, count, in_hours, hours)| {
            Event::Book {
                group,
                count,
                in_hours,
                hours,
            }
        }),
        (0u8..8).prop_map(|who| Event::Leave { who }),
        (0u8..8).prop_map(|who| Event::Idle { who }),
        (1i64..120).prop_map(|minutes| Event::Later { minutes }),
    ]
}

/// What must hold of the state after every tick.
fn check(now: i64, s: &State, r: &Rules) -> Result<(), TestCaseError> {
    let mut holders: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut per_group: BTreeMap<&str, u32> = BTreeMap::new();
    for g in &s.grants {
        prop_assert!(g.end > now, "a grant outlived its end: {g:?}");
        for c in &g.cards {
            *holders.entry((&g.endpoint, c)).or_default() += 1;
        }
        *per_group.entry(&g.group).or_default() += g.cards.len() as u32;
        for b in &s.bookings {
            prop_assert!(
                b.group == g.group
                    || !g
                        .cards
                        .iter()
                        .any(|c| b.claims(&g.endpoint, c, g.start, g.end)),
                "grant {g:?} runs into booking {b:?}"
            );
        }
        prop_assert!(
            !s.queue.iter().any(|q| q.key == g.key),
            "{:?} both waits and holds",
            g.key
        );
    }
    prop_assert!(
        holders.values().all(|n| *n <= 1),
        "a card with two holders: {holders:?}"
    );
    for c in &s.cards {
        if let Some(parent) = &c.parent {
            prop_assert!(
                !(holders.contains_key(&(c.endpoint.as_str(), c.id.as_str()))
                    && holders.contains_key(&(c.endpoint.as_str(), parent.as_str()))),
                "{} and its card {parent} are both lent",
                c.id
            );
        }
    }
    for (group, cap) in &r.caps {
        prop_assert!(per_group.get(group.as_str()).copied().unwrap_or(0) <= *cap);
    }
    for (i, a) in s.bookings.iter().enumerate() {
        for b in &s.bookings[i + 1..] {
            prop_assert!(
                !a.cards
                    .iter()
                    .any(|c| b.claims(&a.endpoint, c, a.start, a.end)),
                "two bookings on one card at once: {a:?} {b:?}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any sequence of asks, bookings, departures, idleness and time:
    /// no card has two holders, no booking is run into, caps hold, and a
    /// tick repeated (a crash before the next, then a restart from the
    /// store) decides nothing new.
    #[test]
    fn lending_keeps_its_rules_whatever_happens(events in proptest::collection::vec(event(), 1..60)) {
        let groups = ["ml", "vision", "course"];
        let rules = Rules {
            caps: BTreeMap::from([("vision".into(), 2)]),
            idle_after: Some(HOUR),
            ..rules()
        };
        let mut s = State {
            cards: [
                cards("gpu1", "A100", 3),
                cards("gpu2", "T4", 2),
                // A card split into two MIG instances.
                vec![
                    Card { endpoint: "gpu2".into(), id: "GPU-x".into(), model: "T4".into(), parent: None },
                    Card { endpoint: "gpu2".into(), id: "MIG-x1".into(), model: "T4".into(), parent: Some("GPU-x".into()) },
                    Card { endpoint: "gpu2".into(), id: "MIG-x2".into(), model: "T4".into(), parent: Some("GPU-x".into()) },
                ],
            ]
            .concat(),
            ..State::default()
        };
        let mut now = 0;
        let mut idle: BTreeMap<GpuKey, i64> = BTreeMap::new();
        let mut next_booking = 1;
        let mut shares = Shares::default();
        for e in events {
            match e {
                Event::Ask { who, group, count, hours } => {
                    let k = key(&format!("s{who}"));
                    if !s.queue.iter().any(|r| r.key == k) && !s.grants.iter().any(|g| g.key == k) {
                        s.queue.push(Request {
                            endpoint: if who % 2 == 0 { "gpu1" } else { "gpu2" }.into(),
                            length: hours * HOUR,
                            ..ask(&k.account, groups[group as usize], count, now)
                        });
                    }
                }
                Event::Book { group, count, in_hours, hours } => {
                    let start = now + in_hours * HOUR;
                    if let Ok(b) = book(now, &s, &Ask {
                        group: groups[group as usize].into(),
                        endpoint: None,
                        model: None,
                        count,
                        start,
                        end: start + hours * HOUR,
                    }) {
                        s.bookings.push(Booking { id: next_booking, ..b });
                        next_booking += 1;
                    }
                }
                Event::Leave { who } => {
                    let k = key(&format!("s{who}"));
                    s.queue.retain(|r| r.key != k);
                    s.grants.retain(|g| g.key != k);
                }
                Event::Idle { who } => {
                    idle.entry(key(&format!("s{who}"))).or_insert(now);
                }
                Event::Later { minutes } => now += minutes * MIN,
            }
            idle.retain(|k, _| s.grants.iter().any(|g| &g.key == k));
            let ch = step(now, &s, &shares, &idle, &rules);
            for c in &ch {
                if let Change::Start(g) = c {
                    *shares.group.entry(g.group.clone()).or_default() +=
                        g.cards.len() as f64 * (g.end - g.start) as f64 / HOUR as f64;
                }
            }
            apply(&mut s, &ch);
            check(now, &s, &rules)?;
            // Restarted from what the store holds: the same tick again
            // starts and ends nothing.
            let stored: State = serde_json::from_str(&serde_json::to_string(&s).expect("json")).expect("json");
            let again = step(now, &stored, &shares, &idle, &rules);
            prop_assert!(
                again.is_empty(),
                "a repeated tick changed something: {again:?}"
            );
        }
    }

    /// With one card and single-card requests, the card always goes to
    /// the first in the documented order.
    #[test]
    fn the_queue_is_served_in_its_documented_order(
        used in proptest::collection::vec((0u8..3, 0u8..4, 0.0f64..20.0), 1..12),
    ) {
        let groups = ["ml", "vision", "course"];
        let mut shares = Shares::default();
        let mut queue = Vec::new();
        for (i, (g, a, h)) in used.iter().enumerate() {
            let account = format!("s{a}-{i}");
            *shares.group.entry(groups[*g as usize].into()).or_default() += h;
            *shares.account.entry(account.clone()).or_default() += h / 2.0;
            queue.push(ask(&account, groups[*g as usize], 1, i as i64));
        }
        let s = State { cards: cards("gpu1", "A100", 1), queue, ..State::default() };
        let ch = step(0, &s, &shares, &BTreeMap::new(), &rules());
        let first = started(&ch);
        prop_assert_eq!(first.len(), 1);
        let refs: Vec<&Request> = s.queue.iter().collect();
        let want = queue::order(&refs, &shares)[0].key.account.clone();
        prop_assert_eq!(&first[0].0, &want);
        // And the documented order: no one waiting has a smaller
        // (group share, account share, since).
        let me = s.queue.iter().find(|r| r.key.account == want).expect("served one waits");
        let share = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
        for r in &s.queue {
            let theirs = (share(&shares.group, &r.group), share(&shares.account, &r.key.account), r.since);
            let mine = (share(&shares.group, &me.group), share(&shares.account, &me.key.account), me.since);
            prop_assert!(theirs >= mine, "{r:?} came before {me:?}");
        }
    }
}
