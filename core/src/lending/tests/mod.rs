//! The lending rules by example: one scenario per rule (fair share,
//! bookings, idle cards, MIG instances, shared hosts); `props` checks the
//! invariants over random event sequences.

use super::booking::{Ask, BookRefused, book};
use super::*;
use proptest::prelude::*;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn key(account: &str) -> GpuKey {
    GpuKey {
        account: account.into(),
        container: "train".into(),
    }
}

fn cards(endpoint: &str, model: &str, n: usize) -> Vec<Card> {
    (0..n)
        .map(|i| Card {
            endpoint: endpoint.into(),
            id: i.to_string(),
            model: model.into(),
            parent: None,
        })
        .collect()
}

fn ask(account: &str, group: &str, count: u32, since: i64) -> Request {
    Request {
        key: key(account),
        group: group.into(),
        endpoint: "gpu1".into(),
        count,
        model: None,
        length: 4 * HOUR,
        since,
    }
}

fn rules() -> Rules {
    Rules {
        warn_before: 15 * MIN,
        shortest: 30 * MIN,
        ..Rules::default()
    }
}

/// Applies `changes` as the reconciler does (one transaction).
fn apply(state: &mut State, changes: &[Change]) {
    for c in changes {
        match c {
            Change::End { key, .. } => state.grants.retain(|g| &g.key != key),
            Change::Shorten { key, end, .. } => {
                if let Some(g) = state.grants.iter_mut().find(|g| &g.key == key) {
                    g.end = *end;
                }
            }
            Change::Warn { key, end, .. } => {
                if let Some(g) = state.grants.iter_mut().find(|g| &g.key == key) {
                    g.told_end = Some(*end);
                }
            }
            Change::Start(g) => {
                state.queue.retain(|r| r.key != g.key);
                state.grants.push(g.clone());
            }
        }
    }
}

/// A tick with no shares and nothing idle, applied.
fn settle(s: &mut State, now: i64, r: &Rules) {
    let ch = step(now, s, &Shares::default(), &BTreeMap::new(), r);
    apply(s, &ch);
}

fn started(changes: &[Change]) -> Vec<(String, Vec<String>, i64)> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Start(g) => Some((g.key.account.clone(), g.cards.clone(), g.end)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_free_card_is_lent_for_the_asked_time_and_taken_back_at_its_end() {
    let mut s = State {
        cards: cards("gpu1", "A100", 2),
        queue: vec![ask("alice", "students", 1, 0)],
        ..State::default()
    };
    let ch = step(0, &s, &Shares::default(), &BTreeMap::new(), &rules());
    assert_eq!(started(&ch), [("alice".into(), vec!["0".into()], 4 * HOUR)]);
    apply(&mut s, &ch);
    // Nothing more happens until the warning.
    assert!(step(HOUR, &s, &Shares::default(), &BTreeMap::new(), &rules()).is_empty());
    let ch = step(
        4 * HOUR - 10 * MIN,
        &s,
        &Shares::default(),
        &BTreeMap::new(),
        &rules(),
    );
    assert_eq!(
        ch,
        [Change::Warn {
            key: key("alice"),
            end: 4 * HOUR,
            why: Ended::Time
        }]
    );
    apply(&mut s, &ch);
    // Warned once.
    assert!(
        step(
            4 * HOUR - 5 * MIN,
            &s,
            &Shares::default(),
            &BTreeMap::new(),
            &rules()
        )
        .is_empty()
    );
    let ch = step(4 * HOUR, &s, &Shares::default(), &BTreeMap::new(), &rules());
    assert_eq!(
        ch,
        [Change::End {
            key: key("alice"),
            why: Ended::Time
        }]
    );
}

#[test]
fn when_every_card_is_taken_the_fair_share_order_decides_who_is_next() {
    let mut s = State {
        cards: cards("gpu1", "A100", 1),
        queue: vec![ask("alice", "ml", 1, 0)],
        ..State::default()
    };
    let ch = step(0, &s, &Shares::default(), &BTreeMap::new(), &rules());
    apply(&mut s, &ch);
    // bob (group ml, which used 10 h) asked first; carol (vision, 2 h)
    // and dave (vision, 2 h; but dave himself used 1 h) after.
    s.queue = vec![
        ask("bob", "ml", 1, 10),
        ask("carol", "vision", 1, 20),
        ask("dave", "vision", 1, 15),
    ];
    let shares = Shares {
        group: BTreeMap::from([("ml".into(), 10.0), ("vision".into(), 2.0)]),
        account: BTreeMap::from([("dave".into(), 1.0)]),
    };
    let refs: Vec<&Request> = s.queue.iter().collect();
    let names: Vec<&str> = queue::order(&refs, &shares)
        .iter()
        .map(|r| r.key.account.as_str())
        .collect();
    assert_eq!(names, ["carol", "dave", "bob"]);
    let places = queue::places(HOUR, &s, &shares);
    assert_eq!(
        places[&key("carol")],
        queue::Place {
            position: 1,
            estimate: Some(4 * HOUR)
        }
    );
    assert_eq!(places[&key("bob")].estimate, Some(12 * HOUR));
    // Nobody starts while alice holds the card; carol does when it frees.
    assert!(started(&step(HOUR, &s, &shares, &BTreeMap::new(), &rules())).is_empty());
    let ch = step(4 * HOUR, &s, &shares, &BTreeMap::new(), &rules());
    assert_eq!(started(&ch), [("carol".into(), vec!["0".into()], 8 * HOUR)]);
}

#[test]
fn a_request_for_several_cards_is_not_overtaken_on_its_host() {
    let mut s = State {
        cards: cards("gpu1", "A100", 2),
        queue: vec![ask("alice", "ml", 1, 0)],
        ..State::default()
    };
    settle(&mut s, 0, &rules());
    // One card is free: bob wants two and is first; carol, one, waits
    // behind him rather than take the free card.
    s.queue = vec![ask("bob", "ml", 2, 1), ask("carol", "ml", 1, 2)];
    assert!(
        started(&step(
            MIN,
            &s,
            &Shares::default(),
            &BTreeMap::new(),
            &rules()
        ))
        .is_empty()
    );
    // A group cap holds bob back: then carol is served.
    let capped = Rules {
        caps: BTreeMap::from([("ml".into(), 2)]),
        ..rules()
    };
    let ch = step(MIN, &s, &Shares::default(), &BTreeMap::new(), &capped);
    assert_eq!(started(&ch).len(), 1, "{ch:?}");
    assert_eq!(started(&ch)[0].0, "carol");
}

#[test]
fn a_booking_takes_named_cards_and_shortens_other_groups_grants() {
    let mut s = State {
        cards: cards("gpu1", "A100", 2),
        queue: vec![ask("alice", "students", 2, 0)],
        ..State::default()
    };
    settle(&mut s, 0, &rules());
    let b = book(
        MIN,
        &s,
        &Ask {
            group: "course".into(),
            endpoint: None,
            model: Some("A100".into()),
            count: 1,
            start: 2 * HOUR,
            end: 3 * HOUR,
        },
    )
    .expect("fits");
    assert_eq!((b.endpoint.as_str(), b.cards.len()), ("gpu1", 1));
    s.bookings.push(Booking { id: 7, ..b });
    // alice's grant is cut to the booking's start, and she is told.
    let ch = step(2 * MIN, &s, &Shares::default(), &BTreeMap::new(), &rules());
    assert_eq!(
        ch,
        [Change::Shorten {
            key: key("alice"),
            end: 2 * HOUR,
            booking: 7
        }]
    );
    apply(&mut s, &ch);
    let ch = step(2 * HOUR, &s, &Shares::default(), &BTreeMap::new(), &rules());
    assert!(
        matches!(
            ch[0],
            Change::End {
                why: Ended::Booked,
                ..
            } | Change::End {
                why: Ended::Time,
                ..
            }
        ),
        "{ch:?}"
    );
    apply(&mut s, &ch);
    // During the booking, a student waits for the free card only: the
    // booked one is the course's.
    s.queue = vec![ask("bob", "students", 2, 3), ask("teacher", "course", 1, 4)];
    let ch = step(2 * HOUR, &s, &Shares::default(), &BTreeMap::new(), &rules());
    assert_eq!(started(&ch).len(), 1, "{ch:?}");
    assert_eq!(
        started(&ch)[0].0,
        "teacher",
        "served from the course's card despite bob ahead"
    );
    // A second booking over the same window finds one card left; a third none.
    s.bookings.push(Booking {
        id: 8,
        ..book(
            2 * HOUR,
            &s,
            &Ask {
                group: "other".into(),
                endpoint: None,
                model: None,
                count: 1,
                start: 2 * HOUR,
                end: 3 * HOUR,
            },
        )
        .expect("one left")
    });
    assert_eq!(
        book(
            2 * HOUR,
            &s,
            &Ask {
                group: "third".into(),
                endpoint: None,
                model: None,
                count: 1,
                start: 150 * MIN,
                end: 4 * HOUR,
            }
        ),
        Err(BookRefused::NotEnough {
            wanted: 1,
            model: "any".into(),
            most: 0
        })
    );
}

#[test]
fn a_grant_is_only_given_where_a_booking_leaves_enough_time() {
    let s = State {
        cards: cards("gpu1", "A100", 1),
        queue: vec![ask("alice", "students", 1, 0)],
        bookings: vec![Booking {
            id: 1,
            group: "course".into(),
            endpoint: "gpu1".into(),
            cards: vec!["0".into()],
            start: 20 * MIN,
            end: HOUR,
        }],
        ..State::default()
    };
    // 20 minutes before the booking: under the 30 minutes worth giving.
    assert!(started(&step(0, &s, &Shares::default(), &BTreeMap::new(), &rules())).is_empty());
    // An hour before it: a grant cut to the booking's start.
    let early = State {
        bookings: vec![Booking {
            start: 2 * HOUR,
            end: 3 * HOUR,
            ..s.bookings[0].clone()
        }],
        ..s
    };
    let ch = step(HOUR, &early, &Shares::default(), &BTreeMap::new(), &rules());
    assert_eq!(started(&ch), [("alice".into(), vec!["0".into()], 2 * HOUR)]);
}

#[test]
fn idle_cards_end_a_grant_early_after_a_warning() {
    let mut s = State {
        cards: cards("gpu1", "A100", 1),
        queue: vec![ask("alice", "students", 1, 0)],
        ..State::default()
    };
    let r = Rules {
        idle_after: Some(HOUR),
        ..rules()
    };
    settle(&mut s, 0, &r);
    let idle = BTreeMap::from([(key("alice"), 30 * MIN)]);
    let ch = step(80 * MIN, &s, &Shares::default(), &idle, &r);
    assert_eq!(
        ch,
        [Change::Warn {
            key: key("alice"),
            end: 90 * MIN,
            why: Ended::Idle
        }]
    );
    apply(&mut s, &ch);
    let ch = step(90 * MIN, &s, &Shares::default(), &idle, &r);
    assert_eq!(
        ch,
        [Change::End {
            key: key("alice"),
            why: Ended::Idle
        }]
    );
    // Busy again before then: nothing ends.
    assert!(step(90 * MIN, &s, &Shares::default(), &BTreeMap::new(), &r).is_empty());
}

#[test]
fn an_extension_is_refused_while_someone_waits_or_a_booking_follows() {
    let mut s = State {
        cards: cards("gpu1", "A100", 1),
        queue: vec![ask("alice", "students", 1, 0)],
        ..State::default()
    };
    settle(&mut s, 0, &rules());
    assert_eq!(
        extend(3 * HOUR, &s, &key("alice"), 4 * HOUR, 8 * HOUR),
        Ok(7 * HOUR)
    );
    assert_eq!(
        extend(3 * HOUR, &s, &key("alice"), 12 * HOUR, 8 * HOUR),
        Ok(11 * HOUR)
    );
    assert_eq!(
        extend(0, &s, &key("bob"), HOUR, HOUR),
        Err(ExtendRefused::NoGrant)
    );
    s.bookings.push(Booking {
        id: 1,
        group: "course".into(),
        endpoint: "gpu1".into(),
        cards: vec!["0".into()],
        start: 5 * HOUR,
        end: 6 * HOUR,
    });
    assert_eq!(
        extend(3 * HOUR, &s, &key("alice"), 4 * HOUR, 8 * HOUR),
        Ok(5 * HOUR)
    );
    s.queue.push(ask("bob", "students", 1, 1));
    assert_eq!(
        extend(3 * HOUR, &s, &key("alice"), 4 * HOUR, 8 * HOUR),
        Err(ExtendRefused::Waiting(1))
    );
}

#[test]
fn a_card_and_its_mig_instances_are_never_lent_at_once() {
    let card = |id: &str, parent: Option<&str>| Card {
        endpoint: "gpu1".into(),
        id: id.into(),
        model: if parent.is_some() { "A100 1g" } else { "A100" }.into(),
        parent: parent.map(str::to_string),
    };
    let mut s = State {
        cards: vec![
            card("GPU-a", None),
            card("MIG-1", Some("GPU-a")),
            card("MIG-2", Some("GPU-a")),
        ],
        queue: vec![Request {
            model: Some("A100 1g".into()),
            ..ask("alice", "g", 1, 0)
        }],
        ..State::default()
    };
    settle(&mut s, 0, &rules());
    assert_eq!(s.grants[0].cards, ["MIG-1"]);
    // The whole card waits while an instance is lent; the other instance
    // does not.
    s.queue = vec![
        Request {
            model: Some("A100".into()),
            ..ask("bob", "g", 1, 1)
        },
        Request {
            model: Some("A100 1g".into()),
            endpoint: "gpu1".into(),
            ..ask("carol", "g", 1, 2)
        },
    ];
    let ch = step(MIN, &s, &Shares::default(), &BTreeMap::new(), &rules());
    assert!(started(&ch).is_empty(), "bob is first and blocks: {ch:?}");
    s.queue.remove(0);
    let ch = step(MIN, &s, &Shares::default(), &BTreeMap::new(), &rules());
    assert_eq!(
        started(&ch),
        [("carol".into(), vec!["MIG-2".into()], MIN + 4 * HOUR)]
    );
}

#[test]
fn shared_hosts_lend_the_least_used_card_twice() {
    let mut s = State {
        cards: cards("gpu1", "A100", 2),
        queue: vec![
            ask("a", "g", 1, 0),
            ask("b", "g", 1, 1),
            ask("c", "g", 1, 2),
        ],
        ..State::default()
    };
    let r = Rules {
        sharing: BTreeSet::from(["gpu1".to_string()]),
        ..rules()
    };
    let ch = step(0, &s, &Shares::default(), &BTreeMap::new(), &r);
    assert_eq!(started(&ch).len(), 3);
    apply(&mut s, &ch);
    let mut per_card: BTreeMap<String, usize> = BTreeMap::new();
    for g in &s.grants {
        *per_card.entry(g.cards[0].clone()).or_default() += 1;
    }
    assert_eq!(per_card.values().copied().collect::<Vec<_>>(), [2, 1]);
}

mod props;
