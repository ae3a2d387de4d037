//! WIT 0.2.0 plugins in a running frontend: a 0.2.0 scorer receives the candidate frame
//! (its columns line up with the explained candidates) next to a 0.1.0 scorer in the same
//! chain.

use serde_json::Value;
use switchyard_tests::frontend_with_config;
use switchyard_tests::http::post_json;

use crate::chat;
use crate::plugins::{admin, args_with, mockers, wasm, EXPLAIN};

#[tokio::test]
async fn a_0_2_plugin_gets_the_frame_beside_a_0_1_plugin_in_a_running_frontend() {
    let m = mockers(3, &[]).await;
    // `echo=id`: the 0.2.0 scorer scores each candidate with its frame `id` column.
    let yaml = format!(
        "plugins:\n  - name: echo-v02\n    kind: scorer\n    path: {}\n    config: \"echo=id\"\n  - name: least-loaded-v01\n    kind: scorer\n    path: {}\n    weight: 0\n",
        wasm("testing-frame-echo"),
        wasm("testing-least-loaded-v01"),
    );
    let (fe, _dir) = frontend_with_config(&yaml, &args_with(&m, &[]))
        .await
        .unwrap();
    let (status, headers, _) = post_json(
        &format!("{}/v1/chat/completions", fe.url()),
        &chat("x", 2, false),
        &[("x-switchyard-explain", EXPLAIN)],
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let id = headers["x-request-id"].to_str().unwrap();
    let e: Value = admin(&fe, &format!("/admin/explain/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let candidates = e["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 3, "{e}");
    let id_of = |name: &str| {
        candidates
            .iter()
            .find(|c| c["instance"] == name)
            .and_then(|c| c["id"].as_f64())
            .unwrap_or_else(|| panic!("no candidate {name}: {e}"))
    };
    let stage = |name: &str| {
        e["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["plugin"] == name)
            .unwrap_or_else(|| panic!("no stage {name}: {e}"))
            .clone()
    };
    let echo = stage("echo-v02");
    let scores = echo["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 3, "{e}");
    for pair in scores {
        let name = pair[0].as_str().unwrap();
        assert_eq!(pair[1].as_f64(), Some(id_of(name)), "{e}");
    }
    // The 0.1.0 scorer ran in the same chain (weight 0: it does not change the pick).
    let v01 = stage("least-loaded-v01");
    assert_eq!(v01["scores"].as_array().unwrap().len(), 3, "{e}");
    assert!(v01["error"].is_null(), "{e}");
    // Highest id scores highest, so it is picked and served the request.
    let best = candidates
        .iter()
        .max_by(|a, b| {
            a["id"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["id"].as_f64().unwrap())
        })
        .unwrap();
    assert_eq!(e["pick"][0], best["instance"], "{e}");
    assert_eq!(
        headers["x-switchyard-instance"].to_str().unwrap(),
        best["instance"].as_str().unwrap()
    );
}
