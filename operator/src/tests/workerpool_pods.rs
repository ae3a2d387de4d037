//! What a WorkerPool's pods look like: probes sized for multi-minute model loads, a progress
//! deadline above the startup allowance, and the pod-template fields of the pool's spec — each
//! checked on the Deployment the reconciler applies through the mocked API.

use std::sync::Arc;

use serde_json::{json, Value};
use switchyard_k8s::WorkerPool;

use crate::fixtures::*;
use crate::workerpool::reconcile;

/// Reconciles `pool` once against the mocked API and returns the applied Deployment.
async fn applied_deployment(pool: WorkerPool) -> Value {
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let handle = api.run(Scenario::pool_changed(deploy_status(2, 2), vec![]));
    reconcile(Arc::new(pool), ctx).await.unwrap();
    let calls = finish(handle).await;
    calls[0].body.clone()
}

#[tokio::test]
async fn probes_are_separate_and_the_progress_deadline_exceeds_startup() {
    let deploy = applied_deployment(pool("llama")).await;
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    // Startup: 1800 s of model loading in 10 s steps.
    assert_eq!(c["startupProbe"]["httpGet"]["path"], "/health");
    assert_eq!(c["startupProbe"]["periodSeconds"], 10);
    assert_eq!(c["startupProbe"]["failureThreshold"], 180);
    // Readiness: quick, on the health path.
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(c["readinessProbe"]["periodSeconds"], 5);
    // Liveness: a TCP check, lenient, so a busy engine is not restarted.
    assert_eq!(c["livenessProbe"]["tcpSocket"]["port"], "http");
    assert!(c["livenessProbe"].get("httpGet").is_none());
    assert_eq!(c["livenessProbe"]["timeoutSeconds"], 10);
    assert_eq!(
        c["livenessProbe"]["periodSeconds"]
            .as_i64()
            .zip(c["livenessProbe"]["failureThreshold"].as_i64())
            .map(|(p, f)| p * f),
        Some(120),
        "two minutes of failures before a restart"
    );
    assert_eq!(deploy["spec"]["progressDeadlineSeconds"], json!(1800 + 600));
}

#[tokio::test]
async fn a_liveness_path_makes_liveness_an_http_check() {
    let mut p = pool("llama");
    p.spec.health.liveness_path = Some("/ping".into());
    p.spec.health.startup_seconds = 95;
    let deploy = applied_deployment(p).await;
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/ping");
    assert!(c["livenessProbe"].get("tcpSocket").is_none());
    assert_eq!(
        c["startupProbe"]["failureThreshold"], 10,
        "95 s rounds up to ten 10 s periods"
    );
    assert_eq!(deploy["spec"]["progressDeadlineSeconds"], 695);
}

#[tokio::test]
async fn pod_template_fields_reach_the_pods() {
    let mut p = pool("llama");
    p.spec.role = switchyard_k8s::WorkerRole::Decode;
    p.spec.template.args = vec!["--model".into(), "/weights/llama".into()];
    p.spec.template.model_cache = Some(switchyard_k8s::ModelCache {
        persistent_volume_claim: Some("hf-cache".into()),
        host_path: None,
        mount_path: "/models".into(),
    });
    p.spec.template.image_pull_secrets = vec![k8s_openapi::api::core::v1::LocalObjectReference {
        name: "team-pull".into(),
    }];
    p.spec.template.priority_class_name = Some("gpu-high".into());
    p.spec.template.runtime_class_name = Some("nvidia".into());
    p.spec.template.affinity = serde_json::from_value(json!({"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-H100-80GB-HBM3"]}]}]}}}))
    .unwrap();
    p.spec.template.volumes =
        serde_json::from_value(json!([{"name": "tmpl", "configMap": {"name": "chat-template"}}]))
            .unwrap();
    p.spec.template.volume_mounts =
        serde_json::from_value(json!([{"name": "tmpl", "mountPath": "/templates"}])).unwrap();

    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let mut ctx = Arc::into_inner(ctx).unwrap();
    ctx.worker_defaults.image_pull_secrets = vec!["regcred".into(), "team-pull".into()];
    let handle = api.run(Scenario::pool_changed(deploy_status(2, 2), vec![]));
    reconcile(Arc::new(p), Arc::new(ctx)).await.unwrap();
    let deploy = finish(handle).await[0].body.clone();
    let pod = &deploy["spec"]["template"];
    let spec = &pod["spec"];
    assert_eq!(pod["metadata"]["labels"]["switchyard.dev/role"], "decode");
    assert_eq!(
        spec["imagePullSecrets"],
        json!([{"name": "regcred"}, {"name": "team-pull"}]),
        "the chart's secrets first, each once"
    );
    assert_eq!(spec["priorityClassName"], "gpu-high");
    assert_eq!(spec["runtimeClassName"], "nvidia");
    assert_eq!(
        spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchExpressions"][0]["key"],
        "nvidia.com/gpu.product"
    );
    let volumes: Vec<&str> = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(volumes, ["dshm", "model-cache", "tmpl"]);
    assert_eq!(
        spec["volumes"][1]["persistentVolumeClaim"]["claimName"],
        "hf-cache"
    );
    let c = &spec["containers"][0];
    let mounts: Vec<(&str, &str)> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap(),
                m["mountPath"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        mounts,
        [
            ("dshm", "/dev/shm"),
            ("model-cache", "/models"),
            ("tmpl", "/templates")
        ]
    );
    assert!(
        c["env"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "HF_HOME", "value": "/models"})),
        "downloads land on the cache: {}",
        c["env"]
    );
    assert_eq!(
        c["args"],
        json!([
            "--model",
            "/weights/llama",
            "--served-model-name",
            "meta-llama/Llama-3.1-8B-Instruct"
        ]),
        "vLLM answers to the pool's model name"
    );
}

#[tokio::test]
async fn args_that_name_the_served_model_are_left_alone() {
    let mut p = pool("llama");
    p.spec.template.args = vec!["--served-model-name=llama".into()];
    let deploy = applied_deployment(p).await;
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["--served-model-name=llama"])
    );
}

#[tokio::test]
async fn a_kv_event_bridge_runs_beside_vllm_under_the_discovery_id() {
    let mut p = pool("llama");
    p.spec.template.args = vec!["--model".into(), "m".into()];
    p.spec.kv_events = Some(switchyard_k8s::KvEvents {
        bridge: true,
        nats_url: None,
        image: None,
        block_size: 32,
        zmq_port: 5557,
    });
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let mut ctx = Arc::into_inner(ctx).unwrap();
    ctx.worker_defaults.nats_url = Some("nats://sy-nats:4222".into());
    ctx.worker_defaults.bridge_image = Some("registry.example.com/switchyard:0.1.0".into());
    let handle = api.run(Scenario::pool_changed(deploy_status(2, 2), vec![]));
    reconcile(Arc::new(p), Arc::new(ctx)).await.unwrap();
    let deploy = finish(handle).await[0].body.clone();
    let containers = deploy["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(containers.len(), 2);
    let engine_args: Vec<String> = serde_json::from_value(containers[0]["args"].clone()).unwrap();
    let at = engine_args
        .iter()
        .position(|a| a == "--kv-events-config")
        .expect("vLLM publishes KV events");
    let config: Value = serde_json::from_str(&engine_args[at + 1]).unwrap();
    assert_eq!(
        config,
        json!({"enable_kv_cache_events": true, "publisher": "zmq", "endpoint": "tcp://*:5557", "topic": "kv-events"})
    );
    assert!(engine_args.windows(2).any(|w| w == ["--block-size", "32"]));
    let bridge = &containers[1];
    assert_eq!(bridge["name"], "kv-bridge");
    assert_eq!(bridge["image"], "registry.example.com/switchyard:0.1.0");
    assert_eq!(
        bridge["args"],
        json!([
            "kv-bridge",
            "--zmq",
            "tcp://127.0.0.1:5557",
            "--topic",
            "kv-events",
            "--instance",
            "$(POD_NAMESPACE)/llama/$(POD_NAME)",
            "--block-size",
            "32",
            "--nats",
            "nats://sy-nats:4222"
        ])
    );
    assert_eq!(bridge["securityContext"]["runAsNonRoot"], true);
}

#[tokio::test]
async fn a_bridge_without_nats_is_a_spec_error_on_the_pool() {
    let mut p = pool("llama");
    p.spec.kv_events = Some(switchyard_k8s::KvEvents {
        bridge: true,
        image: Some("i".into()),
        ..Default::default()
    });
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    // Building the Deployment fails before any apply: status + Event only.
    let handle = api.run(vec![Call::PatchPoolStatus, Call::CreateEvent]);
    let err = reconcile(Arc::new(p), ctx).await.unwrap_err();
    let calls = finish(handle).await;
    assert!(err.to_string().contains("natsUrl"), "{err}");
    assert_eq!(calls[1].body["reason"], "InvalidSpec");
    let reconciled = calls[0].body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Reconciled")
        .cloned()
        .unwrap();
    assert_eq!(reconciled["status"], "False");
    assert!(calls[1].body["note"].as_str().unwrap().contains("natsUrl"));
}

#[tokio::test]
async fn a_service_account_outside_the_allow_list_is_a_spec_error() {
    let mut p = pool("llama");
    p.spec.template.service_account_name = Some("ci-deployer".into());
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    // Nothing is applied: status + Event only.
    let handle = api.run(vec![Call::PatchPoolStatus, Call::CreateEvent]);
    let err = reconcile(Arc::new(p), ctx).await.unwrap_err();
    let calls = finish(handle).await;
    assert!(err.to_string().contains("ci-deployer"), "{err}");
    assert_eq!(calls[1].body["reason"], "InvalidSpec");
}

#[tokio::test]
async fn an_allow_listed_service_account_reaches_the_pods() {
    let mut p = pool("llama");
    p.spec.template.service_account_name = Some("engine".into());
    let (mut ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    Arc::get_mut(&mut ctx)
        .expect("fresh context")
        .worker_defaults
        .service_accounts = vec!["engine".into()];
    let handle = api.run(Scenario::pool_changed(deploy_status(2, 2), vec![]));
    reconcile(Arc::new(p), ctx).await.unwrap();
    let calls = finish(handle).await;
    assert_eq!(
        calls[0].body["spec"]["template"]["spec"]["serviceAccountName"],
        "engine"
    );
}

#[tokio::test]
async fn an_api_key_and_sidecars_reach_the_pods_restricted() {
    let mut p = pool("llama");
    p.spec.api_key = Some(switchyard_k8s::workerpool::ApiKeyRef {
        secret_name: "llama-key".into(),
        key: "api-key".into(),
        frontend_key: None,
    });
    p.spec.template.sidecars = serde_json::from_value(json!([{
        "name": "shipper", "image": "fluent/fluent-bit:3",
        "ports": [{"containerPort": 2020, "name": "metrics"}]}]))
    .unwrap();
    let deploy = applied_deployment(p).await;
    let containers = deploy["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    let engine = &containers[0];
    let from_secret = |name: &str| {
        engine["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["valueFrom"]["secretKeyRef"].clone())
    };
    let reference = Some(json!({"name": "llama-key", "key": "api-key", "optional": false}));
    assert_eq!(from_secret("VLLM_API_KEY"), reference, "vLLM reads its key");
    assert_eq!(from_secret("SWITCHYARD_WORKER_API_KEY"), reference);
    assert!(
        !deploy.to_string().contains("\"value\":\"llama-key\""),
        "only a reference, never a value"
    );
    let shipper = &containers[1];
    assert_eq!(shipper["name"], "shipper");
    assert_eq!(shipper["securityContext"], engine["securityContext"]);
    assert_eq!(
        shipper["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert!(shipper["ports"][0].get("hostPort").is_none());
}
