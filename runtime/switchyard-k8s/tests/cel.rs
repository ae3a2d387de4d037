//! The CRDs' CEL `x-kubernetes-validations`, evaluated offline (kube-cel) against valid and
//! invalid objects, including transition rules (`self == oldSelf`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use kube::CustomResourceExt;
use kube_cel::Validator;
use serde_json::{json, Value};
use switchyard_k8s::{RouterPlugin, WorkerPool};

fn schema<K: CustomResourceExt>() -> Value {
    let crd = K::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .unwrap()
        .open_api_v3_schema
        .as_ref()
        .unwrap();
    serde_json::to_value(schema).unwrap()
}

fn messages(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<String> {
    match Validator::new().validate(schema, obj, old) {
        Ok(()) => vec![],
        Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
    }
}

fn pool() -> Value {
    json!({
        "apiVersion": "switchyard.dev/v1alpha1", "kind": "WorkerPool",
        "metadata": {"name": "llama", "namespace": "default"},
        "spec": {
            "model": "meta-llama/Llama-3.1-8B-Instruct", "engine": "vllm", "replicas": 2, "port": 8000,
            "template": {"image": "vllm/vllm-openai:v0.8.5"},
            "health": {"path": "/health", "canaryPath": "/v1/completions", "idleSeconds": 30, "timeoutSeconds": 5, "startupSeconds": 1800},
            "routing": {"weight": 1.0}
        }
    })
}

fn plugin() -> Value {
    json!({
        "apiVersion": "switchyard.dev/v1alpha1", "kind": "RouterPlugin",
        "metadata": {"name": "pick", "namespace": "default"},
        "spec": {
            "kind": "picker",
            "source": {"configMap": {"name": "picker-wasm", "key": "plugin.wasm"},
                       "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
            "weight": 1.0, "order": 0,
            "limits": {"memoryMiB": 64, "decisionBudgetMicros": 1000}
        }
    })
}

fn with(mut obj: Value, pointer: &str, value: Value) -> Value {
    *obj.pointer_mut(pointer).unwrap() = value;
    obj
}

#[test]
fn valid_objects_pass() {
    assert_eq!(
        messages(&schema::<WorkerPool>(), &pool(), None),
        Vec::<String>::new()
    );
    assert_eq!(
        messages(&schema::<RouterPlugin>(), &plugin(), None),
        Vec::<String>::new()
    );
    let mut url = plugin();
    url["spec"]["source"] = json!({"url": "https://plugins.example/p.wasm",
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"});
    assert_eq!(
        messages(&schema::<RouterPlugin>(), &url, None),
        Vec::<String>::new()
    );
    // Updates that keep immutable fields pass the transition rules.
    let scaled = with(pool(), "/spec/replicas", json!(5));
    assert_eq!(
        messages(&schema::<WorkerPool>(), &scaled, Some(&pool())),
        Vec::<String>::new()
    );
}

#[test]
fn workerpool_rules_reject_bad_values() {
    let s = schema::<WorkerPool>();
    let cases = [
        (
            "/spec/replicas",
            json!(-1),
            "replicas must be between 0 and 10000",
        ),
        (
            "/spec/port",
            json!(70000),
            "port must be between 1 and 65535",
        ),
        (
            "/spec/routing/weight",
            json!(1001.0),
            "routing.weight must be between 0 and 1000",
        ),
        (
            "/spec/routing/weight",
            json!(-0.5),
            "routing.weight must be between 0 and 1000",
        ),
        (
            "/spec/health/path",
            json!("health"),
            "health.path must start with '/'",
        ),
        (
            "/spec/health/canaryPath",
            json!("v1/completions"),
            "health.canaryPath must start with '/'",
        ),
        (
            "/spec/health/idleSeconds",
            json!(0),
            "health.idleSeconds must be between 1 and 86400",
        ),
        ("/spec/model", json!(""), "model must be 1-253 characters"),
        ("/spec/template/image", json!(""), "image must not be empty"),
    ];
    for (pointer, value, expected) in cases {
        let got = messages(&s, &with(pool(), pointer, value.clone()), None);
        assert!(
            got.iter().any(|m| m == expected),
            "{pointer}={value}: {got:?}"
        );
    }
}

#[test]
fn immutable_fields_reject_changes() {
    let s = schema::<WorkerPool>();
    let other_model = with(pool(), "/spec/model", json!("Qwen/Qwen2.5-7B"));
    let got = messages(&s, &other_model, Some(&pool()));
    assert!(
        got.iter()
            .any(|m| m == "model is immutable; create a new WorkerPool instead"),
        "{got:?}"
    );
    let other_engine = with(pool(), "/spec/engine", json!("sglang"));
    let got = messages(&s, &other_engine, Some(&pool()));
    assert!(
        got.iter().any(|m| m.starts_with("engine is immutable")),
        "{got:?}"
    );

    let s = schema::<RouterPlugin>();
    let other_kind = with(plugin(), "/spec/kind", json!("scorer"));
    let got = messages(&s, &other_kind, Some(&plugin()));
    assert!(
        got.iter().any(|m| m.starts_with("kind is immutable")),
        "{got:?}"
    );
}

#[test]
fn routerplugin_rules_reject_bad_sources() {
    let s = schema::<RouterPlugin>();
    let one_source = "exactly one of source.configMap or source.url must be set";
    let mut both = plugin();
    both["spec"]["source"]["url"] = json!("https://plugins.example/p.wasm");
    assert!(messages(&s, &both, None).iter().any(|m| m == one_source));
    let mut neither = plugin();
    neither["spec"]["source"] =
        json!({"sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"});
    assert!(messages(&s, &neither, None).iter().any(|m| m == one_source));

    let sha = "source.sha256 must be 64 lowercase hex characters";
    for bad in [
        "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
        "ba7816bf",
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    ] {
        let got = messages(&s, &with(plugin(), "/spec/source/sha256", json!(bad)), None);
        assert!(got.iter().any(|m| m == sha), "{bad}: {got:?}");
    }
    let mut ftp = plugin();
    ftp["spec"]["source"] = json!({"url": "ftp://x/p.wasm",
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"});
    assert!(messages(&s, &ftp, None)
        .iter()
        .any(|m| m.starts_with("source.url must be")));
    for (pointer, value, expected) in [
        (
            "/spec/weight",
            json!(101.0),
            "weight must be between 0 and 100",
        ),
        (
            "/spec/order",
            json!(5000),
            "order must be between -1000 and 1000",
        ),
        (
            "/spec/limits/memoryMiB",
            json!(0),
            "limits.memoryMiB must be between 1 and 4096",
        ),
        (
            "/spec/limits/decisionBudgetMicros",
            json!(5),
            "limits.decisionBudgetMicros must be between 10 and 1000000",
        ),
    ] {
        let got = messages(&s, &with(plugin(), pointer, value.clone()), None);
        assert!(
            got.iter().any(|m| m == expected),
            "{pointer}={value}: {got:?}"
        );
    }
}

#[test]
fn crds_have_subresources_columns_and_short_names() {
    let wp = serde_json::to_value(WorkerPool::crd()).unwrap();
    assert_eq!(wp["spec"]["names"]["shortNames"], json!(["wp"]));
    let v = &wp["spec"]["versions"][0];
    assert_eq!(
        v["subresources"]["scale"]["specReplicasPath"],
        ".spec.replicas"
    );
    assert_eq!(
        v["subresources"]["scale"]["statusReplicasPath"],
        ".status.replicas"
    );
    assert_eq!(
        v["subresources"]["scale"]["labelSelectorPath"],
        ".status.selector"
    );
    assert!(v["subresources"]["status"].is_object());
    assert_eq!(v["additionalPrinterColumns"].as_array().unwrap().len(), 5);
    let rp = serde_json::to_value(RouterPlugin::crd()).unwrap();
    assert_eq!(rp["spec"]["names"]["shortNames"], json!(["rp"]));
    assert!(rp["spec"]["versions"][0]["subresources"]["status"].is_object());
    let config = &rp["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"]["config"];
    assert_eq!(config["x-kubernetes-preserve-unknown-fields"], true);
}

#[test]
fn pool_names_that_cannot_name_a_service_are_rejected() {
    let s = schema::<WorkerPool>();
    let expected = "metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter, at most 63 characters): it names the pool's Service";
    for bad in [
        "llama-3.1-8b",
        "Llama",
        "8b-llama",
        "llama-",
        &"a".repeat(64),
    ] {
        let got = messages(&s, &with(pool(), "/metadata/name", json!(bad)), None);
        assert!(got.iter().any(|m| m == expected), "{bad}: {got:?}");
    }
    for good in ["llama-3-1-8b", "a", &"a".repeat(63)] {
        let got = messages(&s, &with(pool(), "/metadata/name", json!(good)), None);
        assert!(got.is_empty(), "{good}: {got:?}");
    }
}

#[test]
fn a_model_cache_is_exactly_one_volume_kind() {
    let s = schema::<WorkerPool>();
    let cache = |v: Value| {
        let mut p = pool();
        p["spec"]["template"]["modelCache"] = v;
        messages(&s, &p, None)
    };
    assert!(cache(json!({"persistentVolumeClaim": "hf", "mountPath": "/models"})).is_empty());
    assert!(cache(json!({"hostPath": "/mnt/hf", "mountPath": "/models"})).is_empty());
    let both = cache(
        json!({"persistentVolumeClaim": "hf", "hostPath": "/mnt/hf", "mountPath": "/models"}),
    );
    assert!(
        both.iter()
            .any(|m| m.contains("exactly one of persistentVolumeClaim and hostPath")),
        "{both:?}"
    );
    let relative = cache(json!({"hostPath": "mnt/hf", "mountPath": "/models"}));
    assert!(
        relative
            .iter()
            .any(|m| m == "modelCache.hostPath must be an absolute path"),
        "{relative:?}"
    );
}

#[test]
fn a_kv_event_bridge_needs_vllm() {
    let s = schema::<WorkerPool>();
    let mut p = pool();
    p["spec"]["kvEvents"] = json!({"bridge": true, "natsUrl": "nats://nats:4222"});
    assert!(messages(&s, &p, None).is_empty());
    p["spec"]["engine"] = json!("sglang");
    let got = messages(&s, &p, None);
    assert!(
        got.iter()
            .any(|m| m.starts_with("kvEvents.bridge needs engine: vllm")),
        "{got:?}"
    );
    let mut bad_url = pool();
    bad_url["spec"]["kvEvents"] = json!({"bridge": true, "natsUrl": "http://nats:4222"});
    let got = messages(&s, &bad_url, None);
    assert!(
        got.iter()
            .any(|m| m == "kvEvents.natsUrl must be a nats:// or tls:// URL"),
        "{got:?}"
    );
}

#[test]
fn apis_are_listed_once() {
    let s = schema::<WorkerPool>();
    let listed = |apis: Value| {
        let mut pool = pool();
        pool["spec"]["apis"] = apis;
        pool
    };
    assert_eq!(
        messages(&s, &listed(json!(["responses", "messages"])), None),
        Vec::<String>::new()
    );
    let twice = messages(&s, &listed(json!(["responses", "responses"])), None);
    assert!(twice.iter().any(|m| m.contains("twice")), "{twice:?}");
}
