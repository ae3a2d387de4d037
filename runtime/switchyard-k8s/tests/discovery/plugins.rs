//! Plugins from validated RouterPlugins.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;
use switchyard_k8s::source::{sha256_hex, SourceFetcher};
use switchyard_k8s::{run_plugin_discovery, PluginEvent, PluginKind, WatchScope};
use switchyard_runtime::DiscoveryState;
use tokio::sync::mpsc::unbounded_channel;

use super::mock::*;

#[tokio::test]
async fn validated_plugins_are_loaded_swapped_and_removed() {
    let (client, mut api) = mock();
    let (tx, mut rx) = unbounded_channel();
    let fetcher = SourceFetcher::new(client.clone(), Arc::new(NoUrls));
    let task = tokio::spawn(run_plugin_discovery(
        client,
        WatchScope::parse("default"),
        fetcher,
        tx,
    ));

    // One validated plugin and one the operator has not validated: only the first is fetched.
    let mut unvalidated = plugin(1, 1, json!({}), b"component v1");
    unvalidated["metadata"]["name"] = json!("draft");
    unvalidated["status"] = json!({});
    let req = next(&mut api.plugins, false).await;
    reply(
        req,
        list(
            "RouterPluginList",
            vec![plugin(1, 1, json!({"k": 1}), b"component v1"), unvalidated],
        ),
    );
    let req = next(&mut api.config_maps, false).await;
    assert!(req
        .0
        .uri()
        .path()
        .ends_with("/namespaces/default/configmaps/pick-wasm"));
    reply(req, config_map(b"component v1"));
    assert_eq!(
        event(&mut rx).await,
        PluginEvent::State(DiscoveryState::Connected)
    );
    let PluginEvent::Upsert(a) = event(&mut rx).await else {
        panic!("expected an upsert")
    };
    assert_eq!(
        (a.namespace.as_str(), a.name.as_str(), a.kind),
        ("default", "pick", PluginKind::Picker)
    );
    assert_eq!(a.bytes, Bytes::from_static(b"component v1"));
    assert_eq!(a.sha256, sha256_hex(b"component v1"));
    assert_eq!(a.config, Some(json!({"k": 1})));
    assert_eq!(a.mode, switchyard_k8s::PluginMode::Shadow);
    assert_eq!(a.failure_policy, switchyard_k8s::FailurePolicy::FailClosed);

    // A new generation the operator has not yet validated changes nothing; once validated,
    // the new config is swapped in without re-fetching the unchanged bytes.
    let req = next(&mut api.plugins, true).await;
    reply(
        req,
        watch_events(&[
            ("MODIFIED", plugin(2, 1, json!({"k": 2}), b"component v1")),
            ("MODIFIED", plugin(2, 2, json!({"k": 2}), b"component v1")),
        ]),
    );
    let PluginEvent::Upsert(b) = event(&mut rx).await else {
        panic!("expected an upsert")
    };
    assert_eq!(b.config, Some(json!({"k": 2})));
    assert_eq!(b.generation, Some(2));
    assert!(
        api.config_maps.try_recv().is_err(),
        "same digest: bytes reused"
    );

    // Deleted: unloaded.
    let req = next(&mut api.plugins, true).await;
    reply(
        req,
        watch_events(&[("DELETED", plugin(2, 2, json!({"k": 2}), b"component v1"))]),
    );
    assert_eq!(
        event(&mut rx).await,
        PluginEvent::Remove {
            namespace: "default".into(),
            name: "pick".into()
        }
    );
    quiet(&mut rx).await;

    drop(rx);
    task.abort();
}

#[tokio::test]
async fn tampered_bytes_are_never_loaded() {
    let (client, mut api) = mock();
    let (tx, mut rx) = unbounded_channel();
    let fetcher = SourceFetcher::new(client.clone(), Arc::new(NoUrls));
    let task = tokio::spawn(run_plugin_discovery(
        client,
        WatchScope::parse("default"),
        fetcher,
        tx,
    ));
    let req = next(&mut api.plugins, false).await;
    reply(
        req,
        list(
            "RouterPluginList",
            vec![plugin(1, 1, json!({}), b"component v1")],
        ),
    );
    // The ConfigMap changed after validation: the frontend's own sha256 check refuses it.
    let req = next(&mut api.config_maps, false).await;
    reply(req, config_map(b"swapped behind our back"));
    assert_eq!(
        event(&mut rx).await,
        PluginEvent::State(DiscoveryState::Connected)
    );
    quiet(&mut rx).await;
    drop(rx);
    task.abort();
}

/// Starts plugin discovery in `default` and answers both initial lists.
async fn start_with(
    plugins: Vec<serde_json::Value>,
) -> (
    MockApi,
    tokio::sync::mpsc::UnboundedReceiver<PluginEvent>,
    tokio::task::JoinHandle<switchyard_k8s::Result<()>>,
) {
    let (client, mut api) = mock();
    let (tx, rx) = unbounded_channel();
    let fetcher = SourceFetcher::new(client.clone(), Arc::new(NoUrls));
    let task = tokio::spawn(run_plugin_discovery(
        client,
        WatchScope::parse("default"),
        fetcher,
        tx,
    ));
    let req = next(&mut api.config_map_watch, false).await;
    assert!(
        req.0.headers().get("accept").is_some_and(|a| a
            .to_str()
            .unwrap_or_default()
            .contains("PartialObjectMetadata")),
        "the ConfigMap watch must be metadata-only: {:?}",
        req.0.headers()
    );
    reply(req, meta_list(vec![]));
    let req = next(&mut api.plugins, false).await;
    reply(req, list("RouterPluginList", plugins));
    (api, rx, task)
}

#[tokio::test]
async fn a_changed_config_map_is_loaded_at_once_and_swapped_live() {
    // Validated for v1, but the frontend reads stale bytes: nothing is loaded.
    let (mut api, mut rx, task) = start_with(vec![validated_plugin(1, b"component v1")]).await;
    let req = next(&mut api.config_maps, false).await;
    reply(req, config_map(b"component v0"));
    assert_eq!(
        event(&mut rx).await,
        PluginEvent::State(DiscoveryState::Connected)
    );
    quiet(&mut rx).await;
    assert!(
        api.config_maps.try_recv().is_err(),
        "no retry before the ConfigMap changes"
    );

    // An unrelated ConfigMap changes: no fetch. Then the plugin's ConfigMap changes: fetched
    // again at once (not after the 30 s retry) and loaded.
    let req = next(&mut api.config_map_watch, true).await;
    reply(
        req,
        watch_events(&[
            ("MODIFIED", config_map_meta("unrelated", "11")),
            ("MODIFIED", config_map_meta("pick-wasm", "12")),
        ]),
    );
    let req = next(&mut api.config_maps, false).await;
    assert!(
        req.0.uri().path().ends_with("/configmaps/pick-wasm"),
        "{}",
        req.0.uri()
    );
    reply(req, config_map(b"component v1"));
    let PluginEvent::Upsert(v1) = event(&mut rx).await else {
        panic!("expected the plugin to load")
    };
    assert_eq!(v1.bytes, Bytes::from_static(b"component v1"));

    // New bytes: the operator validates generation 2 for v2; the frontend swaps them in.
    let cm_watch = next(&mut api.config_map_watch, true).await;
    api.parked.push(cm_watch);
    let req = next(&mut api.plugins, true).await;
    reply(
        req,
        watch_events(&[("MODIFIED", validated_plugin(2, b"component v2"))]),
    );
    let req = next(&mut api.config_maps, false).await;
    reply(req, config_map(b"component v2"));
    let PluginEvent::Upsert(v2) = event(&mut rx).await else {
        panic!("expected the new bytes to be swapped in")
    };
    assert_eq!(v2.bytes, Bytes::from_static(b"component v2"));
    assert_eq!(v2.sha256, sha256_hex(b"component v2"));
    assert_eq!(v2.generation, Some(2));
    quiet(&mut rx).await;
    assert!(api.config_maps.try_recv().is_err(), "no further fetches");
    drop(rx);
    task.abort();
}

/// Each plugin's source is fetched on its own: one whose ConfigMap read hangs (a slow API
/// server, or a URL that takes its whole timeout) does not hold back the others' loads.
#[tokio::test]
async fn a_plugin_whose_fetch_hangs_does_not_delay_the_others() {
    let mut slow = validated_plugin(1, b"slow component");
    slow["metadata"]["name"] = json!("slow");
    slow["spec"]["source"]["configMap"]["name"] = json!("slow-wasm");
    let (mut api, mut rx, task) =
        start_with(vec![slow, validated_plugin(1, b"component v1")]).await;
    let mut hanging = None;
    let mut loaded = false;
    // Both reads arrive without either being answered; the slow one is then left hanging.
    for _ in 0..2 {
        let req = next(&mut api.config_maps, false).await;
        if req.0.uri().path().ends_with("/configmaps/slow-wasm") {
            hanging = Some(req);
        } else {
            reply(req, config_map(b"component v1"));
        }
    }
    assert!(hanging.is_some(), "the slow plugin's read was made");
    assert_eq!(
        event(&mut rx).await,
        PluginEvent::State(DiscoveryState::Connected)
    );
    if let PluginEvent::Upsert(a) = event(&mut rx).await {
        loaded = a.name == "pick";
    }
    assert!(loaded, "pick loads while slow's read is still unanswered");
    drop(hanging);
    drop(rx);
    task.abort();
}
