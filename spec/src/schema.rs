//! JSON Schema of `workspace.yaml` and `site.yaml`, generated from the types
//! (never written by hand). Draft-07, the dialect yaml-language-server
//! understands best.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;

fn schema_for<T: JsonSchema>() -> serde_json::Value {
    let schema = SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<T>();
    schema.to_value()
}

/// Schema for editors: `# yaml-language-server: $schema=workspace.schema.json`.
pub fn workspace() -> serde_json::Value {
    schema_for::<crate::Workspace>()
}

pub fn site() -> serde_json::Value {
    schema_for::<crate::Site>()
}
