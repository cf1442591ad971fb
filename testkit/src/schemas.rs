//! Validation of payloads against the JSON Schemas in `schemas/` (the published MQTT contract).

use serde_json::Value;

const BASE: &str = "https://edge-agent.dev/schemas/";

fn load(file: &str) -> Value {
    let path = crate::workspace_dir().join("schemas").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A compiled validator for `schemas/{file}`, with every other schema in the folder available to `$ref`.
pub fn validator(file: &str) -> jsonschema::Validator {
    let mut options = jsonschema::options();
    let dir = crate::workspace_dir().join("schemas");
    for entry in std::fs::read_dir(&dir).expect("schemas/ folder") {
        let name = entry.expect("dir entry").file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            let resource = jsonschema::Resource::from_contents(load(&name)).expect("schema resource");
            options = options.with_resource(format!("{BASE}{name}"), resource);
        }
    }
    options.build(&load(file)).unwrap_or_else(|e| panic!("schemas/{file} is not a valid schema: {e}"))
}

/// Panics with every violation if `value` does not match `schemas/{file}`.
pub fn assert_valid(file: &str, value: &Value) {
    let validator = validator(file);
    let errors: Vec<String> = validator.iter_errors(value).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    assert!(errors.is_empty(), "payload does not match schemas/{file}:\n{}\npayload: {value}", errors.join("\n"));
}
