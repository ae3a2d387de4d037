use std::time::Duration;

use kube::runtime::controller::Action;
use serde_json::json;
use switchyard_k8s::conditions;

use crate::fixtures::*;
use crate::workerpool::{error_policy, reconcile, RESYNC};
use crate::Error;

#[tokio::test]
async fn create_applies_owned_children_and_reports_status() {
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let slices = vec![slice("llama", &[("10.0.0.7", true), ("10.0.0.8", false)])];
    let handle = api.run(Scenario::pool_changed(deploy_status(2, 1), slices));
    let action = reconcile(std::sync::Arc::new(pool("llama")), ctx)
        .await
        .unwrap();
    let calls = finish(handle).await;
    assert_eq!(action, Action::requeue(RESYNC));
    let shape: Vec<(String, &str)> = calls
        .iter()
        .map(|c| (c.method.to_string(), c.path.as_str()))
        .collect();
    assert_eq!(
        shape,
        [
            (
                "PATCH".to_string(),
                "/apis/apps/v1/namespaces/default/deployments/llama"
            ),
            (
                "PATCH".to_string(),
                "/api/v1/namespaces/default/services/llama"
            ),
            (
                "GET".to_string(),
                "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
            ),
            (
                "PATCH".to_string(),
                "/apis/switchyard.dev/v1alpha1/namespaces/default/workerpools/llama/status"
            ),
        ]
    );

    let deploy = &calls[0];
    assert!(
        deploy.query.contains("fieldManager=switchyard-operator")
            && deploy.query.contains("force=true")
    );
    let owner = &deploy.body["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "WorkerPool");
    assert_eq!(owner["controller"], true);
    assert_eq!(deploy.body["spec"]["replicas"], 2);
    let pod = &deploy.body["spec"]["template"];
    assert_eq!(pod["metadata"]["labels"]["switchyard.dev/pool"], "llama");
    assert_eq!(
        pod["metadata"]["labels"]["switchyard.dev/model"],
        "meta-llama-Llama-3.1-8B-Instruct"
    );
    assert_eq!(
        pod["metadata"]["annotations"]["switchyard.dev/model"],
        "meta-llama/Llama-3.1-8B-Instruct"
    );
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(
        pod["spec"]["volumes"][0]["emptyDir"]["medium"], "Memory",
        "vllm gets /dev/shm"
    );

    let svc = &calls[1];
    assert_eq!(svc.body["spec"]["clusterIP"], "None");
    assert_eq!(svc.body["metadata"]["ownerReferences"][0]["name"], "llama");
    assert!(
        calls[2]
            .query
            .contains("labelSelector=kubernetes.io%2Fservice-name%3Dllama"),
        "{}",
        calls[2].query
    );

    let status = &calls[3].body["status"];
    assert_eq!(status["replicas"], 2);
    assert_eq!(status["readyReplicas"], 1);
    assert_eq!(status["selector"], "switchyard.dev/pool=llama");
    assert_eq!(status["endpoints"], json!(["http://10.0.0.7:8000"]));
    assert_eq!(status["observedGeneration"], 1);
    let conds = status["conditions"].as_array().unwrap();
    let available = conds
        .iter()
        .find(|c| c["type"] == conditions::AVAILABLE)
        .unwrap();
    assert_eq!(available["status"], "True");
    let progressing = conds
        .iter()
        .find(|c| c["type"] == conditions::PROGRESSING)
        .unwrap();
    assert_eq!(progressing["reason"], "RollingOut");
}

#[tokio::test]
async fn unchanged_status_is_not_rewritten() {
    let slices = vec![slice("llama", &[("10.0.0.7", true), ("10.0.0.8", true)])];
    // First reconcile computes the status…
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let handle = api.run(Scenario::pool_changed(deploy_status(2, 2), slices.clone()));
    reconcile(std::sync::Arc::new(pool("llama")), ctx)
        .await
        .unwrap();
    let calls = finish(handle).await;
    let written: switchyard_k8s::WorkerPoolStatus =
        serde_json::from_value(calls[3].body["status"].clone()).unwrap();
    assert_eq!(
        written
            .conditions
            .iter()
            .find(|c| c.type_ == "Progressing")
            .unwrap()
            .reason,
        "RolloutComplete"
    );
    // …the second, seeing it already in place, makes no status write.
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let handle = api.run(Scenario::pool_steady(deploy_status(2, 2), slices));
    reconcile(std::sync::Arc::new(pool("llama").with_status(written)), ctx)
        .await
        .unwrap();
    assert_eq!(finish(handle).await.len(), 3);
}

#[tokio::test]
async fn update_and_scale_reach_the_deployment() {
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let handle = api.run(Scenario::pool_changed(deploy_status(2, 2), vec![]));
    let mut scaled = pool("llama").replicas(5).generation(2);
    scaled.spec.template.image = "vllm/vllm-openai:v0.9.0".to_string();
    scaled.spec.template.args = vec!["--model".into(), "meta-llama/Llama-3.1-8B-Instruct".into()];
    reconcile(std::sync::Arc::new(scaled), ctx).await.unwrap();
    let calls = finish(handle).await;
    let spec = &calls[0].body["spec"];
    assert_eq!(spec["replicas"], 5);
    assert_eq!(
        spec["template"]["spec"]["containers"][0]["image"],
        "vllm/vllm-openai:v0.9.0"
    );
    assert_eq!(
        spec["template"]["spec"]["containers"][0]["args"][1],
        "meta-llama/Llama-3.1-8B-Instruct"
    );
    let status = &calls[3].body["status"];
    assert_eq!(status["observedGeneration"], 2);
    let available = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Available")
        .cloned();
    assert_eq!(available.unwrap()["message"], "2 of 5 workers ready");
}

#[tokio::test]
async fn scale_to_zero_is_reported() {
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let handle = api.run(Scenario::pool_changed(deploy_status(0, 0), vec![]));
    reconcile(std::sync::Arc::new(pool("llama").replicas(0)), ctx)
        .await
        .unwrap();
    let calls = finish(handle).await;
    assert_eq!(calls[0].body["spec"]["replicas"], 0);
    let conds = calls[3].body["status"]["conditions"]
        .as_array()
        .unwrap()
        .clone();
    assert!(conds
        .iter()
        .any(|c| c["type"] == "Available" && c["reason"] == "ScaledToZero"));
}

#[tokio::test]
async fn mocker_pools_get_default_args_and_no_shm() {
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let handle = api.run(Scenario::pool_changed(deploy_status(2, 2), vec![]));
    let mut p = pool("llama");
    p.spec.engine = switchyard_k8s::EngineKind::Mocker;
    reconcile(std::sync::Arc::new(p), ctx).await.unwrap();
    let calls = finish(handle).await;
    let pod = &calls[0].body["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["args"],
        json!([
            "mocker",
            "--listen",
            "0.0.0.0:8000",
            "--model",
            "meta-llama/Llama-3.1-8B-Instruct"
        ])
    );
    assert!(pod.get("volumes").is_none());
}

/// Deletion is the garbage collector's job: what makes that true is that every child the
/// operator applies names the pool (uid included) as its one controlling owner, in the same
/// namespace; the reconcile of a pool being deleted then makes no API call and forgets the
/// pool's backoff state.
#[tokio::test]
async fn deletion_is_left_to_owner_references() {
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let handle = api.run(Scenario::pool_changed(deploy_status(2, 2), vec![]));
    let live = pool("llama");
    reconcile(std::sync::Arc::new(live.clone()), ctx)
        .await
        .unwrap();
    let calls = finish(handle).await;
    for (child, call) in [("Deployment", &calls[0]), ("Service", &calls[1])] {
        let owners = call.body["metadata"]["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            owners,
            vec![json!({
                "apiVersion": "switchyard.dev/v1alpha1",
                "kind": "WorkerPool",
                "name": "llama",
                "uid": live.metadata.uid.clone().unwrap(),
                "controller": true,
            })],
            "{child} is owned by exactly its pool"
        );
        assert_eq!(
            call.body["metadata"]["namespace"], NS,
            "owner and child share a namespace"
        );
    }

    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    ctx.backoff.failed("workerpool/default/llama");
    let handle = api.run(vec![]);
    let action = reconcile(std::sync::Arc::new(live.deleting()), ctx.clone())
        .await
        .unwrap();
    assert_eq!(action, Action::await_change());
    assert!(
        finish(handle).await.is_empty(),
        "no delete and no re-apply (that would fight the garbage collector)"
    );
    assert_eq!(ctx.backoff.failures("workerpool/default/llama"), 0);
}

#[tokio::test]
async fn api_errors_back_off_exponentially_with_a_cap() {
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let handle = api.run(Scenario::pool_fails(deploy_status(2, 2), 0, 500));
    let p = std::sync::Arc::new(pool("llama"));
    let err = reconcile(p.clone(), ctx.clone()).await.unwrap_err();
    finish(handle).await;
    assert!(
        matches!(&err, Error::Kube(kube::Error::Api(s)) if s.code == 500),
        "{err}"
    );
    let delays: Vec<Action> = (0..10)
        .map(|_| error_policy(p.clone(), &err, ctx.clone()))
        .collect();
    assert_eq!(delays[0], Action::requeue(Duration::from_secs(1)));
    assert_eq!(delays[1], Action::requeue(Duration::from_secs(2)));
    assert_eq!(delays[4], Action::requeue(Duration::from_secs(16)));
    assert_eq!(delays[9], Action::requeue(Duration::from_secs(300)));
    let text = ctx.metrics.encode();
    assert!(text.contains(
        "switchyard_operator_reconcile_errors_total{controller=\"workerpool\",error=\"api\"} 10"
    ));

    // A later success resets the backoff.
    let (ctx2, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let handle = api.run(Scenario::pool_changed(deploy_status(2, 2), vec![]));
    ctx2.backoff.failed("workerpool/default/llama");
    reconcile(p, ctx2.clone()).await.unwrap();
    finish(handle).await;
    assert_eq!(ctx2.backoff.failures("workerpool/default/llama"), 0);
}
