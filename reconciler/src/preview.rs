//! Plan previews, the way `terraform plan` or Atlantis shows them: what a
//! branch's or a merge request's head would do, rendered for GitLab (a
//! `berth/plan` commit status with the counts or the refusal, and one
//! merge-request note edited in place) and for `reconciler plan`. The plan
//! itself comes from [`crate::reconcile::preview`]; nothing is applied.

use crate::cli::output::{plan_text, summarize};
use crate::gitlab::{CommitState, GitLab, GitLabError};
use crate::reconcile::{AccountPlan, Decision, ReconcileError};
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

/// The merge request note: Markdown, the plan as `reconciler diff` shows it.
pub fn note(sha: &str, r: &Rendered) -> String {
    let head = if r.refused {
        "**This change would be refused.**"
    } else if r.changes == 0 {
        "This change would change nothing that runs."
    } else {
        "This change would do the following when merged:"
    };
    format!(
        "### Berth plan for `{}`\n\n{head}\n\n```diff\n{}\n```\n\n<sub>{}. Updated on every push to this merge request.</sub>\n",
        sha.chars().take(12).collect::<String>(),
        r.text.trim_end(),
        r.description
    )
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
        let known = crate::store::blocking(|| store.mr_note(project, iid))
            .ok()
            .flatten();
        let id = gitlab
            .upsert_mr_note(project, iid, known, &note(sha, r))
            .await?;
        if known != Some(id) {
            let _ = crate::store::blocking(|| store.set_mr_note(project, iid, id));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::RejectReason;

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
