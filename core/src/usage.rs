//! Usage accounting (pure): from the sampler's last cursor of each
//! container and what one sampling round saw, the increments of used and
//! reserved resources per account and hour, and the next cursor.
//!
//! Docker's CPU counter restarts whenever a container starts again (a
//! recreate, the culler, the console's Start, `wake`, a dockerd restart),
//! so an incarnation is known by its `StartedAt`, never by the counter: the
//! same incarnation counts the counter's growth since the cursor; a new
//! one counts its whole counter (everything since it started happened
//! after the cursor). Reserved time runs from Docker's `StartedAt` (or the
//! cursor) to the sample, or to `FinishedAt` for one that stopped, so it
//! is exact; the CPU a container used between its last sample and its stop
//! is lost (at most one interval), never counted twice. A container older
//! than the sampler's previous round that it never saw (accounting just
//! switched on) starts a cursor and counts from there.

use std::collections::BTreeMap;

/// What the sampler remembers of a running container, between rounds and
/// across restarts of Berth (it is stored).
#[derive(Clone, Debug, PartialEq)]
pub struct Cursor {
    pub id: String,
    pub account: String,
    /// Declared name of the container (`berth.name`), for reports.
    pub name: String,
    /// Docker's `StartedAt` of the incarnation, Unix milliseconds.
    pub started_at: i64,
    /// CPU counter at `sampled_at`, nanoseconds.
    pub cpu_ns: u64,
    /// Unix milliseconds.
    pub sampled_at: i64,
    pub reserved: Reserved,
}

/// What a container holds while it runs, as it was declared.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reserved {
    pub cpus: f64,
    /// Bytes.
    pub memory: u64,
    pub gpus: u32,
}

/// One container as a round saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    pub id: String,
    pub account: String,
    pub name: String,
    pub running: bool,
    /// Docker's `StartedAt` / `FinishedAt`, Unix milliseconds (`FinishedAt`
    /// of the last stop: it stays set while the container runs again).
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// While running: the CPU counter (ns) and memory in use (bytes).
    pub cpu_ns: Option<u64>,
    pub memory_used: Option<u64>,
    pub reserved: Reserved,
}

/// Amounts over some time, in the units reports use.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Amounts {
    /// CPU-seconds used.
    pub cpu_used: f64,
    /// CPU-seconds reserved (declared CPUs × seconds running).
    pub cpu_reserved: f64,
    /// GiB-seconds of memory reserved.
    pub memory_reserved: f64,
    /// GiB-seconds of memory in use (as sampled).
    pub memory_used: f64,
    /// GPU-seconds held.
    pub gpu_reserved: f64,
    /// Image builds run (finished, built or not).
    pub builds: f64,
    /// Seconds those builds took.
    pub build_seconds: f64,
}

impl Amounts {
    pub fn add(&mut self, o: &Amounts) {
        self.cpu_used += o.cpu_used;
        self.cpu_reserved += o.cpu_reserved;
        self.memory_reserved += o.memory_reserved;
        self.memory_used += o.memory_used;
        self.gpu_reserved += o.gpu_reserved;
        self.builds += o.builds;
        self.build_seconds += o.build_seconds;
    }

    fn scaled(&self, f: f64) -> Amounts {
        Amounts {
            cpu_used: self.cpu_used * f,
            cpu_reserved: self.cpu_reserved * f,
            memory_reserved: self.memory_reserved * f,
            memory_used: self.memory_used * f,
            gpu_reserved: self.gpu_reserved * f,
            builds: self.builds * f,
            build_seconds: self.build_seconds * f,
        }
    }
}

/// What one round adds: per (account, hour start in Unix seconds).
pub type Increments = BTreeMap<(String, i64), Amounts>;

/// The result of one round.
#[derive(Debug, Default, PartialEq)]
pub struct Round {
    pub increments: Increments,
    /// The cursor of every container running now.
    pub cursors: Vec<Cursor>,
}

const GIB: f64 = (1u64 << 30) as f64;

/// One round at `now` (Unix ms): `previous` cursors, the round before's
/// time (`None` for the first round ever), and what was seen.
pub fn account(previous: &[Cursor], last_round: Option<i64>, seen: &[Seen], now: i64) -> Round {
    let by_id: BTreeMap<&str, &Cursor> = previous.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut out = Round::default();
    for s in seen {
        let prev = by_id.get(s.id.as_str()).copied();
        let same = prev.filter(|p| p.started_at == s.started_at);
        // A sample that saw a run still going after Docker says it ended
        // (its state lags the exit while the daemon goes down) counted too
        // far: the excess goes back.
        if let (Some(p), Some(f)) = (prev, s.finished_at)
            && f < p.sampled_at
            && f > p.started_at
            && (same.is_none() || !s.running)
        {
            add_span(&mut out.increments, &p.account, f, p.sampled_at, |secs| {
                reserved_over(&p.reserved, secs).scaled(-1.0)
            });
        }
        let finished = s
            .finished_at
            .filter(|f| *f > prev.map_or(last_round.unwrap_or(i64::MAX), |p| p.sampled_at));
        match (prev, s.running, same.is_some(), finished) {
            // It stopped: its reserved time runs to the stop.
            (Some(p), false, true, Some(f)) => {
                add_span(&mut out.increments, &p.account, p.sampled_at, f, |secs| {
                    reserved_over(&p.reserved, secs)
                });
            }
            // It started again: the incarnation followed ran to its stop.
            (Some(p), true, false, Some(f)) if f <= s.started_at => {
                add_span(&mut out.increments, &p.account, p.sampled_at, f, |secs| {
                    reserved_over(&p.reserved, secs)
                });
            }
            // Started and stopped again between two rounds: that stretch.
            (Some(p), false, false, Some(f)) if s.started_at >= p.sampled_at => {
                add_span(&mut out.increments, &s.account, s.started_at, f, |secs| {
                    reserved_over(&s.reserved, secs)
                });
            }
            (None, false, _, Some(f)) if last_round.is_some_and(|r| s.started_at >= r) => {
                add_span(&mut out.increments, &s.account, s.started_at, f, |secs| {
                    reserved_over(&s.reserved, secs)
                });
            }
            // Stopped, but Docker has not written when yet (a daemon going
            // down): the cursor waits for a round that knows.
            (Some(p), false, true, None) => out.cursors.push(p.clone()),
            _ => {}
        }
        if !s.running {
            continue;
        }
        let Some(cpu_ns) = s.cpu_ns else { continue };
        let (from, cpu) = match same {
            Some(p) => (p.sampled_at, cpu_ns.saturating_sub(p.cpu_ns)),
            // Started since the last round: all of it is new.
            None if last_round.is_some_and(|r| s.started_at >= r) || prev.is_some() => {
                (s.started_at, cpu_ns)
            }
            // Running before Berth watched it: counting starts now.
            None => (now, 0),
        };
        if now > from {
            let memory_used = s.memory_used.unwrap_or(0) as f64 / GIB;
            add_span(&mut out.increments, &s.account, from, now, |secs| {
                let mut a = reserved_over(&s.reserved, secs);
                a.memory_used = memory_used * secs;
                a
            });
            // The counter's growth is spread like the time it grew in.
            let total = (now - from) as f64;
            for (hour, share) in hours(from, now) {
                out.increments
                    .entry((s.account.clone(), hour))
                    .or_default()
                    .cpu_used += cpu as f64 / 1e9 * (share / total);
            }
        }
        out.cursors.push(Cursor {
            id: s.id.clone(),
            account: s.account.clone(),
            name: s.name.clone(),
            started_at: s.started_at,
            // Nothing was counted of a run that began after `now`: the
            // next round counts its counter whole.
            cpu_ns: if now > from { cpu_ns } else { 0 },
            // A run that began after `now` (the round's time is taken
            // before Docker is asked) is owed nothing before its start.
            sampled_at: now.max(from),
            reserved: s.reserved,
        });
    }
    out
}

fn reserved_over(r: &Reserved, secs: f64) -> Amounts {
    Amounts {
        cpu_reserved: r.cpus * secs,
        memory_reserved: r.memory as f64 / GIB * secs,
        gpu_reserved: f64::from(r.gpus) * secs,
        ..Amounts::default()
    }
}

/// Adds `amount(seconds)` for the span [from, to) (Unix ms), split over
/// the hours it covers.
fn add_span(
    inc: &mut Increments,
    account: &str,
    from: i64,
    to: i64,
    amount: impl Fn(f64) -> Amounts,
) {
    if to <= from {
        return;
    }
    let whole = amount((to - from) as f64 / 1000.0);
    let total = (to - from) as f64;
    for (hour, share) in hours(from, to) {
        inc.entry((account.to_string(), hour))
            .or_default()
            .add(&whole.scaled(share / total));
    }
}

/// The hours (start, Unix seconds) that [from, to) (Unix ms) covers, with
/// the milliseconds of the span in each.
fn hours(from: i64, to: i64) -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        let hour = at.div_euclid(3_600_000) * 3_600_000;
        let end = (hour + 3_600_000).min(to);
        out.push((hour / 1000, (end - at) as f64));
        at = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    const T0: i64 = 1_800_000_000_000 - 1_800_000_000_000 % H;

    fn seen(id: &str, started: i64, cpu_s: f64, running: bool) -> Seen {
        Seen {
            id: id.into(),
            account: "alice".into(),
            name: "web".into(),
            running,
            started_at: started,
            finished_at: None,
            cpu_ns: running.then_some((cpu_s * 1e9) as u64),
            memory_used: running.then_some(1 << 30),
            reserved: Reserved {
                cpus: 2.0,
                memory: 1 << 30,
                gpus: 1,
            },
        }
    }

    fn total(r: &Round) -> Amounts {
        let mut t = Amounts::default();
        for a in r.increments.values() {
            t.add(a);
        }
        t
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn a_container_seen_for_the_first_time_counts_from_its_start() {
        // Started 10 s after the last round, sampled 60 s after it.
        let r = account(
            &[],
            Some(T0),
            &[seen("c1", T0 + 10_000, 5.0, true)],
            T0 + 60_000,
        );
        let t = total(&r);
        assert!(
            close(t.cpu_used, 5.0) && close(t.cpu_reserved, 100.0),
            "{t:?}"
        );
        assert!(close(t.gpu_reserved, 50.0) && close(t.memory_reserved, 50.0));
        assert_eq!(r.cursors.len(), 1);
        // The next round counts only what grew.
        let r2 = account(
            &r.cursors,
            Some(T0 + 60_000),
            &[seen("c1", T0 + 10_000, 8.0, true)],
            T0 + 120_000,
        );
        let t = total(&r2);
        assert!(
            close(t.cpu_used, 3.0) && close(t.cpu_reserved, 120.0),
            "{t:?}"
        );
    }

    #[test]
    fn a_start_after_the_rounds_time_counts_from_the_start_next_round() {
        // The round's time is taken before Docker is asked: a container
        // (re)started in between is seen with a start after `now`. Found
        // by the dockerd-restart test: the next round counted from `now`,
        // 0.4 s the container had not run.
        let first = account(&[], Some(T0), &[seen("c1", T0, 10.0, true)], T0 + 60_000);
        let mut again = seen("c1", T0 + 121_000, 0.5, true);
        again.finished_at = Some(T0 + 90_000);
        let r = account(
            &first.cursors,
            Some(T0 + 60_000),
            &[again.clone()],
            T0 + 120_000,
        );
        assert!(close(total(&r).cpu_reserved, 60.0), "{:?}", total(&r));
        let mut later = again;
        later.cpu_ns = Some(2_000_000_000);
        let r2 = account(&r.cursors, Some(T0 + 120_000), &[later], T0 + 180_000);
        // 59 s of the new run, × 2 CPUs, not 60; and its counter whole.
        assert!(close(total(&r2).cpu_reserved, 118.0), "{:?}", total(&r2));
        assert!(close(total(&r2).cpu_used, 2.0), "{:?}", total(&r2));
    }

    #[test]
    fn a_container_older_than_accounting_counts_from_first_sight() {
        let r = account(&[], None, &[seen("c1", T0 - H, 500.0, true)], T0);
        assert_eq!(total(&r), Amounts::default());
        assert_eq!(r.cursors.len(), 1);
    }

    #[test]
    fn a_restart_counts_the_new_counter_whole_and_the_old_tail_by_its_finish() {
        let first = account(&[], Some(T0), &[seen("c1", T0, 10.0, true)], T0 + 60_000);
        // Stopped at +90 s and started again at +100 s (the culler, then
        // Start; or a dockerd restart): the counter began again at zero.
        let mut again = seen("c1", T0 + 100_000, 1.0, true);
        again.finished_at = Some(T0 + 90_000);
        let r = account(&first.cursors, Some(T0 + 60_000), &[again], T0 + 120_000);
        let t = total(&r);
        // Reserved: 30 s of the old incarnation + 20 s of the new, × 2 CPUs;
        // the 10 s it was down are not counted.
        assert!(close(t.cpu_reserved, 100.0), "{t:?}");
        assert!(close(t.cpu_used, 1.0), "{t:?}");
    }

    #[test]
    fn a_stop_counts_reserved_time_to_the_finish_and_nothing_after() {
        let first = account(&[], Some(T0), &[seen("c1", T0, 10.0, true)], T0 + 60_000);
        let mut stopped = seen("c1", T0, 0.0, false);
        stopped.finished_at = Some(T0 + 75_000);
        let r = account(
            &first.cursors,
            Some(T0 + 60_000),
            &[stopped.clone()],
            T0 + 120_000,
        );
        assert!(close(total(&r).cpu_reserved, 30.0), "{:?}", total(&r));
        assert!(r.cursors.is_empty());
        // Seen stopped again: nothing more.
        let r = account(&r.cursors, Some(T0 + 120_000), &[stopped], T0 + 180_000);
        assert_eq!(total(&r), Amounts::default());
    }

    #[test]
    fn a_stop_seen_before_docker_wrote_its_time_is_counted_when_it_has() {
        let first = account(&[], Some(T0), &[seen("c1", T0, 10.0, true)], T0 + 60_000);
        // dockerd going down: not running, no FinishedAt yet.
        let going = seen("c1", T0, 0.0, false);
        let r = account(&first.cursors, Some(T0 + 60_000), &[going], T0 + 61_000);
        assert_eq!(total(&r), Amounts::default());
        assert_eq!(r.cursors, first.cursors, "the cursor is kept");
        // Back up, started again at +70 s; the stop was at +62 s.
        let mut again = seen("c1", T0 + 70_000, 1.0, true);
        again.finished_at = Some(T0 + 62_000);
        let r = account(&r.cursors, Some(T0 + 61_000), &[again], T0 + 80_000);
        // 2 s of the old run + 10 s of the new, × 2 CPUs.
        assert!(close(total(&r).cpu_reserved, 24.0), "{:?}", total(&r));
    }

    #[test]
    fn a_sample_that_saw_a_run_past_its_end_gives_the_excess_back() {
        let first = account(&[], Some(T0), &[seen("c1", T0, 10.0, true)], T0 + 60_000);
        // Seen running at +61 s though it ended at +60.5 s.
        let late = account(
            &first.cursors,
            Some(T0 + 60_000),
            &[seen("c1", T0, 10.0, true)],
            T0 + 61_000,
        );
        let mut again = seen("c1", T0 + 70_000, 1.0, true);
        again.finished_at = Some(T0 + 60_500);
        let r = account(&late.cursors, Some(T0 + 61_000), &[again], T0 + 80_000);
        // 1 s counted by the late sample, 0.5 s of it given back, + 10 s new.
        let mut t = total(&late);
        t.add(&total(&r));
        assert!(close(t.cpu_reserved, 2.0 * (0.5 + 10.0)), "{t:?}");
    }

    #[test]
    fn a_round_repeated_from_the_same_cursor_adds_nothing_twice() {
        // Berth restarted after writing a round: the stored cursor is the
        // round's, so the next round counts from there.
        let first = account(&[], Some(T0), &[seen("c1", T0, 10.0, true)], T0 + 60_000);
        let r = account(
            &first.cursors,
            Some(T0 + 60_000),
            &[seen("c1", T0, 10.0, true)],
            T0 + 60_000,
        );
        assert_eq!(total(&r), Amounts::default());
    }

    #[test]
    fn a_container_that_ran_only_between_two_rounds_is_counted_once() {
        let mut brief = seen("c2", T0 + 10_000, 0.0, false);
        brief.finished_at = Some(T0 + 40_000);
        let r = account(&[], Some(T0), &[brief.clone()], T0 + 60_000);
        assert!(close(total(&r).cpu_reserved, 60.0), "{:?}", total(&r));
        let r = account(&r.cursors, Some(T0 + 60_000), &[brief], T0 + 120_000);
        assert_eq!(total(&r), Amounts::default());
    }

    #[test]
    fn spans_are_split_over_the_hours_they_cover() {
        // From 30 min before an hour to 30 min after it.
        let start = T0 + H / 2;
        let r = account(
            &[],
            Some(start),
            &[seen("c1", start, 3600.0, true)],
            start + H,
        );
        assert_eq!(r.increments.len(), 2);
        for a in r.increments.values() {
            assert!(
                close(a.cpu_reserved, 3600.0) && close(a.cpu_used, 1800.0),
                "{a:?}"
            );
        }
    }
}
