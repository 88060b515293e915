//! Plan previews, the way `terraform plan` or Atlantis shows them: what a
//! branch's or a merge request's head would do, rendered for GitLab (a
//! `berth/plan` commit status with the counts or the refusal, and one
//! merge-request note edited in place) and for `reconciler plan`. The plan
//! itself comes from [`crate::engine::reconcile::preview`]; nothing is applied.

use crate::clients::ReconcileError;
use crate::engine::reconcile::{AccountPlan, Decision};
use crate::inputs::gitlab::{CommitState, GitLab, GitLabError};
use crate::ops::report::{plan_text, summarize};
use crate::store::Store;

/// The name of the preview's commit status (the apply's is `berth`).
pub const STATUS_NAME: &str = "berth/plan";

/// A preview as GitLab shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub state: CommitState,
    /// The status line: counts, or why it would be refused.
    pub description: String,
    /// The whole plan as `reconciler diff` prints it.
    pub text: String,
    /// Changes it would make (0 when refused).
    pub changes: usize,
    pub refused: bool,
}

pub fn render(account: &str, plan: Result<AccountPlan, ReconcileError>) -> Rendered {
    let refusal = match &plan {
        Ok(p) => match &p.decision {
            Decision::Reject { reason, .. } => Some(reason.to_string()),
            _ => None,
        },
        Err(e) => Some(e.to_string()),
    };
    let plans = vec![(account.to_string(), plan)];
    let s = summarize(&plans);
    let text = plan_text(&plans);
    match refusal {
        Some(why) => Rendered {
            state: CommitState::Failed,
            description: format!("would be refused: {why}"),
            text,
            changes: 0,
            refused: true,
        },
        None => {
            let mut parts = vec![
                format!("{} to create", s.create),
                format!("{} to recreate", s.recreate),
                format!("{} to remove", s.remove),
            ];
            for (n, what) in [
                (s.update, "to update"),
                (s.start, "to start"),
                (s.stop, "to stop"),
            ] {
                if n > 0 {
                    parts.push(format!("{n} {what}"));
                }
            }
            Rendered {
                state: CommitState::Success,
                description: parts.join(", "),
                text,
                changes: s.changes(),
                refused: false,
            }
        }
    }
}

/// A preview Berth itself could not make: what the student sees instead
/// of the cause, which is the site's business (audit `id`).
pub fn unavailable(id: Option<i64>) -> Rendered {
    let description = match id {
        Some(id) => format!("Berth could not evaluate this change; an admin can read audit #{id}"),
        None => "Berth could not evaluate this change; an admin can find why in Berth's log".into(),
    };
    Rendered {
        state: CommitState::Failed,
        text: description.clone(),
        description,
        changes: 0,
        refused: true,
    }
}

/// The merge request note: Markdown, the plan as `reconciler diff` shows
/// it. The plan quotes the student's file (unknown keys, values), so it
/// sits in a fence longer than any run of backticks in it, and the status
/// line is escaped: nothing a student writes can end the block or become
/// a link, an image or HTML in the note.
pub fn note(sha: &str, r: &Rendered) -> String {
    let head = if r.refused {
        "**This change would be refused.**"
    } else if r.changes == 0 {
        "This change would change nothing that runs."
    } else {
        "This change would do the following when merged:"
    };
    let text = r.text.trim_end();
    let fence = "`".repeat(longest_run(text, '`').max(2) + 1);
    format!(
        "### Berth plan for `{}`\n\n{head}\n\n{fence}diff\n{text}\n{fence}\n\n<sub>{}. Updated on every push to this merge request.</sub>\n",
        sha.chars().take(12).collect::<String>(),
        inline(&r.description)
    )
}

fn longest_run(text: &str, c: char) -> usize {
    let (mut best, mut run) = (0, 0);
    for ch in text.chars() {
        run = if ch == c { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

/// `text` as literal Markdown and HTML, on one line: entities for `<`,
/// `>` and `&`, and a backslash before every other character Markdown
/// gives a meaning to.
fn inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '!' | '#' | '|' | '~' => {
                out.push('\\');
                out.push(ch);
            }
            _ => out.push(ch),
        }
    }
    out
}

/// Posts the preview of `sha`: the `berth/plan` status, and for a merge
/// request its one note (created once, then edited in place).
pub async fn publish(
    gitlab: &GitLab,
    store: &Store,
    project: u64,
    sha: &str,
    merge_request: Option<u64>,
    r: &Rendered,
) -> Result<(), GitLabError> {
    gitlab
        .set_named_status(project, sha, STATUS_NAME, r.state, &r.description)
        .await?;
    if let Some(iid) = merge_request {
        let known = store
            .call(move |s| s.mr_note(project, iid))
            .await
            .ok()
            .flatten();
        let id = gitlab
            .upsert_mr_note(project, iid, known, &note(sha, r))
            .await?;
        if known != Some(id) {
            let _ = store.call(move |s| s.set_mr_note(project, iid, id)).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::reconcile::RejectReason;

    #[test]
    fn a_refusal_says_why_and_counts_nothing() {
        let mut plan = AccountPlan::new("alice", None);
        plan.decision = Decision::Reject {
            revision: "abc".into(),
            reason: RejectReason::Invalid("workspace.yaml:5:5: unknown field `colour`".into()),
        };
        let r = render("alice", Ok(plan));
        assert_eq!(r.state, CommitState::Failed);
        assert!(
            r.description.contains("workspace.yaml:5:5"),
            "{}",
            r.description
        );
        assert!(note("abcdef1234567890", &r).contains("would be refused"));
    }

    #[test]
    fn student_text_cannot_leave_the_notes_code_block_or_become_markup() {
        let mut plan = AccountPlan::new("alice", None);
        let hostile = "workspace.yaml:3:1: unknown field `x\n```\n![x](https://evil.example/p.png)</sub><img src=x>`";
        plan.decision = Decision::Reject {
            revision: "abc".into(),
            reason: RejectReason::Invalid(hostile.into()),
        };
        let r = render("alice", Ok(plan));
        let note = note("abcdef1234567890", &r);
        // The fence is longer than the student's backticks.
        assert!(
            note.contains("\n````diff\n") && note.contains("\n````\n"),
            "{note}"
        );
        let footer = note.rsplit("<sub>").next().expect("footer");
        assert!(
            !footer.contains("<img") && !footer.contains("](https"),
            "{footer}"
        );
        assert!(
            footer.contains("&lt;img") && footer.contains("\\!\\[x\\]"),
            "{footer}"
        );
    }

    #[test]
    fn berths_own_failure_shows_an_audit_id_not_its_cause() {
        let r = unavailable(Some(42));
        assert_eq!(r.state, CommitState::Failed);
        assert!(r.description.ends_with("audit #42"), "{}", r.description);
        assert!(note("abc", &r).contains("audit #42"));
    }

    #[test]
    fn an_accepted_preview_counts_its_changes() {
        let mut plan = AccountPlan::new("alice", None);
        plan.decision = Decision::Accept {
            revision: "abc".into(),
            commits: 1,
        };
        let r = render("alice", Ok(plan));
        assert_eq!(r.state, CommitState::Success);
        assert_eq!(r.description, "0 to create, 0 to recreate, 0 to remove");
    }
}
