//! What a student is told, and when (pure): events are grouped into one
//! digest per student, sent at most once per `every` and at most
//! `per_day` times a UTC day, without the categories the student muted.
//! A flood of refused pushes makes one mail, not a hundred. The caller
//! keeps the outbox in the store, does not queue what a student muted,
//! sends what [`due`] returns and records it (audit and `last_sent`).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What happened, as students mute it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    PushRefused,
    BuildFailed,
    CullWarning,
    Culled,
    GpuEnding,
    GpuLent,
    Dormancy,
    AccountStopped,
    HostDrained,
}

impl Category {
    /// Every category, in the order a digest lists them.
    pub const ALL: [Category; 9] = [
        Category::PushRefused,
        Category::BuildFailed,
        Category::CullWarning,
        Category::Culled,
        Category::GpuEnding,
        Category::GpuLent,
        Category::Dormancy,
        Category::AccountStopped,
        Category::HostDrained,
    ];

    /// A heading for a digest's section.
    pub fn title(self) -> &'static str {
        match self {
            Category::PushRefused => "Pushes refused",
            Category::BuildFailed => "Builds failed",
            Category::CullWarning => "Containers about to be stopped as idle",
            Category::Culled => "Containers stopped as idle",
            Category::GpuEnding => "GPU grants ending",
            Category::GpuLent => "GPUs lent",
            Category::Dormancy => "Your workspace is dormant",
            Category::AccountStopped => "Your account was stopped",
            Category::HostDrained => "Moved to another host",
        }
    }

    /// Whether a student may mute it: what stops their work is always
    /// told.
    pub fn mutable(self) -> bool {
        !matches!(self, Category::Dormancy | Category::AccountStopped)
    }
}

/// One thing to tell a student.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub account: String,
    pub category: Category,
    /// Unix ms.
    pub at: i64,
    /// What the student may read (never backend addresses).
    pub text: String,
}

/// The site's pacing.
#[derive(Clone, Copy, Debug)]
pub struct Pacing {
    /// At most one digest per student this often, ms.
    pub every: i64,
    /// At most this many digests per student per UTC day.
    pub per_day: u32,
    /// At most this many events listed in one digest (the rest counted).
    pub listed: usize,
}

/// A student's record of what was sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    /// The last digest, Unix ms.
    pub last: Option<i64>,
    /// Digests sent on the UTC day of `last`.
    pub that_day: u32,
}

/// A mail to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    pub account: String,
    pub subject: String,
    pub body: String,
    /// The events it carries (to drop from the outbox once sent).
    pub events: usize,
}

const DAY: i64 = 86_400_000;

/// The digests due at `now`: for each student with pending events (muted
/// ones left out) whose last digest is at least `every` ago and who has
/// not had `per_day` today.
pub fn due(
    now: i64,
    pending: &[Event],
    sent: &BTreeMap<String, Sent>,
    muted: &BTreeMap<String, BTreeSet<Category>>,
    pacing: Pacing,
) -> Vec<Digest> {
    let mut by_account: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in pending {
        let silenced = e.category.mutable()
            && muted
                .get(&e.account)
                .is_some_and(|m| m.contains(&e.category));
        if !silenced {
            by_account.entry(&e.account).or_default().push(e);
        }
    }
    let mut out = Vec::new();
    for (account, events) in by_account {
        let s = sent.get(account).copied().unwrap_or_default();
        let today = s
            .last
            .is_some_and(|l| l.div_euclid(DAY) == now.div_euclid(DAY));
        if s.last.is_some_and(|l| now - l < pacing.every) || (today && s.that_day >= pacing.per_day)
        {
            continue;
        }
        out.push(render(account, &events, pacing.listed));
    }
    out
}

/// One digest's text: a section per category, newest last, at most
/// `listed` events shown.
fn render(account: &str, events: &[&Event], listed: usize) -> Digest {
    let mut body = format!("Hello {account},\n\nBerth has news about your workspace.\n");
    let mut shown = 0;
    for c in Category::ALL {
        let of: Vec<&&Event> = events.iter().filter(|e| e.category == c).collect();
        if of.is_empty() {
            continue;
        }
        body.push_str(&format!("\n{}:\n", c.title()));
        for e in of {
            if shown < listed {
                body.push_str(&format!("- {}\n", e.text));
            }
            shown += 1;
        }
    }
    if shown > listed {
        body.push_str(&format!(
            "\n… and {} more (the console shows them all).\n",
            shown - listed
        ));
    }
    body.push_str("\nYou can mute some of these on the console's Notifications page.\n");
    let first = events
        .iter()
        .map(|e| e.category)
        .min()
        .map_or("news", |c| c.title());
    let subject = if events.len() == 1 {
        format!("[Berth] {first}")
    } else {
        format!("[Berth] {first} and {} more", events.len() - 1)
    };
    Digest {
        account: account.to_string(),
        subject,
        body,
        events: events.len(),
    }
}

impl Category {
    /// The name `site.yaml` and the store use (`push-refused`).
    pub fn name(self) -> &'static str {
        match self {
            Category::PushRefused => "push-refused",
            Category::BuildFailed => "build-failed",
            Category::CullWarning => "cull-warning",
            Category::Culled => "culled",
            Category::GpuEnding => "gpu-ending",
            Category::GpuLent => "gpu-lent",
            Category::Dormancy => "dormancy",
            Category::AccountStopped => "account-stopped",
            Category::HostDrained => "host-drained",
        }
    }

    /// The category named `name`.
    pub fn named(name: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// The admins' chat post for `events` of the `wanted` categories: one line
/// per event, at most `listed` (the rest counted); `None` when none is
/// wanted.
pub fn chat_text(events: &[Event], wanted: &BTreeSet<Category>, listed: usize) -> Option<String> {
    let chosen: Vec<&Event> = events
        .iter()
        .filter(|e| wanted.contains(&e.category))
        .collect();
    if chosen.is_empty() {
        return None;
    }
    let mut text = format!("Berth: {} event(s)\n", chosen.len());
    for e in chosen.iter().take(listed) {
        // Students write none of the account names, but their texts may
        // quote their files: no markup of theirs is taken as the chat's.
        let plain: String = e
            .text
            .chars()
            .map(|c| if matches!(c, '<' | '>' | '@') { ' ' } else { c })
            .collect();
        text.push_str(&format!(
            "- {} · {}: {plain}\n",
            e.account,
            e.category.title()
        ));
    }
    if chosen.len() > listed {
        text.push_str(&format!("… and {} more\n", chosen.len() - listed));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_sites_and_serdes() {
        for c in Category::ALL {
            assert_eq!(Category::named(c.name()), Some(c));
            assert_eq!(
                serde_json::to_value(c)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string)),
                Some(c.name().to_string())
            );
            assert!(berth_spec::site::CHAT_CATEGORIES.contains(&c.name()));
        }
        assert_eq!(berth_spec::site::CHAT_CATEGORIES.len(), Category::ALL.len());
    }

    #[test]
    fn the_chat_gets_the_wanted_categories_bounded_and_without_mentions() {
        let wanted = BTreeSet::from([Category::AccountStopped]);
        assert_eq!(
            chat_text(&[event("a", Category::PushRefused, 0)], &wanted, 5),
            None
        );
        let mut events: Vec<Event> = (0..7)
            .map(|i| event(&format!("s{i}"), Category::AccountStopped, i))
            .collect();
        events[0].text = "<!channel> @all look".into();
        let text = chat_text(&events, &wanted, 5).unwrap_or_default();
        assert!(text.starts_with("Berth: 7 event(s)\n"), "{text}");
        assert!(
            text.contains("- s0 · Your account was stopped:  !channel   all look"),
            "{text}"
        );
        assert!(text.contains("… and 2 more"), "{text}");
        assert!(!text.contains("s6"), "{text}");
    }

    const MIN: i64 = 60_000;
    const PACING: Pacing = Pacing {
        every: 15 * MIN,
        per_day: 10,
        listed: 20,
    };

    fn event(account: &str, category: Category, at: i64) -> Event {
        Event {
            account: account.into(),
            category,
            at,
            text: format!("{category:?} at {at}"),
        }
    }

    #[test]
    fn a_flood_of_refused_pushes_is_one_digest() {
        let pending: Vec<Event> = (0..100)
            .map(|i| event("alice", Category::PushRefused, i))
            .chain([event("bob", Category::Culled, 5)])
            .collect();
        let d = due(1_000, &pending, &BTreeMap::new(), &BTreeMap::new(), PACING);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].account, "alice");
        assert_eq!(d[0].events, 100);
        assert_eq!(d[0].subject, "[Berth] Pushes refused and 99 more");
        assert!(d[0].body.contains("… and 80 more"), "{}", d[0].body);
        assert_eq!(d[1].subject, "[Berth] Containers stopped as idle");
    }

    #[test]
    fn a_digest_waits_for_the_interval_and_the_daily_cap() {
        let pending = [event("alice", Category::BuildFailed, 0)];
        let recent = BTreeMap::from([(
            "alice".to_string(),
            Sent {
                last: Some(DAY + 10 * MIN),
                that_day: 1,
            },
        )]);
        let now = DAY + 20 * MIN;
        assert!(due(now, &pending, &recent, &BTreeMap::new(), PACING).is_empty());
        assert_eq!(
            due(now + 5 * MIN, &pending, &recent, &BTreeMap::new(), PACING).len(),
            1
        );
        let capped = BTreeMap::from([(
            "alice".to_string(),
            Sent {
                last: Some(DAY + 10 * MIN),
                that_day: 10,
            },
        )]);
        assert!(due(2 * DAY - 1, &pending, &capped, &BTreeMap::new(), PACING).is_empty());
        // A new UTC day starts a new count.
        assert_eq!(
            due(2 * DAY, &pending, &capped, &BTreeMap::new(), PACING).len(),
            1
        );
    }

    #[test]
    fn muted_categories_are_left_out_but_stops_are_always_told() {
        let pending = [
            event("alice", Category::GpuLent, 0),
            event("alice", Category::AccountStopped, 1),
        ];
        let muted = BTreeMap::from([(
            "alice".to_string(),
            BTreeSet::from([Category::GpuLent, Category::AccountStopped]),
        )]);
        let d = due(MIN, &pending, &BTreeMap::new(), &muted, PACING);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].events, 1);
        assert!(
            d[0].body.contains("Your account was stopped"),
            "{}",
            d[0].body
        );
        assert!(!d[0].body.contains("GPUs lent"), "{}", d[0].body);
        // Everything muted: no mail at all.
        let only_muted = [event("alice", Category::GpuLent, 0)];
        assert!(due(MIN, &only_muted, &BTreeMap::new(), &muted, PACING).is_empty());
    }
}
