//! Colour for terminals, the way terraform colours a plan: `+` green, `~`
//! yellow, `-` red, errors red, warnings yellow, the summary bold. On only
//! when stdout is a terminal (or `--color always`), never with `NO_COLOR`
//! or `--color never`; scripts and logs get plain text.

use std::sync::OnceLock;

static ENABLED: OnceLock<bool> = OnceLock::new();

/// When to colour.
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum When {
    #[default]
    Auto,
    Always,
    Never,
}

/// Decides once, at start.
pub fn init(when: When) {
    let on = match when {
        When::Always => true,
        When::Never => false,
        When::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::IsTerminal::is_terminal(&std::io::stdout())
        }
    };
    let _ = ENABLED.set(on);
}

pub fn enabled() -> bool {
    ENABLED.get().copied().unwrap_or(false)
}

const RESET: &str = "\x1b[0m";

/// The ANSI colour of one line of plan or report text, if any.
fn colour_of(line: &str) -> Option<&'static str> {
    let t = line.trim_start();
    if line.contains(": error:") || t.starts_with("error") || line.contains(": ! ") {
        Some("\x1b[31;1m")
    } else if line.contains(": warning:") {
        Some("\x1b[33m")
    } else if t.starts_with("+ ") {
        Some("\x1b[32m")
    } else if t.starts_with("~ ") {
        Some("\x1b[33m")
    } else if t.starts_with("- ") {
        Some("\x1b[31m")
    } else if let Some(c) = applied_colour(line) {
        Some(c)
    } else if t.starts_with("> ") || t.starts_with("< ") {
        Some("\x1b[36m")
    } else if ["Plan:", "Apply:", "Gc:", "Drain:", "Export:"]
        .iter()
        .any(|s| t.starts_with(s))
    {
        Some("\x1b[1m")
    } else {
        None
    }
}

/// An `apply` result line, `account: <action> …`, coloured by what the
/// action did, like the plan's marks: made green, changed yellow, taken
/// away red.
fn applied_colour(line: &str) -> Option<&'static str> {
    let (account, rest) = line.split_once(": ")?;
    if account.is_empty() || account.contains(char::is_whitespace) {
        return None;
    }
    let action = rest.split(' ').next()?;
    match action {
        "recreate" | "kube_update" | "update_runner_config" => Some("\x1b[33m"),
        "remove" | "stop" | "unregister_runner" | "kube_delete" => Some("\x1b[31m"),
        "start" | "register_runner" | "kube_create" | "built" => Some("\x1b[32m"),
        a if a.starts_with("create") => Some("\x1b[32m"),
        _ => None,
    }
}

/// `text` with each line coloured when `on`.
pub fn paint_with(text: &str, on: bool) -> String {
    if !on {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        match colour_of(body) {
            Some(c) if !body.is_empty() => {
                out.push_str(c);
                out.push_str(body);
                out.push_str(RESET);
            }
            _ => out.push_str(body),
        }
        out.push_str(nl);
    }
    out
}

/// `text` coloured if this process colours.
pub fn paint(text: &str) -> String {
    paint_with(text, enabled())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::reconcile::{AccountPlan, Decision};
    use berth_core::plan::Action;

    fn plans() -> Vec<(String, Result<AccountPlan, crate::clients::ReconcileError>)> {
        let mut p = AccountPlan::new("alice", Some("alice/workspace".into()));
        p.decision = Decision::Accept {
            revision: "0123456789abcdef".into(),
            commits: 2,
        };
        p.endpoint = Some("local".into());
        p.warnings = vec!["image `r/bob/x` is no longer shared".into()];
        p.actions = vec![
            Action::CreateNetwork {
                name: "berth-alice".into(),
            },
            Action::Remove {
                id: "c1".into(),
                name: "alice--old".into(),
            },
            Action::Start {
                id: "c2".into(),
                name: "alice--web".into(),
            },
        ];
        vec![("alice".into(), Ok(p))]
    }

    #[test]
    fn plan_text_plain_and_coloured() {
        let text = crate::ops::report::plan_text(&plans());
        insta::assert_snapshot!("plan_plain", text);
        insta::assert_snapshot!("plan_coloured", paint_with(&text, true));
        assert_eq!(
            paint_with(&text, false),
            text,
            "no colour means no escape codes"
        );
    }

    #[test]
    fn plan_json() {
        let json =
            serde_json::to_string_pretty(&crate::ops::report::plan_json(&plans())).expect("json");
        insta::assert_snapshot!("plan_json", json);
    }

    #[test]
    fn apply_lines_are_coloured_by_meaning() {
        let lines = "bob: ! revision 0123 rejected: workspace.yaml:5:5: unknown field\nalice: error: dockerd unreachable\ncarol: built registry.test/carol/web in 3.2 s\ndan: ! build of registry.test/dan/web failed after 1.0 s\ncarol: accepted 0123456789ab\ncarol: create_network berth-carol\ncarol: create carol--web\ncarol: recreate carol--db\ncarol: kube_update berth-carol/api\ncarol: remove carol--old\ncarol: kube_delete berth-carol/old\nApply: 2/2 account(s) in 1.0 s: 1 created, 0 recreated, 0 removed, 1 failed.\n";
        insta::assert_snapshot!("apply_coloured", paint_with(lines, true));
    }
}
