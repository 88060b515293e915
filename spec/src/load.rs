//! Strict YAML loading for both file kinds: size, encoding, depth, alias and
//! document limits, duplicate keys, and the translation of every parser or
//! serde error into a `Diagnostic` with `line:col` and a specific message
//! (unknown fields get a "did you mean" and forbidden ones say why).

use crate::diag::{Diagnostics, Pos};
use crate::located::Located;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{Budget, DuplicateKeyPolicy, Error as YamlError, Options};

/// Hard limits applied before and during parsing. A workspace file is a few
/// dozen lines; these leave ample room while bounding work and memory.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_aliases: usize,
    pub max_anchors: usize,
    /// Nodes an alias expansion may replay in total (alias-bomb guard).
    pub max_replayed_events: usize,
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 256 * 1024,
            max_depth: 32,
            max_aliases: 64,
            max_anchors: 64,
            max_replayed_events: 4_096,
            max_nodes: 50_000,
        }
    }
}

/// The file kinds, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Workspace,
    Site,
}

impl Kind {
    fn file(self) -> &'static str {
        match self {
            Kind::Workspace => "workspace.yaml",
            Kind::Site => "site.yaml",
        }
    }
}

/// Parses `bytes` as one YAML document into `T`, strictly.
pub fn load<T: DeserializeOwned>(
    bytes: &[u8],
    kind: Kind,
    limits: Limits,
) -> Result<T, Diagnostics> {
    let text = precheck(bytes, kind, limits)?;
    if kind == Kind::Workspace {
        check_version(text, kind, limits)?;
    }
    serde_saphyr::from_str_with_options(text, options(limits)).map_err(|e| translate(&e, kind))
}

/// Size and encoding, before the parser sees anything.
fn precheck(bytes: &[u8], kind: Kind, limits: Limits) -> Result<&str, Diagnostics> {
    if bytes.len() > limits.max_bytes {
        return Err(Diagnostics::one(
            Pos::START,
            format!(
                "file is {} bytes; {} is limited to {} bytes",
                bytes.len(),
                kind.file(),
                limits.max_bytes
            ),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let col = valid.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
        Diagnostics::one(
            Pos::new(line as u32, col as u32),
            format!(
                "file is not valid UTF-8 (invalid byte 0x{:02x})",
                bytes[e.valid_up_to()]
            ),
        )
    })?;
    if text.contains('\0') {
        let (line, col) = line_col(text, text.find('\0').unwrap_or(0));
        return Err(Diagnostics::one(
            Pos::new(line, col),
            "file contains a NUL character",
        ));
    }
    Ok(text)
}

fn line_col(text: &str, byte: usize) -> (u32, u32) {
    let before = &text[..byte];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line as u32, col as u32)
}

/// Reads only `version` first, so an unknown version is reported as such and
/// not as a pile of unknown-field errors from a future format.
fn check_version(text: &str, kind: Kind, limits: Limits) -> Result<(), Diagnostics> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        version: Option<Located<serde_json::Value>>,
    }
    let probe: Probe = serde_saphyr::from_str_with_options(text, options(limits))
        .map_err(|e| translate(&e, kind))?;
    let supported = crate::workspace::SUPPORTED_VERSIONS
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match probe.version {
        None => Err(Diagnostics::one(
            Pos::START,
            format!("missing `version`; supported versions: {supported}"),
        )),
        Some(v) => match v.value.as_u64() {
            Some(n) if crate::workspace::SUPPORTED_VERSIONS.contains(&n) => Ok(()),
            _ => Err(Diagnostics::one(
                v.pos,
                format!(
                    "unsupported version `{}`; supported versions: {supported}",
                    v.value
                ),
            )),
        },
    }
}

fn options(limits: Limits) -> Options {
    let mut budget = Budget::default();
    budget.max_depth = limits.max_depth;
    budget.max_aliases = limits.max_aliases;
    budget.max_anchors = limits.max_anchors;
    budget.max_documents = 1;
    budget.max_nodes = limits.max_nodes;
    budget.max_reader_input_bytes = Some(limits.max_bytes);
    let mut options = Options::default();
    options.budget = Some(budget);
    options.duplicate_keys = DuplicateKeyPolicy::Error;
    options.alias_limits.max_total_replayed_events = limits.max_replayed_events;
    options.alias_limits.max_replay_stack_depth = 8;
    options.strict_booleans = true;
    options.with_snippet = false;
    options
}

/// Fields that no spec has, with the reason they never will. Naming them
/// gets a policy answer instead of a generic "unknown field".
const FORBIDDEN: &[(&str, &str)] = &[
    ("privileged", "privileged mode is never allowed"),
    ("cap_add", "capabilities cannot be added"),
    ("capabilities", "capabilities cannot be added"),
    (
        "devices",
        "devices cannot be mapped; ask for GPUs with `resources.gpus`",
    ),
    (
        "network_mode",
        "host and shared namespaces are never available",
    ),
    (
        "host_network",
        "host and shared namespaces are never available",
    ),
    (
        "hostNetwork",
        "host and shared namespaces are never available",
    ),
    ("pid", "host and shared namespaces are never available"),
    ("ipc", "host and shared namespaces are never available"),
    ("security_opt", "security options are set by the site"),
    (
        "namespace",
        "the namespace is always your own (`<prefix><account>`) and cannot be chosen",
    ),
    (
        "host_path",
        "host paths are never mounted; volumes are named per-account volumes (`name` + `path`)",
    ),
    (
        "hostPath",
        "host paths are never mounted; volumes are named per-account volumes (`name` + `path`)",
    ),
    (
        "source",
        "host paths are never mounted; volumes are named per-account volumes (`name` + `path`)",
    ),
    (
        "bind",
        "host paths are never mounted; volumes are named per-account volumes (`name` + `path`)",
    ),
    (
        "token",
        "secrets never go in site.yaml; name an environment variable with `token_env`",
    ),
    (
        "password",
        "secrets never go in site.yaml; name an environment variable (`…_env`)",
    ),
    (
        "bind_password",
        "secrets never go in site.yaml; name an environment variable with `bind_password_env`",
    ),
    (
        "webhook_secret",
        "secrets never go in site.yaml; name an environment variable with `webhook_secret_env`",
    ),
];

fn pos_of(loc: Option<serde_saphyr::Location>) -> Pos {
    loc.filter(|l| l.line() > 0)
        .map(|l| {
            Pos::new(
                u32::try_from(l.line()).unwrap_or(u32::MAX),
                u32::try_from(l.column()).unwrap_or(u32::MAX),
            )
        })
        .unwrap_or(Pos::START)
}

fn translate(err: &YamlError, kind: Kind) -> Diagnostics {
    let err = err.without_snippet();
    let pos = pos_of(err.location());
    Diagnostics::one(pos, message(err, kind))
}

fn message(err: &YamlError, kind: Kind) -> String {
    match err {
        YamlError::WithSnippet { error, .. } => message(error, kind),
        YamlError::AliasError { error, .. } => message(error, kind),
        YamlError::AliasReplayLimitExceeded { .. }
        | YamlError::AliasExpansionLimitExceeded { .. }
        | YamlError::AliasReplayStackDepthExceeded { .. }
        | YamlError::AliasReplayCounterOverflow { .. } => {
            "aliases expand beyond the budget (an alias bomb?); write the values out".to_string()
        }
        YamlError::MultipleDocuments { .. }
        | YamlError::Budget {
            breach: BudgetBreach::Documents { .. },
            ..
        } => format!("multiple YAML documents; {} holds exactly one", kind.file()),
        YamlError::Budget { breach, .. } => budget_message(breach),
        YamlError::DuplicateMappingKey { key, .. } => match key {
            Some(k) => format!("duplicate key `{k}`"),
            None => "duplicate key".to_string(),
        },
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => unknown_field(field, expected),
        YamlError::SerdeUnknownVariant {
            variant, expected, ..
        } => format!(
            "unknown value `{variant}`, expected {}{}",
            one_of(expected),
            suggest(variant, expected)
        ),
        YamlError::SerdeMissingField { field, .. } => format!("missing field `{field}`"),
        YamlError::NonFiniteFloat { .. } => {
            "not a finite number (`.nan` and `.inf` are not allowed)".to_string()
        }
        YamlError::InvalidScalar { ty, .. } => scalar_message(ty),
        YamlError::NullIntoString { .. } => {
            "expected a string, found nothing (write `\"\"` for an empty value)".to_string()
        }
        YamlError::Unexpected { expected, .. } => format!(
            "expected {}",
            expected
                .replace("mapping start", "a mapping (`key: value`)")
                .replace("sequence start", "a list")
        ),
        other => {
            let text = strip_location(&other.to_string());
            // The parser reports flow nesting beyond its limit this way.
            if text.contains("recursion limit") {
                budget_message(&BudgetBreach::Depth { depth: 0 })
            } else {
                text
            }
        }
    }
}

fn scalar_message(ty: &str) -> String {
    match ty {
        "u8" | "u16" | "u32" | "u64" | "usize" => "expected a whole number ≥ 0".to_string(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "expected a whole number".to_string(),
        "f32" | "f64" => "expected a number".to_string(),
        "bool" => "expected `true` or `false`".to_string(),
        other => format!("expected a value of type {other}"),
    }
}

fn budget_message(breach: &BudgetBreach) -> String {
    let limits = Limits::default();
    match breach {
        BudgetBreach::Depth { .. } => {
            format!("nesting deeper than {} levels", limits.max_depth)
        }
        BudgetBreach::Aliases { .. } => format!("more than {} aliases", limits.max_aliases),
        BudgetBreach::Anchors { .. } => format!("more than {} anchors", limits.max_anchors),
        BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => {
            format!("more than {} YAML nodes", limits.max_nodes)
        }
        other => format!("YAML budget exceeded: {other:?}"),
    }
}

fn unknown_field(field: &str, expected: &[&str]) -> String {
    if let Some((_, why)) = FORBIDDEN.iter().find(|(name, _)| *name == field) {
        return format!("`{field}` is not allowed: {why}");
    }
    format!("unknown field `{field}`{}", {
        let s = suggest(field, expected);
        if s.is_empty() {
            format!(", expected {}", one_of(expected))
        } else {
            s
        }
    })
}

fn one_of(expected: &[&str]) -> String {
    match expected {
        [] => "nothing here".to_string(),
        [one] => format!("`{one}`"),
        _ => format!(
            "one of {}",
            expected
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// ", did you mean `x`?" for the closest name within a small edit distance.
pub(crate) fn suggest(given: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(given, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| format!(", did you mean `{k}`?"))
        .unwrap_or_default()
}

/// The parser appends " at line L, column C"; we print the position in front.
fn strip_location(msg: &str) -> String {
    let first = msg.lines().next().unwrap_or(msg);
    match first.rfind(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}
