//! Label and annotation keys shared by the operator (which writes them) and the frontend's
//! discovery (which selects on them).

/// API group of every Switchyard custom resource.
pub const GROUP: &str = "switchyard.dev";
/// Field manager used for every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "switchyard-operator";
/// Pod/Service label naming the `WorkerPool` that owns a worker.
pub const POOL: &str = "switchyard.dev/pool";
/// Pod label carrying the pool's model, sanitised into a label value (see [`model_label_value`]).
pub const MODEL: &str = "switchyard.dev/model";
/// Pod label carrying the pool's engine.
pub const ENGINE: &str = "switchyard.dev/engine";
/// Pod and instance label carrying the pool's role (`both`, `prefill`, `decode`).
pub const ROLE: &str = "switchyard.dev/role";
/// Pod annotation carrying the exact model name (label values cannot hold `/`).
pub const MODEL_ANNOTATION: &str = "switchyard.dev/model";
/// Label the EndpointSlice controller puts on every slice of a Service.
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Standard recommended labels.
pub const APP_NAME: &str = "app.kubernetes.io/name";
pub const APP_INSTANCE: &str = "app.kubernetes.io/instance";
pub const APP_COMPONENT: &str = "app.kubernetes.io/component";
pub const APP_MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// Turns a model name such as `meta-llama/Llama-3.1-8B-Instruct` into a valid label value
/// (at most 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends).
pub fn model_label_value(model: &str) -> String {
    let mapped: String = model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_become_valid_label_values() {
        assert_eq!(
            model_label_value("meta-llama/Llama-3.1-8B-Instruct"),
            "meta-llama-Llama-3.1-8B-Instruct"
        );
        assert_eq!(model_label_value("/weird/"), "weird");
        assert_eq!(model_label_value(&"x".repeat(100)).len(), 63);
    }
}
