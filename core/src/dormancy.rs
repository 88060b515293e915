//! Dormant workspaces, pure: from when an account was last used (a push,
//! a console login, a running container) what happens now. A student is
//! told before anything is archived, and the archive comes no sooner than
//! the notice the site promises (`archive_after - dormant_after`) after
//! being told, however late the telling was. Times are Unix seconds.

/// The site's `dormancy` durations, in seconds.
#[derive(Clone, Copy, Debug)]
pub struct Timings {
    pub dormant_after: i64,
    pub archive_after: i64,
}

/// What happens to an account now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Used recently: a warning given is withdrawn.
    Active,
    /// Nothing to do (no volumes, already archived, or waiting for the
    /// time told).
    Quiet,
    /// Tell the student its volumes will be archived at this time.
    Tell { archive_at: i64 },
    /// Archive its volumes now.
    Archive,
}

/// The step for an account last used at `last`, told of an archive at
/// `told` (if it was), holding Docker volumes or not, archived or not.
pub fn step(
    now: i64,
    last: i64,
    told: Option<i64>,
    has_volumes: bool,
    archived: bool,
    t: Timings,
) -> Step {
    if now.saturating_sub(last) < t.dormant_after {
        return if told.is_some() {
            Step::Active
        } else {
            Step::Quiet
        };
    }
    if archived || !has_volumes {
        return Step::Quiet;
    }
    match told {
        None => Step::Tell {
            archive_at: last
                .saturating_add(t.archive_after)
                .max(now.saturating_add(t.archive_after - t.dormant_after)),
        },
        Some(at) if now >= at => Step::Archive,
        Some(_) => Step::Quiet,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const T: Timings = Timings {
        dormant_after: 90 * DAY,
        archive_after: 120 * DAY,
    };

    #[test]
    fn the_rules_as_a_table() {
        // (name, now, last, told, has_volumes, archived, want)
        type Row = (&'static str, i64, i64, Option<i64>, bool, bool, Step);
        let rows: &[Row] = &[
            (
                "used last week",
                100 * DAY,
                93 * DAY,
                None,
                true,
                false,
                Step::Quiet,
            ),
            (
                "used again after being told",
                100 * DAY,
                99 * DAY,
                Some(130 * DAY),
                true,
                false,
                Step::Active,
            ),
            (
                "dormant: told, archive at last + archive_after",
                90 * DAY,
                0,
                None,
                true,
                false,
                Step::Tell {
                    archive_at: 120 * DAY,
                },
            ),
            (
                "told late: the full notice still",
                200 * DAY,
                0,
                None,
                true,
                false,
                Step::Tell {
                    archive_at: 230 * DAY,
                },
            ),
            (
                "told, before its time",
                119 * DAY,
                0,
                Some(120 * DAY),
                true,
                false,
                Step::Quiet,
            ),
            (
                "told, at its time",
                120 * DAY,
                0,
                Some(120 * DAY),
                true,
                false,
                Step::Archive,
            ),
            (
                "nothing to archive, nothing told",
                200 * DAY,
                0,
                None,
                false,
                false,
                Step::Quiet,
            ),
            (
                "already archived",
                200 * DAY,
                0,
                Some(120 * DAY),
                true,
                true,
                Step::Quiet,
            ),
        ];
        let failures: Vec<String> = rows
            .iter()
            .filter_map(|&(name, now, last, told, vols, archived, want)| {
                let got = step(now, last, told, vols, archived, T);
                (got != want).then(|| format!("{name}: got {got:?}, want {want:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn nothing_is_archived_untold_or_with_less_notice_than_promised() {
        for every in [DAY / 24, DAY, 7 * DAY, 45 * DAY] {
            let (mut now, mut told, mut told_at) = (0, None, 0);
            loop {
                match step(now, 0, told, true, false, T) {
                    Step::Tell { archive_at } => {
                        assert!(archive_at - now >= T.archive_after - T.dormant_after);
                        told = Some(archive_at);
                        told_at = now;
                    }
                    Step::Archive => {
                        assert!(told.is_some(), "archived untold");
                        assert!(now - told_at >= T.archive_after - T.dormant_after);
                        break;
                    }
                    Step::Quiet => {}
                    Step::Active => panic!("never used again"),
                }
                now += every;
            }
        }
    }
}
