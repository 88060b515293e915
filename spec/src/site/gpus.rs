//! The GPU part of `site.yaml`: each Docker host's lendable cards (whole
//! cards and MIG instances, by the id dockerd's device requests take) and
//! `policy.gpus`, how grants are timed. A group's default grant length,
//! its maximum and its cap on cards held at once are quota fields
//! (`gpu_time`, `gpu_time_max`, `gpus_at_once`).

use crate::located::Located;
use crate::quantity::Memory;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One lendable device of a host.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuCard {
    /// What dockerd is given: an index (`0`) or a UUID (`GPU-…`, or
    /// `MIG-…` for a MIG instance).
    pub id: Located<String>,
    /// A model name students may ask for (`resources.gpu_model`), e.g.
    /// `A100` or `A100 1g.10gb`.
    pub model: Located<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Located<Memory>>,
    /// MIG instances of this card, lendable one by one; while any is lent
    /// the whole card is not, and the other way round.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mig: Vec<MigInstance>,
}

/// A MIG instance: its own device for lending; its metrics are keyed by
/// the parent card's UUID and this instance id (`GPU_I_ID`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigInstance {
    /// `MIG-…` UUID.
    pub id: Located<String>,
    pub model: Located<String>,
    /// The GPU instance id (`GPU_I_ID` in DCGM's metrics).
    pub instance: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Located<Memory>>,
}

/// A lendable device as lending sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lendable {
    pub id: String,
    pub model: String,
    /// The whole card's id, for a MIG instance.
    pub parent: Option<String>,
    /// Its `GPU_I_ID`, for a MIG instance.
    pub instance: Option<u32>,
}

/// The model name of cards listed only by count (`gpus: N`).
pub const UNNAMED_MODEL: &str = "gpu";

/// Every lendable device of a host: the listed cards and their MIG
/// instances, or `0`..`count-1` when only a count is given.
pub fn lendable(count: u32, cards: &[GpuCard]) -> Vec<Lendable> {
    if cards.is_empty() {
        return (0..count)
            .map(|i| Lendable {
                id: i.to_string(),
                model: UNNAMED_MODEL.into(),
                parent: None,
                instance: None,
            })
            .collect();
    }
    cards
        .iter()
        .flat_map(|c| {
            std::iter::once(Lendable {
                id: c.id.value.clone(),
                model: c.model.value.clone(),
                parent: None,
                instance: None,
            })
            .chain(c.mig.iter().map(|m| Lendable {
                id: m.id.value.clone(),
                model: m.model.value.clone(),
                parent: Some(c.id.value.clone()),
                instance: Some(m.instance),
            }))
        })
        .collect()
}

/// How grants are timed and given back.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuPolicy {
    /// How long before a grant ends its holder is told.
    #[serde(default = "default_warn_before")]
    pub warn_before: Located<String>,
    /// The shortest grant worth giving ahead of another group's booking.
    #[serde(default = "default_shortest")]
    pub shortest: Located<String>,
    /// Under this utilisation (percent) a card counts as idle; needs a
    /// host's `gpu_metrics`.
    #[serde(default = "default_idle_below")]
    pub idle_below: f64,
    /// A grant whose cards stay idle this long ends early (its holder is
    /// told `warn_before` ahead); never when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_after: Option<Located<String>>,
    /// Groups whose members may book cards from the console, and for
    /// which groups (`teachers-ml: [ml-2026]`); admins book for any group.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub bookers: std::collections::BTreeMap<String, Vec<String>>,
}

impl Default for GpuPolicy {
    fn default() -> Self {
        GpuPolicy {
            warn_before: default_warn_before(),
            shortest: default_shortest(),
            idle_below: default_idle_below(),
            idle_after: None,
            bookers: Default::default(),
        }
    }
}

fn default_warn_before() -> Located<String> {
    Located::new("15m".to_string())
}

fn default_shortest() -> Located<String> {
    Located::new("30m".to_string())
}

fn default_idle_below() -> f64 {
    5.0
}

/// The default grant when a group's quota names none.
pub const DEFAULT_GRANT: &str = "4h";

/// Longest a grant may be asked for anywhere (a bound on student input).
pub const LONGEST_GRANT_SECS: u64 = 14 * 86_400;

/// Problems of one host's card list: ids unique and well-formed, models
/// named; `count` must be 0 when cards are listed.
pub fn card_problems(count: u32, cards: &[GpuCard]) -> Vec<(crate::diag::Pos, String)> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    if count > 0
        && let Some(c) = cards.first()
    {
        out.push((
            c.id.pos,
            "give `gpus: N` or `gpu_cards`, not both".to_string(),
        ));
    }
    let ids = cards.iter().flat_map(|c| {
        std::iter::once((&c.id, &c.model)).chain(c.mig.iter().map(|m| (&m.id, &m.model)))
    });
    for (id, model) in ids {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == ':');
        if !ok {
            out.push((
                id.pos,
                format!("GPU id `{}` must be an index or a UUID", id.value),
            ));
        }
        if !seen.insert(id.value.clone()) {
            out.push((id.pos, format!("GPU `{}` is listed twice", id.value)));
        }
        if model.trim().is_empty() || model.len() > 64 {
            out.push((model.pos, "a GPU model is 1 to 64 characters".to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(id: &str, mig: &[(&str, u32)]) -> GpuCard {
        GpuCard {
            id: Located::new(id.into()),
            model: Located::new("A100".into()),
            memory: None,
            mig: mig
                .iter()
                .map(|(m, i)| MigInstance {
                    id: Located::new(m.to_string()),
                    model: Located::new("A100 1g.10gb".into()),
                    instance: *i,
                    memory: None,
                })
                .collect(),
        }
    }

    #[test]
    fn a_count_means_whole_cards_by_index_and_mig_instances_lend_on_their_own() {
        let by_count = lendable(2, &[]);
        assert_eq!(
            by_count.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(),
            ["0", "1"]
        );
        let listed = lendable(0, &[card("GPU-a", &[("MIG-a1", 1), ("MIG-a2", 2)])]);
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[1].parent.as_deref(), Some("GPU-a"));
        assert_eq!(listed[2].instance, Some(2));
    }

    #[test]
    fn ids_are_unique_and_plain_and_a_host_gives_a_count_or_cards() {
        let problems = card_problems(1, &[card("GPU-a", &[("GPU-a", 1)]), card("a b", &[])]);
        let text: Vec<&str> = problems.iter().map(|(_, m)| m.as_str()).collect();
        assert!(
            text.contains(&"give `gpus: N` or `gpu_cards`, not both"),
            "{text:?}"
        );
        assert!(text.contains(&"GPU `GPU-a` is listed twice"), "{text:?}");
        assert!(
            text.contains(&"GPU id `a b` must be an index or a UUID"),
            "{text:?}"
        );
    }
}
