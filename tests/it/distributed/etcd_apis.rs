//! `apis` through etcd: a mocker started with `--native-apis` registers the APIs it serves
//! and the frontend sends it agent requests natively; an entry whose `apis` names an unknown
//! API is rejected by the spec gate with the reason `apis` and gets no traffic.

use std::time::Duration;

use serde_json::json;
use switchyard_tests::http::{metric, post_json};
use switchyard_tests::mocker;
use switchyard_tests::services::Etcd;

use super::{etcd_frontend, eventually, ids, instance_ids, registered_mocker, TOKEN};
use crate::MODEL;

#[tokio::test]
async fn a_registered_native_worker_gets_agent_requests_natively_and_bad_apis_are_refused() {
    let etcd = Etcd::start().await.unwrap();
    let native = registered_mocker(&etcd, "native", "30", &["--native-apis", "responses"]).await;
    let bait = mocker(&[]).await.unwrap();
    let mut client = etcd_client::Client::connect([etcd.url()], None)
        .await
        .unwrap();
    let hostile = json!({"id": "bait", "model": MODEL, "url": bait.url(), "apis": ["gemini"]});
    client
        .put(
            format!("/switchyard/instances/{MODEL}/bait"),
            hostile.to_string(),
            None,
        )
        .await
        .unwrap();

    let fe = etcd_frontend(&etcd, &["--admin-token", TOKEN]).await;
    eventually(
        Duration::from_secs(15),
        "the native instance routed",
        || async { (instance_ids(&fe).await == ids(&["native"])).then_some(()) },
    )
    .await;
    let rejected = "switchyard_discovery_rejected_total{source=\"etcd\",reason=\"apis\"}";
    assert_eq!(metric(&fe.url(), rejected).await, 1.0);

    let body = json!({"model": MODEL, "input": "hi", "max_output_tokens": 3});
    let (status, _, v) = post_json(&format!("{}/v1/responses", fe.url()), &body, &[])
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    let route = |r: &str| format!("switchyard_mocker_route_requests_total{{route=\"{r}\"}}");
    assert_eq!(metric(&native.url(), &route("responses")).await, 1.0);
    assert_eq!(metric(&native.url(), &route("chat")).await, 0.0);
    assert_eq!(
        metric(&bait.url(), "switchyard_mocker_requests_total").await,
        0.0
    );
}
