//! Instances from WorkerPools and EndpointSlices.

use switchyard_k8s::instances::PoolModels;
use switchyard_k8s::{run_discovery, WatchScope};
use switchyard_runtime::instance::CanaryOverride;
use switchyard_runtime::{DiscoveryEvent, DiscoveryState};
use tokio::sync::mpsc::unbounded_channel;
use tokio::sync::watch;

use super::mock::*;

#[tokio::test]
async fn instances_appear_change_and_disappear() {
    let (client, mut api) = mock();
    let (tx, mut rx) = unbounded_channel();
    let (pools_tx, pools) = watch::channel(PoolModels::new());
    let task = tokio::spawn(run_discovery(
        client,
        WatchScope::parse("default"),
        Default::default(),
        tx,
        pools_tx,
    ));

    let req = next(&mut api.pools, false).await;
    assert!(req
        .0
        .uri()
        .path()
        .starts_with("/apis/switchyard.dev/v1alpha1/namespaces/default/workerpools"));
    reply(req, list("WorkerPoolList", vec![pool(2.0, "1")]));
    let req = next(&mut api.slices, false).await;
    assert!(
        req.0
            .uri()
            .query()
            .unwrap()
            .contains("labelSelector=switchyard.dev%2Fpool"),
        "{}",
        req.0.uri()
    );
    reply(
        req,
        list(
            "EndpointSliceList",
            vec![slice(
                &[
                    ("10.0.0.7", "llama-a", true),
                    ("10.0.0.8", "llama-b", false),
                ],
                "2",
            )],
        ),
    );

    assert_eq!(
        event(&mut rx).await,
        DiscoveryEvent::State(DiscoveryState::Connected)
    );
    // The pool's model is declared before its instances arrive.
    assert_eq!(
        event(&mut rx).await,
        DiscoveryEvent::Models(vec!["meta-llama/Llama-3.1-8B-Instruct".into()])
    );
    let DiscoveryEvent::Snapshot(snapshot) = event(&mut rx).await else {
        panic!("expected a snapshot")
    };
    assert_eq!(snapshot.len(), 1, "only ready endpoints: {snapshot:?}");
    let a = &snapshot[0];
    assert_eq!(a.id, "default/llama/llama-a");
    assert_eq!(a.model, "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!(a.url, "http://10.0.0.7:8000");
    assert_eq!(a.engine, switchyard_runtime::Engine::Vllm);
    assert_eq!(a.weight, 2.0);
    assert_eq!(a.labels["zone"], "a");
    assert_eq!(a.labels["switchyard.dev/pool"], "llama");
    // The pool's spec.health drives the frontend's idle canary for its instances.
    let canary = a.canary.clone().expect("a canary override");
    let body: serde_json::Value = serde_json::from_str(canary.body.as_deref().unwrap()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"model": "{model}", "prompt": "ping", "max_tokens": 1})
    );
    assert_eq!(
        canary,
        CanaryOverride {
            path: Some("/v1/completions".into()),
            body: canary.body.clone(),
            idle_ms: Some(12_000),
            timeout_ms: Some(3_000),
        }
    );
    // And the pool's model is known, for RouterPlugins that apply to pools.
    assert_eq!(
        *pools.borrow(),
        PoolModels::from([(
            ("default".to_string(), "llama".to_string()),
            "meta-llama/Llama-3.1-8B-Instruct".to_string()
        )])
    );

    // The second pod becomes ready.
    let pool_watch = next(&mut api.pools, true).await;
    api.parked.push(pool_watch);
    let req = next(&mut api.slices, true).await;
    reply(
        req,
        watch_events(&[(
            "MODIFIED",
            slice(
                &[("10.0.0.7", "llama-a", true), ("10.0.0.8", "llama-b", true)],
                "3",
            ),
        )]),
    );
    let DiscoveryEvent::Upsert(b) = event(&mut rx).await else {
        panic!("expected an upsert")
    };
    assert_eq!(
        (b.id.as_str(), b.url.as_str()),
        ("default/llama/llama-b", "http://10.0.0.8:8000")
    );

    // The first pod goes away (rolling update).
    let req = next(&mut api.slices, true).await;
    reply(
        req,
        watch_events(&[("MODIFIED", slice(&[("10.0.0.8", "llama-b", true)], "4"))]),
    );
    assert_eq!(
        event(&mut rx).await,
        DiscoveryEvent::Remove {
            id: "default/llama/llama-a".into()
        }
    );

    // The pool's routing weight changes: its instances are re-announced.
    let pool_watch = api.parked.pop().unwrap();
    reply(pool_watch, watch_events(&[("MODIFIED", pool(3.0, "5"))]));
    let DiscoveryEvent::Upsert(b) = event(&mut rx).await else {
        panic!("expected an upsert")
    };
    assert_eq!(b.weight, 3.0);

    // The pool is deleted: its instances disappear even before the slice does.
    let req = next(&mut api.pools, true).await;
    reply(req, watch_events(&[("DELETED", pool(3.0, "6"))]));
    assert_eq!(event(&mut rx).await, DiscoveryEvent::Models(Vec::new()));
    assert_eq!(
        event(&mut rx).await,
        DiscoveryEvent::Remove {
            id: "default/llama/llama-b".into()
        }
    );
    quiet(&mut rx).await;
    assert!(pools.borrow().is_empty(), "a deleted pool serves no model");

    drop(rx);
    task.abort();
}

/// Namespace of a namespaced request path (`…/namespaces/<ns>/…`).
fn namespace_of(pending: &Pending) -> String {
    let path = pending.0.uri().path();
    let rest = path
        .split("/namespaces/")
        .nth(1)
        .unwrap_or_else(|| panic!("cluster-wide request {path}"));
    rest.split('/').next().unwrap().to_string()
}

#[tokio::test]
async fn a_namespace_list_watches_each_namespace_and_merges_them() {
    let (client, mut api) = mock();
    let (tx, mut rx) = unbounded_channel();
    let task = tokio::spawn(run_discovery(
        client,
        WatchScope::parse("team-b,team-a"),
        Default::default(),
        tx,
        watch::channel(PoolModels::new()).0,
    ));

    // One namespaced list per namespace and resource (a Role in each suffices), never `Api::all`.
    let mut seen = Vec::new();
    for _ in 0..2 {
        let req = next(&mut api.pools, false).await;
        let ns = namespace_of(&req);
        // Each namespace serves a model of its own: one model name belongs to one namespace.
        let mut pool = pool_in(&ns, 1.0, "1");
        pool["spec"]["model"] = format!("model-{ns}").into();
        reply(req, list("WorkerPoolList", vec![pool]));
        seen.push(ns);
    }
    for _ in 0..2 {
        let req = next(&mut api.slices, false).await;
        let ns = namespace_of(&req);
        let ip = if ns == "team-a" {
            "10.0.1.1"
        } else {
            "10.0.2.1"
        };
        reply(
            req,
            list(
                "EndpointSliceList",
                vec![slice_in(&ns, &[(ip, "llama-0", true)], "2")],
            ),
        );
        seen.push(ns);
    }
    seen.sort();
    assert_eq!(seen, ["team-a", "team-a", "team-b", "team-b"]);

    assert_eq!(
        event(&mut rx).await,
        DiscoveryEvent::State(DiscoveryState::Connected)
    );
    let DiscoveryEvent::Models(models) = event(&mut rx).await else {
        panic!("expected the pools' models first")
    };
    assert_eq!(models, ["model-team-a", "model-team-b"]);
    let DiscoveryEvent::Snapshot(mut snapshot) = event(&mut rx).await else {
        panic!("expected one snapshot of both namespaces")
    };
    snapshot.sort_by(|a, b| a.id.cmp(&b.id));
    let got: Vec<(&str, &str)> = snapshot
        .iter()
        .map(|i| (i.id.as_str(), i.url.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("team-a/llama/llama-0", "http://10.0.1.1:8000"),
            ("team-b/llama/llama-0", "http://10.0.2.1:8000")
        ]
    );
    quiet(&mut rx).await;
    drop(rx);
    task.abort();
}
