//! A JSON Schema (as `reconciler schema` prints it) as a Markdown reference:
//! one section per object type, a table of its keys with type, default and
//! the doc comment the schema carries. The documentation site's site.yaml
//! and workspace.yaml references are generated with it, so they cannot
//! drift from the types.

use serde_json::Value;
use std::fmt::Write;

/// The reference for `schema`, titled `title`.
pub fn render(title: &str, schema: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {title}\n");
    let _ = writeln!(
        out,
        "Generated from the JSON Schema (`reconciler schema{}`); every key, its type, its default and what it does.\n",
        if title.contains("site") {
            " --site"
        } else {
            ""
        }
    );
    if let Some(d) = schema["description"].as_str() {
        let _ = writeln!(out, "{d}\n");
    }
    section(&mut out, "Top level", schema);
    if let Some(defs) = schema["definitions"].as_object() {
        for (name, def) in defs {
            if def["properties"].is_object() {
                section(&mut out, name, def);
            } else {
                let _ = writeln!(out, "## {name}\n");
                let _ = writeln!(out, "{}\n", describe_value(def));
                if let Some(d) = def["description"].as_str() {
                    let _ = writeln!(out, "{}\n", one_line(d));
                }
            }
        }
    }
    out
}

fn section(out: &mut String, name: &str, object: &Value) {
    let _ = writeln!(out, "## {name}\n");
    if name != "Top level"
        && let Some(d) = object["description"].as_str()
    {
        let _ = writeln!(out, "{}\n", one_line(d));
    }
    let Some(props) = object["properties"].as_object() else {
        return;
    };
    let required: Vec<&str> = object["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let _ = writeln!(out, "| key | type | default | |\n|---|---|---|---|");
    for (key, p) in props {
        let default = match &p["default"] {
            Value::Null if required.contains(&key.as_str()) => "*required*".to_string(),
            Value::Null => String::new(),
            d => format!("`{}`", compact(d)),
        };
        let _ = writeln!(
            out,
            "| `{key}` | {} | {} | {} |",
            type_of(p),
            cell(&default),
            cell(&one_line(p["description"].as_str().unwrap_or_default()))
        );
    }
    let _ = writeln!(out);
}

/// `string`, `integer`, a link to a definition, a list of either, `… or null`.
fn type_of(p: &Value) -> String {
    if let Some(r) = p["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("[{name}](#{})", name.to_lowercase());
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = p[key].as_array() {
            let kinds: Vec<String> = list
                .iter()
                .filter(|v| v["type"] != "null")
                .map(type_of)
                .collect();
            let nullable = list.iter().any(|v| v["type"] == "null");
            let joined = kinds.join(" or ");
            return if nullable {
                format!("{joined} (optional)")
            } else {
                joined
            };
        }
    }
    if let Some(values) = p["enum"].as_array() {
        return values
            .iter()
            .map(|v| format!("`{}`", compact(v)))
            .collect::<Vec<_>>()
            .join(", ");
    }
    match &p["type"] {
        Value::String(t) if t == "array" => format!("list of {}", type_of(&p["items"])),
        Value::String(t) if t == "object" && p["additionalProperties"].is_object() => {
            format!("map of {}", type_of(&p["additionalProperties"]))
        }
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".into(),
    }
}

fn describe_value(def: &Value) -> String {
    format!("Type: {}.", type_of(def))
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Doc comments wrap; a table cell is one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_the_site_schema_is_in_its_reference() {
        let schema = berth_spec::schema::site();
        let text = render("site.yaml reference", &schema);
        for key in ["state_dir", "trusted_proxies", "console", "ldap"] {
            assert!(text.contains(&format!("| `{key}` |")), "{key}");
        }
        assert!(text.contains("## Console"), "{text}");
        assert!(text.contains("[Console](#console)"), "links to definitions");
    }
}
