//! Every file in `examples/` is valid, the workspaces pass the example
//! site's policy for `alice` (a student), and the committed JSON Schemas are
//! exactly what the types generate.

use berth_spec::{parse_site, parse_workspace, policy};
use std::path::{Path, PathBuf};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

#[test]
fn every_example_is_valid_and_within_policy() {
    let site = parse_site(&std::fs::read(examples().join("site.yaml")).expect("site.yaml"))
        .expect("example site is valid");
    let mut workspaces = 0;
    for entry in std::fs::read_dir(examples()).expect("examples/") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !name.ends_with(".yaml") || name.starts_with("site") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("readable");
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.contains("# yaml-language-server: $schema=./workspace.schema.json"),
            "{name} lacks the schema line"
        );
        let ws = parse_workspace(&bytes).unwrap_or_else(|d| panic!("{name}: {d}"));
        policy::check(&ws, &site, "alice", &["students".to_string()])
            .unwrap_or_else(|d| panic!("{name}: {d}"));
        workspaces += 1;
    }
    assert!(workspaces >= 4, "only {workspaces} example workspaces");
}

#[test]
fn committed_schemas_match_the_types() {
    for (file, schema) in [
        ("workspace.schema.json", berth_spec::schema::workspace()),
        ("site.schema.json", berth_spec::schema::site()),
    ] {
        let committed: serde_json::Value = serde_json::from_slice(
            &std::fs::read(examples().join(file)).expect("schema committed"),
        )
        .expect("schema is JSON");
        assert!(
            committed == schema,
            "{file} is stale: run `reconciler schema` (with `--site` for site.schema.json) > examples/{file}"
        );
    }
}

#[test]
fn workspace_schema_describes_the_fields_students_write() {
    let schema = berth_spec::schema::workspace();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(schema["additionalProperties"], false);
    let container = &schema["definitions"]["Container"];
    for field in [
        "name",
        "image",
        "backend",
        "command",
        "env",
        "ports",
        "resources",
        "volumes",
        "state",
    ] {
        assert!(
            container["properties"].get(field).is_some(),
            "schema lacks {field}"
        );
    }
    assert_eq!(container["additionalProperties"], false);
    assert!(
        schema["required"]
            .as_array()
            .is_some_and(|r| r.contains(&"version".into()))
    );
}
