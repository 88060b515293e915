//! The idle culler's rule, pure: from how long a container has been idle,
//! whether it was warned and whether its owner declared a long quiet job
//! (`keep_until`), what happens now. A container is never stopped without
//! having been marked "will stop at T" first, and it stops no earlier than
//! the T it was told. All times are Unix milliseconds.

/// The site's timings for one container.
#[derive(Clone, Copy, Debug)]
pub struct Timings {
    /// Idle this long and it stops (the group's `idle_stop_after`).
    pub after: i64,
    /// The warning comes this long before the stop (`warn_before`).
    pub warn_before: i64,
    /// Time between samples: a warning given late still leaves at least
    /// this long before the stop, so activity has one sample to show.
    pub sample_every: i64,
}

/// What the culler does with a container now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// In use, or kept by `keep_until`: any warning is withdrawn.
    Active,
    /// Idle, not yet near its stop (or already warned of it).
    Idle,
    /// Mark it "will stop at" this time and tell the student.
    Warn { stop_at: i64 },
    /// Stop it now.
    Stop,
}

/// The step for a container idle since `idle_since` (`None`: in use),
/// warned of a stop at `warned` and kept until `keep_until`.
pub fn step(
    now: i64,
    idle_since: Option<i64>,
    warned: Option<i64>,
    keep_until: Option<i64>,
    t: Timings,
) -> Step {
    let Some(since) = idle_since else {
        return Step::Active;
    };
    if keep_until.is_some_and(|k| k > now) {
        return Step::Active;
    }
    if let Some(stop_at) = warned {
        return if now >= stop_at {
            Step::Stop
        } else {
            Step::Idle
        };
    }
    let planned = since.saturating_add(t.after);
    if now >= planned.saturating_sub(t.warn_before) {
        Step::Warn {
            stop_at: planned.max(now.saturating_add(t.sample_every.min(t.warn_before))),
        }
    } else {
        Step::Idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const T: Timings = Timings {
        after: 60 * MIN,
        warn_before: 30 * MIN,
        sample_every: 5 * MIN,
    };

    #[test]
    fn the_rules_as_a_table() {
        // (name, now, idle_since, warned, keep_until, want)
        type Row = (
            &'static str,
            i64,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Step,
        );
        let rows: &[Row] = &[
            ("in use", 100 * MIN, None, None, None, Step::Active),
            (
                "in use again after a warning",
                100 * MIN,
                None,
                Some(110 * MIN),
                None,
                Step::Active,
            ),
            (
                "idle, far from its stop",
                20 * MIN,
                Some(0),
                None,
                None,
                Step::Idle,
            ),
            (
                "idle, warn_before from its stop",
                30 * MIN,
                Some(0),
                None,
                None,
                Step::Warn { stop_at: 60 * MIN },
            ),
            (
                "warned late (serve was down): a sample's time to answer",
                90 * MIN,
                Some(0),
                None,
                None,
                Step::Warn { stop_at: 95 * MIN },
            ),
            (
                "warned, before its time",
                59 * MIN,
                Some(0),
                Some(60 * MIN),
                None,
                Step::Idle,
            ),
            (
                "warned, at its time",
                60 * MIN,
                Some(0),
                Some(60 * MIN),
                None,
                Step::Stop,
            ),
            (
                "kept",
                90 * MIN,
                Some(0),
                None,
                Some(91 * MIN),
                Step::Active,
            ),
            (
                "kept, even when warned before the keep",
                90 * MIN,
                Some(0),
                Some(60 * MIN),
                Some(91 * MIN),
                Step::Active,
            ),
            (
                "a keep that ended is no keep",
                90 * MIN,
                Some(0),
                None,
                Some(90 * MIN),
                Step::Warn { stop_at: 95 * MIN },
            ),
        ];
        let failures: Vec<String> = rows
            .iter()
            .filter_map(|&(name, now, since, warned, keep, want)| {
                let got = step(now, since, warned, keep, T);
                (got != want).then(|| format!("{name}: got {got:?}, want {want:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn nothing_stops_unwarned_or_before_its_time() {
        // Walk a container idle from 0 through sample times of every phase:
        // the stop comes after a warning, at or after the time told.
        for sample in [MIN, 5 * MIN, 17 * MIN, 45 * MIN, 2 * 60 * MIN] {
            let t = Timings {
                sample_every: sample,
                ..T
            };
            let (mut now, mut warned) = (sample, None);
            loop {
                match step(now, Some(0), warned, None, t) {
                    Step::Warn { stop_at } => {
                        assert!(stop_at > now, "every {sample}: told a time already past");
                        warned = Some(stop_at);
                    }
                    Step::Stop => {
                        let told = warned.expect("warned before stopping");
                        assert!(now >= told);
                        break;
                    }
                    Step::Idle => {}
                    Step::Active => panic!("idle is never active"),
                }
                now += sample;
            }
        }
    }
}
