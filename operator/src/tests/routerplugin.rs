use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use kube::runtime::controller::Action;
use serde_json::Value;
use switchyard_k8s::source::sha256_hex;
use switchyard_k8s::{PluginKind, RouterPlugin};

use crate::fixtures::*;
use crate::routerplugin::{error_policy, reconcile, RESYNC, RETRY_FETCH};
use crate::validator::{UnavailableValidator, ValidationError};

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

async fn run_plugin(
    p: RouterPlugin,
    validator: FakeValidator,
    urls: StaticUrls,
    calls: Vec<Call>,
) -> (Action, Vec<Captured>) {
    let (ctx, api) = context(validator, urls);
    let handle = api.run(calls);
    let action = reconcile(Arc::new(p), ctx).await.unwrap();
    (action, finish(handle).await)
}

#[tokio::test]
async fn valid_plugin_is_accepted_and_validated() {
    let (action, calls) = run_plugin(
        plugin("pick"),
        FakeValidator(Ok(vec![PluginKind::Picker])),
        StaticUrls::default(),
        Scenario::plugin_from_config_map(Some(config_map(COMPONENT))),
    )
    .await;
    assert_eq!(action, Action::requeue(RESYNC));
    let status = &calls[1].body["status"];
    assert_eq!(condition(status, "Accepted")["status"], "True");
    let validated = condition(status, "Validated");
    assert_eq!(validated["status"], "True");
    assert_eq!(validated["reason"], "Validated");
    assert_eq!(
        status["digest"],
        format!("sha256:{}", sha256_hex(COMPONENT))
    );
    assert_eq!(status["worlds"][0], "picker");
    assert_eq!(status["observedGeneration"], 1);
    assert!(calls[1].query.contains("fieldManager=switchyard-operator"));

    // What the frontend checks before loading it:
    let mut seen = plugin("pick");
    seen.status = Some(serde_json::from_value(status.clone()).unwrap());
    assert!(seen.is_validated());
    seen.metadata.generation = Some(2);
    assert!(
        !seen.is_validated(),
        "a newer generation is not validated yet"
    );
}

#[tokio::test]
async fn sha_mismatch_is_not_validated() {
    let (action, calls) = run_plugin(
        plugin("pick"),
        FakeValidator(Ok(vec![PluginKind::Picker])),
        StaticUrls::default(),
        Scenario::plugin_from_config_map(Some(config_map(b"tampered bytes"))),
    )
    .await;
    assert_eq!(action, Action::requeue(RESYNC));
    let status = &calls[1].body["status"];
    let validated = condition(status, "Validated");
    assert_eq!(validated["status"], "False");
    assert_eq!(validated["reason"], "DigestMismatch");
    let message = validated["message"].as_str().unwrap();
    assert!(
        message.contains(&sha256_hex(b"tampered bytes")),
        "{message}"
    );
    assert!(status.get("digest").is_none());
}

#[tokio::test]
async fn wrong_world_names_what_the_component_implements() {
    let (action, calls) = run_plugin(
        plugin("pick"),
        FakeValidator(Ok(vec![PluginKind::Scorer])),
        StaticUrls::default(),
        Scenario::plugin_from_config_map(Some(config_map(COMPONENT))),
    )
    .await;
    assert_eq!(action, Action::await_change());
    let status = &calls[1].body["status"];
    let validated = condition(status, "Validated");
    assert_eq!(validated["reason"], "WrongWorld");
    assert!(validated["message"]
        .as_str()
        .unwrap()
        .contains("[\"scorer\"] but spec.kind is \"picker\""));
    assert_eq!(status["worlds"][0], "scorer");
}

#[tokio::test]
async fn missing_config_map_is_retried() {
    let (action, calls) = run_plugin(
        plugin("pick"),
        FakeValidator(Ok(vec![PluginKind::Picker])),
        StaticUrls::default(),
        Scenario::plugin_from_config_map(None),
    )
    .await;
    assert_eq!(action, Action::requeue(RETRY_FETCH));
    assert_eq!(
        condition(&calls[1].body["status"], "Validated")["reason"],
        "ConfigMapNotFound"
    );
}

#[tokio::test]
async fn unavailable_validator_never_claims_validated() {
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let ctx = Arc::new(crate::Context::with_parts(
        ctx.client.clone(),
        ctx.metrics.clone(),
        Arc::new(UnavailableValidator),
        Arc::new(StaticUrls::default()),
    ));
    let handle = api.run(Scenario::plugin_from_config_map(Some(config_map(
        COMPONENT,
    ))));
    reconcile(Arc::new(plugin("pick")), ctx).await.unwrap();
    let calls = finish(handle).await;
    let validated = condition(&calls[1].body["status"], "Validated").clone();
    assert_eq!(validated["status"], "False");
    assert_eq!(validated["reason"], "ValidationUnavailable");
}

#[tokio::test]
async fn invalid_component_is_reported() {
    let (_, calls) = run_plugin(
        plugin("pick"),
        FakeValidator(Err(ValidationError::Invalid("not a component".into()))),
        StaticUrls::default(),
        Scenario::plugin_from_config_map(Some(config_map(COMPONENT))),
    )
    .await;
    assert_eq!(
        condition(&calls[1].body["status"], "Validated")["reason"],
        "InvalidComponent"
    );
}

#[tokio::test]
async fn url_source_is_fetched_without_the_api() {
    let mut p = plugin("pick");
    p.spec.source.config_map = None;
    p.spec.source.url = Some("https://plugins.example/picker.wasm".into());
    let urls = StaticUrls(
        [(
            "https://plugins.example/picker.wasm".to_string(),
            Bytes::from_static(COMPONENT),
        )]
        .into(),
    );
    let (_, calls) = run_plugin(
        p,
        FakeValidator(Ok(vec![PluginKind::Picker])),
        urls,
        vec![Call::PatchPluginStatus],
    )
    .await;
    assert_eq!(
        condition(&calls[0].body["status"], "Validated")["status"],
        "True"
    );
}

#[tokio::test]
async fn a_url_digest_mismatch_does_not_echo_what_the_url_served() {
    let mut p = plugin("pick");
    p.spec.source.config_map = None;
    p.spec.source.url = Some("https://plugins.example/picker.wasm".into());
    let served = b"whatever an internal service answers";
    let urls = StaticUrls(
        [(
            "https://plugins.example/picker.wasm".to_string(),
            Bytes::from_static(served),
        )]
        .into(),
    );
    let (_, calls) = run_plugin(
        p,
        FakeValidator(Ok(vec![PluginKind::Picker])),
        urls,
        vec![Call::PatchPluginStatus],
    )
    .await;
    let validated = condition(&calls[0].body["status"], "Validated");
    assert_eq!(validated["reason"], "DigestMismatch");
    let message = validated["message"].as_str().unwrap();
    assert!(!message.contains(&sha256_hex(served)), "{message}");
    assert_eq!(message, "the fetched bytes do not match spec.source.sha256");
}

#[tokio::test]
async fn two_sources_are_rejected_before_any_fetch() {
    let mut p = plugin("pick");
    p.spec.source.url = Some("https://plugins.example/picker.wasm".into());
    let (action, calls) = run_plugin(
        p,
        FakeValidator(Ok(vec![PluginKind::Picker])),
        StaticUrls::default(),
        vec![Call::PatchPluginStatus],
    )
    .await;
    assert_eq!(action, Action::await_change());
    let accepted = condition(&calls[0].body["status"], "Accepted");
    assert_eq!(accepted["status"], "False");
    assert_eq!(accepted["reason"], "InvalidSource");
}

#[tokio::test]
async fn api_failure_is_an_error_with_backoff() {
    let (ctx, api) = context(
        FakeValidator(Ok(vec![PluginKind::Picker])),
        StaticUrls::default(),
    );
    let handle = api.run(vec![Call::Fail(Method::GET, 503)]);
    let p = Arc::new(plugin("pick"));
    let err = reconcile(p.clone(), ctx.clone()).await.unwrap_err();
    finish(handle).await;
    assert_eq!(
        error_policy(p.clone(), &err, ctx.clone()),
        Action::requeue(std::time::Duration::from_secs(1))
    );
    assert_eq!(
        error_policy(p, &err, ctx.clone()),
        Action::requeue(std::time::Duration::from_secs(2))
    );
}

#[tokio::test]
async fn deleted_plugin_makes_no_calls() {
    let mut p = plugin("pick");
    p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
    ));
    let (action, calls) =
        run_plugin(p, FakeValidator(Ok(vec![])), StaticUrls::default(), vec![]).await;
    assert_eq!(action, Action::await_change());
    assert!(calls.is_empty());
}

#[tokio::test]
async fn validated_plugin_resync_does_not_recompile_or_rewrite() {
    let (_, calls) = run_plugin(
        plugin("pick"),
        FakeValidator(Ok(vec![PluginKind::Picker])),
        StaticUrls::default(),
        Scenario::plugin_from_config_map(Some(config_map(COMPONENT))),
    )
    .await;
    let mut seen = plugin("pick");
    seen.status = Some(serde_json::from_value(calls[1].body["status"].clone()).unwrap());
    // A validator that would fail proves it is not consulted; the bytes are still re-checked.
    let (action, calls) = run_plugin(
        seen,
        FakeValidator(Err(ValidationError::Invalid("must not be called".into()))),
        StaticUrls::default(),
        vec![Call::GetConfigMap(Some(Box::new(config_map(COMPONENT))))],
    )
    .await;
    assert_eq!(action, Action::requeue(RESYNC));
    assert_eq!(calls.len(), 1, "no status write when nothing changed");
}

#[tokio::test]
async fn validated_plugin_whose_bytes_changed_is_invalidated() {
    let (_, calls) = run_plugin(
        plugin("pick"),
        FakeValidator(Ok(vec![PluginKind::Picker])),
        StaticUrls::default(),
        Scenario::plugin_from_config_map(Some(config_map(COMPONENT))),
    )
    .await;
    let mut seen = plugin("pick");
    seen.status = Some(serde_json::from_value(calls[1].body["status"].clone()).unwrap());
    let (_, calls) = run_plugin(
        seen,
        FakeValidator(Ok(vec![PluginKind::Picker])),
        StaticUrls::default(),
        Scenario::plugin_from_config_map(Some(config_map(b"edited in place"))),
    )
    .await;
    let status = &calls[1].body["status"];
    assert_eq!(condition(status, "Validated")["reason"], "DigestMismatch");
    assert!(
        status.get("digest").is_none(),
        "frontends stop trusting the old digest"
    );
}

/// The reconcile with the production validator and a real component from
/// `scripts/build-plugins.sh rust`: validated as the world it implements, rejected as another.
#[tokio::test]
async fn real_component_is_validated_for_its_world_only() {
    use crate::validator::{ComponentValidator, PluginHostValidator};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm/round-robin.wasm");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{} ({e}); build it: scripts/build-plugins.sh rust",
            path.display()
        )
    });
    let kinds = PluginHostValidator.detect_kinds(&bytes).unwrap();
    let wrong = [
        PluginKind::Filter,
        PluginKind::Scorer,
        PluginKind::Picker,
        PluginKind::Health,
    ]
    .into_iter()
    .find(|k| !kinds.contains(k))
    .expect("round-robin does not implement every world");
    for (kind, expected) in [(kinds[0], "Validated"), (wrong, "WrongWorld")] {
        let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
        let ctx = Arc::new(crate::Context::with_parts(
            ctx.client.clone(),
            ctx.metrics.clone(),
            Arc::new(PluginHostValidator),
            Arc::new(StaticUrls::default()),
        ));
        let mut p = plugin("pick");
        p.spec.kind = kind;
        p.spec.source.sha256 = sha256_hex(&bytes);
        let handle = api.run(Scenario::plugin_from_config_map(Some(config_map(&bytes))));
        reconcile(Arc::new(p), ctx).await.unwrap();
        let calls = finish(handle).await;
        assert_eq!(
            condition(&calls[1].body["status"], "Validated")["reason"],
            expected,
            "kind {kind:?}"
        );
    }
}
