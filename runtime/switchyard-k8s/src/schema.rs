//! Schema helpers for fields the derive cannot describe on its own.

use schemars::{json_schema, Schema, SchemaGenerator};

/// Free-form JSON object: the apiserver keeps unknown fields instead of pruning them.
pub fn free_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "nullable": true,
    })
}
