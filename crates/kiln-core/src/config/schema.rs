//! The JSON Schema of `kiln.yaml`, generated from the same types the parser fills,
//! for editors and for the structure check that reports unknown keys and wrong types.

use super::model::Config;

/// JSON Schema (draft 2020-12) of `kiln.yaml`, with the doc comments as descriptions.
pub fn schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Config);
    schema.insert("title".to_string(), "kiln.yaml".into());
    schema.to_value()
}
