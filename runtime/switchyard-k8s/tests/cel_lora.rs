//! The `LoraAdapter` CRD's CEL validations, evaluated offline (kube-cel) as in `cel.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use kube::CustomResourceExt;
use kube_cel::Validator;
use serde_json::{json, Value};
use switchyard_k8s::LoraAdapter;

fn schema() -> Value {
    let crd = LoraAdapter::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .unwrap()
        .open_api_v3_schema
        .as_ref()
        .unwrap();
    serde_json::to_value(schema).unwrap()
}

fn messages(obj: &Value) -> Vec<String> {
    match Validator::new().validate(&schema(), obj, None) {
        Ok(()) => vec![],
        Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
    }
}

fn adapter() -> Value {
    json!({
        "apiVersion": "switchyard.dev/v1alpha1", "kind": "LoraAdapter",
        "metadata": {"name": "sql-lora", "namespace": "default"},
        "spec": {
            "baseModel": "meta-llama/Llama-3.1-8B-Instruct",
            "source": "s3://adapters/sql-lora", "pools": ["llama"], "minReplicas": 2
        }
    })
}

fn with(mut obj: Value, pointer: &str, value: Value) -> Value {
    *obj.pointer_mut(pointer).unwrap() = value;
    obj
}

#[test]
fn a_valid_adapter_passes() {
    assert_eq!(messages(&adapter()), Vec::<String>::new());
    assert_eq!(
        messages(&with(adapter(), "/spec/minReplicas", json!(0))),
        Vec::<String>::new()
    );
}

#[test]
fn bad_values_are_rejected_with_their_message() {
    let cases = [
        (
            "/spec/minReplicas",
            json!(-1),
            "minReplicas must be between 0 and 10000",
        ),
        (
            "/spec/baseModel",
            json!(""),
            "baseModel must be 1-256 characters",
        ),
        (
            "/spec/baseModel",
            json!("a b"),
            "baseModel must be 1-256 characters",
        ),
        (
            "/spec/baseModel",
            json!("m".repeat(257)),
            "baseModel must be 1-256 characters",
        ),
        (
            "/spec/source",
            json!(""),
            "source must be 1-1024 characters",
        ),
        (
            "/spec/source",
            json!("s3://a\nb"),
            "source must be 1-1024 characters",
        ),
        (
            "/spec/source",
            json!("s".repeat(1025)),
            "source must be 1-1024 characters",
        ),
        (
            "/spec/pools",
            json!([""]),
            "pools: at most 64 WorkerPool names",
        ),
        (
            "/spec/pools",
            json!(vec!["p"; 65]),
            "pools: at most 64 WorkerPool names",
        ),
        (
            "/metadata/name",
            json!("meta-llama/Llama-3.1-8B-Instruct"),
            "metadata.name (the adapter's model name)",
        ),
    ];
    for (pointer, value, want) in cases {
        let got = messages(&with(adapter(), pointer, value.clone()));
        assert!(
            got.iter().any(|m| m.starts_with(want)),
            "{pointer}={value}: {got:?}"
        );
    }
}

#[test]
fn the_crd_has_a_status_subresource_columns_and_a_short_name() {
    let crd = serde_json::to_value(LoraAdapter::crd()).unwrap();
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["names"]["shortNames"], json!(["lora"]));
    let v = &crd["spec"]["versions"][0];
    assert!(v["subresources"]["status"].is_object());
    assert_eq!(v["additionalPrinterColumns"].as_array().unwrap().len(), 4);
}
