//! Rendering of plans, apply reports and status: human text that reads like
//! `terraform plan`, and the stable JSON shapes documented in
//! `docs/json-output.md`. The JSON types here are the contract; internal
//! types are mapped onto them so refactors cannot change the output.

use crate::engine::reconcile::{AccountPlan, Decision, short};

use crate::clients::ReconcileError;
use berth_core::plan::{Action, Change};
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub create: usize,
    pub recreate: usize,
    /// Kubernetes objects updated in place by server-side apply.
    pub update: usize,
    pub remove: usize,
    pub start: usize,
    pub stop: usize,
    pub setup: usize,
    pub rejected: usize,
    pub errors: usize,
}

impl Summary {
    pub fn changes(&self) -> usize {
        self.create
            + self.recreate
            + self.update
            + self.remove
            + self.start
            + self.stop
            + self.setup
    }
}

#[derive(Debug, Serialize)]
pub struct JsonChange {
    pub action: &'static str,
    pub target: String,
    pub fields: Vec<Change>,
}

#[derive(Debug, Serialize)]
pub struct JsonAccount {
    pub account: String,
    pub endpoint: Option<String>,
    pub revision: Option<String>,
    pub decision: Option<Decision>,
    pub disabled: bool,
    pub changes: Vec<JsonChange>,
    pub warnings: Vec<String>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct JsonPlan {
    pub accounts: Vec<JsonAccount>,
    pub summary: Summary,
}

fn fields_of(action: &Action) -> Vec<Change> {
    match action {
        Action::Create { container } => container
            .spec
            .fields()
            .into_iter()
            .map(|(field, new)| Change {
                field,
                old: None,
                new: Some(new),
            })
            .collect(),
        Action::Recreate { changes, .. } | Action::KubeApply { changes, .. } => changes.clone(),
        _ => vec![],
    }
}

pub fn summarize(plans: &[(String, Result<AccountPlan, ReconcileError>)]) -> Summary {
    let mut s = Summary::default();
    for (_, plan) in plans {
        let Ok(plan) = plan else {
            s.errors += 1;
            continue;
        };
        if matches!(plan.decision, Decision::Reject { .. }) {
            s.rejected += 1;
        }
        for a in &plan.actions {
            match a {
                Action::Create { .. } => s.create += 1,
                Action::Recreate { .. } => s.recreate += 1,
                Action::KubeApply { create: true, .. } => s.create += 1,
                Action::KubeApply { create: false, .. } | Action::UpdateRunnerConfig { .. } => {
                    s.update += 1
                }
                Action::Remove { .. } | Action::KubeDelete { .. } => s.remove += 1,
                Action::Start { .. } => s.start += 1,
                Action::Stop { .. } => s.stop += 1,
                Action::CreateNetwork { .. }
                | Action::CreateVolume { .. }
                | Action::RegisterRunner { .. }
                | Action::UnregisterRunner { .. } => s.setup += 1,
            }
        }
    }
    s
}

pub fn plan_json(plans: &[(String, Result<AccountPlan, ReconcileError>)]) -> JsonPlan {
    let accounts = plans
        .iter()
        .map(|(account, plan)| match plan {
            Ok(p) => JsonAccount {
                account: account.clone(),
                endpoint: p.endpoint.clone(),
                revision: p.revision.clone(),
                decision: Some(p.decision.clone()),
                disabled: p.disabled,
                changes: p
                    .actions
                    .iter()
                    .map(|a| JsonChange {
                        action: a.kind(),
                        target: a.target().to_string(),
                        fields: fields_of(a),
                    })
                    .collect(),
                warnings: p.warnings.clone(),
                error: None,
            },
            Err(e) => JsonAccount {
                account: account.clone(),
                endpoint: None,
                revision: None,
                decision: None,
                disabled: false,
                changes: vec![],
                warnings: vec![],
                error: Some(e.to_string()),
            },
        })
        .collect();
    JsonPlan {
        accounts,
        summary: summarize(plans),
    }
}

fn quote(v: &Option<String>) -> String {
    match v {
        Some(v) => format!("{v:?}"),
        None => "(none)".to_string(),
    }
}

/// `terraform plan`-like text.
pub fn plan_text(plans: &[(String, Result<AccountPlan, ReconcileError>)]) -> String {
    let mut out = String::new();
    for (account, plan) in plans {
        let p = match plan {
            Ok(p) => p,
            Err(e) => {
                let _ = writeln!(out, "{account}: error: {e}");
                continue;
            }
        };
        let mut head = account.clone();
        match &p.decision {
            Decision::NoRepository if p.actions.is_empty() => {
                let _ = writeln!(out, "{account}: no workspace repository (nothing touched)");
                continue;
            }
            Decision::NoRepository => {
                let _ = write!(head, " (no workspace repository");
            }
            Decision::NoWorkspace => {
                let _ = writeln!(
                    out,
                    "{account}: no workspace.yaml and nothing accepted (not managed)"
                );
                continue;
            }
            Decision::Accept { revision, commits } => {
                let _ = write!(
                    head,
                    " (accepting {} — {commits} new commit(s)",
                    short(revision)
                );
            }
            Decision::AwaitingPush { revision } => {
                let _ = writeln!(
                    out,
                    "{account}: revision {} awaits an authenticated push",
                    short(revision)
                );
                match &p.revision {
                    Some(kept) => {
                        let _ = write!(head, " (keeping {}", short(kept));
                    }
                    None => continue,
                }
            }
            Decision::Unchanged => {
                let _ = write!(
                    head,
                    " (revision {}",
                    p.revision.as_deref().map(short).unwrap_or("-")
                );
            }
            Decision::Reject { revision, reason } => {
                let _ = writeln!(
                    out,
                    "{account}: ! revision {} rejected: {reason}",
                    short(revision)
                );
                match &p.revision {
                    Some(kept) => {
                        let _ = write!(head, " (keeping {}", short(kept));
                    }
                    None => continue,
                }
            }
        }
        if let Some(ep) = &p.endpoint {
            let _ = write!(head, ", on {ep}");
        }
        if p.disabled {
            head.push_str(", account stopped: containers stopped");
        }
        head.push(')');
        for w in &p.warnings {
            let _ = writeln!(out, "{account}: warning: {w}");
        }
        if p.actions.is_empty() {
            let _ = writeln!(out, "{head}: no changes");
            continue;
        }
        let _ = writeln!(out, "{head}");
        for a in &p.actions {
            let line = match a {
                Action::CreateNetwork { name } => format!("  + network {name}"),
                Action::CreateVolume { name } => format!("  + volume {name}"),
                Action::Create { container } => format!("  + create {}", container.full_name),
                Action::Recreate { container, .. } => {
                    format!("  ~ recreate {}", container.full_name)
                }
                Action::Remove { name, .. } => format!("  - remove {name} (volumes kept)"),
                Action::Start { name, .. } => format!("  > start {name}"),
                Action::Stop { name, .. } => format!("  < stop {name}"),
                Action::RegisterRunner { tags, .. } => {
                    format!("  + register GitLab runner (tags: {})", tags.join(", "))
                }
                Action::UnregisterRunner { id } => format!("  - unregister GitLab runner {id}"),
                Action::UpdateRunnerConfig { name, .. } => {
                    format!("  ~ update {name} config.toml in place (allowed images)")
                }
                Action::KubeApply {
                    target,
                    create: true,
                    ..
                } => format!("  + create {target} (kubernetes)"),
                Action::KubeApply { target, .. } => format!("  ~ update {target} (kubernetes)"),
                Action::KubeDelete { target, kind, .. } if kind == "Deployment" => {
                    format!("  - delete {target} (kubernetes; volume claims kept)")
                }
                Action::KubeDelete { target, .. } => format!("  - delete {target} (kubernetes)"),
            };
            let _ = writeln!(out, "{line}");
            for c in fields_of(a) {
                let _ = match (&c.old, &c.new) {
                    (None, Some(new)) => writeln!(out, "      {}: {new}", c.field),
                    _ => writeln!(
                        out,
                        "      {}: {} → {}",
                        c.field,
                        quote(&c.old),
                        quote(&c.new)
                    ),
                };
            }
        }
    }
    let s = summarize(plans);
    let _ = writeln!(
        out,
        "\nPlan: {} to create, {} to recreate, {} to update, {} to remove, {} to start, {} to stop. {} revision(s) rejected, {} error(s).",
        s.create, s.recreate, s.update, s.remove, s.start, s.stop, s.rejected, s.errors
    );
    out
}
