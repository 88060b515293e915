//! Drift between an object Berth applies and the object the API server
//! holds, with server-side-apply semantics. Only the fields Berth sets are
//! compared, so everything the server defaults or other managers add
//! (`imagePullPolicy`, `clusterIP`, `protocol: TCP`, annotations, status) is
//! never drift; list items are matched by their merge key (`name`,
//! `containerPort`, …) like SSA does; quantities compare by value (`512Mi`
//! equals `536870912`, `1` equals `1000m`); and an empty list or map Berth
//! sends equals an absent one (the server drops them).

use crate::plan::Change;
use serde_json::Value;

/// Paths never compared: Berth's own bookkeeping that changes without the
/// object needing an update.
const IGNORED: &[&str] = &["metadata.labels.berth.revision"];

/// Map keys whose values are resource quantities.
const QUANTITY_MAPS: &[&str] = &[
    "limits",
    "requests",
    "hard",
    "default",
    "defaultRequest",
    "max",
    "min",
];

/// Keys that identify an item of a list of objects, in the order tried.
const MERGE_KEYS: &[&str] = &["name", "containerPort", "port", "mountPath", "host", "type"];

/// Fields Berth sets whose live value differs (or is missing).
pub fn drift(desired: &Value, live: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk("", "", desired, Some(live), false, &mut out);
    out
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `key` is the map key `d` sits under; `quantity` says whether that map
/// holds resource quantities.
fn walk(
    path: &str,
    key: &str,
    d: &Value,
    l: Option<&Value>,
    quantity: bool,
    out: &mut Vec<Change>,
) {
    if is_empty(d) || IGNORED.contains(&path) {
        return;
    }
    match d {
        Value::Object(fields) => {
            let live = l.and_then(Value::as_object);
            let holds_quantities = QUANTITY_MAPS.contains(&key);
            for (k, dv) in fields {
                let lv = live.and_then(|o| o.get(k));
                walk(&join(path, k), k, dv, lv, holds_quantities, out);
            }
        }
        Value::Array(items) => match merge_key(items) {
            Some(key) => {
                let live: &[Value] = l.and_then(Value::as_array).map_or(&[], Vec::as_slice);
                for item in items {
                    let id = &item[key];
                    let at = format!("{path}[{}]", show(id));
                    let found = live.iter().find(|x| &x[key] == id);
                    walk(&at, key, item, found, false, out);
                }
            }
            None => {
                if l != Some(d) {
                    out.push(Change {
                        field: path.to_string(),
                        old: l.filter(|v| !v.is_null()).map(show),
                        new: Some(show(d)),
                    });
                }
            }
        },
        scalar => {
            let same = match l {
                Some(lv) => scalar_eq(quantity, scalar, lv),
                None => false,
            };
            if !same {
                out.push(Change {
                    field: path.to_string(),
                    old: l.filter(|v| !v.is_null()).map(show),
                    new: Some(show(scalar)),
                });
            }
        }
    }
}

/// The merge key of a list, if its items are objects that all carry one.
fn merge_key(items: &[Value]) -> Option<&'static str> {
    MERGE_KEYS
        .iter()
        .copied()
        .find(|k| items.iter().all(|i| i.get(*k).is_some()))
}

fn scalar_eq(quantity: bool, d: &Value, l: &Value) -> bool {
    if d == l {
        return true;
    }
    match (d, l) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(a), Value::String(b)) if quantity => {
            match (parse_quantity(a), parse_quantity(b)) {
                (Some(x), Some(y)) => (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()) * 4.0,
                _ => false,
            }
        }
        _ => false,
    }
}

/// A Kubernetes resource quantity as a number: `1.5Gi`, `500m`, `1e3`, `2k`.
pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let base: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        "Pi" => 1024.0f64.powi(5),
        "Ei" => 1024.0f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse().ok()?),
        _ => return None,
    };
    Some(base * factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(changes: &[Change]) -> Vec<&str> {
        changes.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn quantities_compare_by_value() {
        assert_eq!(parse_quantity("512Mi"), Some(536_870_912.0));
        assert_eq!(parse_quantity("1"), parse_quantity("1000m"));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("1.5Gi"), Some(1_610_612_736.0));
        assert_eq!(parse_quantity("lots"), None);
        let d = json!({"resources": {"limits": {"memory": "536870912", "cpu": "1000m"}}});
        let l = json!({"resources": {"limits": {"memory": "512Mi", "cpu": "1"}}});
        assert!(drift(&d, &l).is_empty());
        let bigger = json!({"resources": {"limits": {"memory": "1Gi", "cpu": "1"}}});
        assert_eq!(
            fields(&drift(&d, &bigger)),
            ["resources.limits.memory"],
            "a real change is drift"
        );
    }

    #[test]
    fn quantity_rules_do_not_apply_to_other_strings() {
        let d = json!({"env": [{"name": "SIZE", "value": "1k"}]});
        let l = json!({"env": [{"name": "SIZE", "value": "1000"}]});
        assert_eq!(fields(&drift(&d, &l)), ["env[SIZE].value"]);
    }

    #[test]
    fn quota_keys_with_dots_are_still_quantities() {
        let d = json!({"spec": {"hard": {"requests.memory": "1073741824", "pods": "4"}}});
        let l = json!({"spec": {"hard": {"requests.memory": "1Gi", "pods": "4"}}});
        assert!(drift(&d, &l).is_empty());
    }

    #[test]
    fn server_defaults_and_extra_fields_are_not_drift() {
        let d = json!({"spec": {"ports": [{"port": 80, "targetPort": 80}], "selector": {"a": "b"}},
                       "metadata": {"labels": {"berth.owner": "alice"}}});
        let l = json!({"spec": {"ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}],
                                "selector": {"a": "b"}, "clusterIP": "10.0.0.1", "type": "ClusterIP"},
                       "metadata": {"labels": {"berth.owner": "alice"}, "uid": "x", "annotations": {"k": "v"}},
                       "status": {}});
        assert!(drift(&d, &l).is_empty());
    }

    #[test]
    fn empty_lists_berth_sends_equal_absent_ones() {
        let d =
            json!({"containers": [{"name": "web", "env": [], "volumeMounts": []}], "volumes": []});
        let l = json!({"containers": [{"name": "web", "imagePullPolicy": "IfNotPresent"}]});
        assert!(drift(&d, &l).is_empty());
    }

    #[test]
    fn list_items_match_by_merge_key_not_position() {
        let d = json!({"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]});
        let l = json!({"env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]});
        assert!(drift(&d, &l).is_empty());
        let missing = json!({"env": [{"name": "A", "value": "1"}]});
        let got = drift(&d, &missing);
        assert_eq!(fields(&got), ["env[B].name", "env[B].value"]);
    }

    #[test]
    fn atomic_lists_compare_whole() {
        let d = json!({"args": ["serve", "--port", "80"]});
        let l = json!({"args": ["serve"]});
        let got = drift(&d, &l);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].old.as_deref(), Some(r#"["serve"]"#));
    }

    #[test]
    fn the_revision_label_alone_is_not_drift_but_other_labels_are() {
        let d = json!({"metadata": {"labels": {"berth.revision": "new", "berth.spec-hash": "b"}}});
        let l = json!({"metadata": {"labels": {"berth.revision": "old", "berth.spec-hash": "a"}}});
        let got = drift(&d, &l);
        assert_eq!(fields(&got), ["metadata.labels.berth.spec-hash"]);
        assert_eq!(got[0].old.as_deref(), Some("a"));
    }

    #[test]
    fn missing_object_fields_are_reported_as_absent() {
        let d = json!({"spec": {"replicas": 1}});
        let got = drift(&d, &json!({}));
        assert_eq!(got[0].old, None);
        assert_eq!(got[0].new.as_deref(), Some("1"));
    }
}
