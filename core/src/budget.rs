//! Budgets (pure): how much of its groups' CPU- and GPU-hour budgets an
//! account's groups have used this period, what a revision would add to
//! what the account holds, and what follows — a note for the plan, a
//! warning from the site's share on, and, past a `refuse` budget, the
//! refusal of a revision that adds what is over.
//!
//! A budget belongs to a group and is spent by all its members together
//! (reserved hours: declared CPUs or GPUs × time running, as usage
//! accounting counts them); an account draws on the budget of every group
//! it is in that has one.

/// What a container holds while running: CPUs and GPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Holds {
    pub cpus: f64,
    pub gpus: u32,
}

/// One dimension of a group's budget this period, in hours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spent {
    pub used: f64,
    pub limit: f64,
}

/// A group's budget and what its members used of it this period.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupBudget {
    pub group: String,
    /// `week` or `month`, as messages say it.
    pub period: &'static str,
    /// When the period ends (RFC 3339), for messages.
    pub ends: String,
    pub cpu: Option<Spent>,
    pub gpu: Option<Spent>,
    pub refuse: bool,
}

/// What the budgets say of a revision.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Judgement {
    /// Why it is refused, when a `refuse` budget is spent and it adds to
    /// what is over.
    pub refusal: Option<String>,
    /// What it adds, against each budget it draws on.
    pub notes: Vec<String>,
}

/// Hours as people read them: `40`, `24.5`, `0.001`.
fn hours(h: f64) -> String {
    let text = trim(h);
    if text == "0" && h > 0.0 {
        format!("{h:.3}")
    } else {
        text
    }
}

/// Judges a revision that holds `candidate` where the account holds
/// `accepted` now.
pub fn judge(budgets: &[GroupBudget], accepted: Holds, candidate: Holds) -> Judgement {
    let mut out = Judgement::default();
    for b in budgets {
        let dims = [
            ("CPU", candidate.cpus - accepted.cpus, b.cpu),
            (
                "GPU",
                f64::from(candidate.gpus) - f64::from(accepted.gpus),
                b.gpu,
            ),
        ];
        for (what, added, spent) in dims {
            let Some(s) = spent else { continue };
            if added <= 0.0 {
                continue;
            }
            let plural = if (added - 1.0).abs() < f64::EPSILON {
                ""
            } else {
                "s"
            };
            out.notes.push(format!(
                "adds {} {what}{plural}: {} of the {} {what}-hours of group `{}` used this {}",
                trim(added),
                hours(s.used),
                hours(s.limit),
                b.group,
                b.period
            ));
            if b.refuse && s.used >= s.limit && out.refusal.is_none() {
                out.refusal = Some(format!(
                    "budget: group `{}` has used {} of its {} {what}-hours this {}; a revision may not add {what}s ({} → {}) until it ends ({})",
                    b.group,
                    hours(s.used),
                    hours(s.limit),
                    b.period,
                    trim(added_from(what, accepted)),
                    trim(added_from(what, candidate)),
                    b.ends
                ));
            }
        }
    }
    out
}

fn added_from(what: &str, h: Holds) -> f64 {
    if what == "CPU" {
        h.cpus
    } else {
        f64::from(h.gpus)
    }
}

/// `1`, `0.5`, `0.25`: at most 3 decimals, no trailing zeros.
fn trim(v: f64) -> String {
    let text = format!("{v:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// What students are told of budgets used past `warn_at` percent.
pub fn warnings(budgets: &[GroupBudget], warn_at: f64) -> Vec<String> {
    let mut out = Vec::new();
    for b in budgets {
        for (what, spent) in [("CPU", b.cpu), ("GPU", b.gpu)] {
            let Some(s) = spent else { continue };
            let share = if s.limit > 0.0 {
                100.0 * s.used / s.limit
            } else if s.used > 0.0 {
                f64::INFINITY
            } else {
                continue;
            };
            if share >= warn_at {
                let then = if b.refuse {
                    "past it, revisions that add them are refused"
                } else {
                    "past it, you are warned"
                };
                out.push(format!(
                    "budget: group `{}` has used {} of its {} {what}-hours this {} ({}); {then}",
                    b.group,
                    hours(s.used),
                    hours(s.limit),
                    b.period,
                    if share.is_finite() {
                        format!("{share:.0} %")
                    } else {
                        "over".into()
                    }
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(refuse: bool, gpu_used: f64) -> GroupBudget {
        GroupBudget {
            group: "students".into(),
            period: "week",
            ends: "2026-12-07T00:00:00Z".into(),
            cpu: Some(Spent {
                used: 10.0,
                limit: 100.0,
            }),
            gpu: Some(Spent {
                used: gpu_used,
                limit: 40.0,
            }),
            refuse,
        }
    }

    const NONE: Holds = Holds { cpus: 1.0, gpus: 0 };
    const ONE_GPU: Holds = Holds { cpus: 1.0, gpus: 1 };

    #[test]
    fn a_revision_that_adds_is_told_what_it_costs() {
        let j = judge(&[budget(true, 24.0)], NONE, ONE_GPU);
        assert_eq!(j.refusal, None);
        assert_eq!(
            j.notes,
            ["adds 1 GPU: 24 of the 40 GPU-hours of group `students` used this week"]
        );
    }

    #[test]
    fn past_a_refuse_budget_what_adds_is_refused_and_what_does_not_passes() {
        let j = judge(&[budget(true, 40.0)], NONE, ONE_GPU);
        assert_eq!(
            j.refusal.as_deref(),
            Some(
                "budget: group `students` has used 40 of its 40 GPU-hours this week; a revision may not add GPUs (0 → 1) until it ends (2026-12-07T00:00:00Z)"
            )
        );
        // The same, in a `warn` group: accepted, with the note.
        assert_eq!(judge(&[budget(false, 41.0)], NONE, ONE_GPU).refusal, None);
        // Keeping or dropping GPUs is never refused.
        assert_eq!(
            judge(&[budget(true, 41.0)], ONE_GPU, ONE_GPU),
            Judgement::default()
        );
        assert_eq!(judge(&[budget(true, 41.0)], ONE_GPU, NONE).refusal, None);
    }

    #[test]
    fn students_are_told_from_the_sites_share_on() {
        assert!(warnings(&[budget(false, 31.0)], 80.0).is_empty());
        assert_eq!(
            warnings(&[budget(true, 32.0)], 80.0),
            [
                "budget: group `students` has used 32 of its 40 GPU-hours this week (80 %); past it, revisions that add them are refused"
            ]
        );
    }
}
