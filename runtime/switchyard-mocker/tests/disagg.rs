//! Disaggregated serving between two in-process mockers over real sockets: the vLLM handle
//! (prefill answers `kv_transfer_params`, decode pulls them once) and the SGLang room (decode
//! waits for the prefill of its room).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Mocker;
use http::StatusCode;
use serde_json::{json, Value};
use switchyard_mocker::pd::args::{PdArgs, Role};
use switchyard_mocker::MockerArgs;

/// 52 bytes: 13 blocks of one 4-byte token each with `block_size: 1`.
const PROMPT: &str = "the quick brown fox jumps over the lazy dog again ok";

fn args(role: Role, window_ms: u64) -> MockerArgs {
    MockerArgs {
        block_size: 1,
        pd: PdArgs {
            role,
            kv_transfer_window_ms: window_ms,
            ..PdArgs::default()
        },
        ..MockerArgs::default()
    }
}

fn completion(extra: Value) -> String {
    let mut body = json!({"model": "mock-model", "prompt": PROMPT, "max_tokens": 6});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body.to_string()
}

#[tokio::test]
async fn a_vllm_handle_is_pulled_once_and_the_decode_starts_warm() {
    let prefill = Mocker::start(args(Role::Prefill, 60_000)).await;
    let decode = Mocker::start(args(Role::Decode, 60_000)).await;
    let asked = json!({"stream": false, "max_tokens": 1, "kv_transfer_params": {
        "do_remote_decode": true, "do_remote_prefill": false, "remote_engine_id": null,
        "remote_block_ids": null, "remote_host": null, "remote_port": null}});
    let (status, answer) = prefill.post("/v1/completions", &completion(asked)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    let params = answer["kv_transfer_params"].clone();
    assert_eq!(params["do_remote_prefill"], true);
    assert_eq!(params["remote_port"], prefill.addr.port());
    assert_eq!(params["remote_block_ids"].as_array().unwrap().len(), 13);
    assert_eq!(
        prefill.metric("switchyard_mocker_kv_held_blocks").await,
        13.0
    );

    let with_handle = completion(json!({ "kv_transfer_params": params }));
    let (status, decoded) = decode.post("/v1/completions", &with_handle).await;
    assert_eq!(status, StatusCode::OK, "{decoded}");
    assert_eq!(decode.metric("switchyard_mocker_kv_pulls_total").await, 1.0);
    assert_eq!(
        decode
            .metric("switchyard_mocker_prefill_blocks_total")
            .await,
        0.0,
        "warm"
    );
    assert_eq!(
        prefill
            .metric("switchyard_mocker_kv_handed_over_total")
            .await,
        1.0
    );
    assert_eq!(
        prefill.metric("switchyard_mocker_kv_held_blocks").await,
        0.0
    );
    let (_, plain) = prefill
        .post("/v1/completions", &completion(json!({})))
        .await;
    let text = |s: &str| serde_json::from_str::<Value>(s).unwrap()["choices"][0]["text"].clone();
    assert_eq!(
        text(&decoded),
        text(&plain),
        "disaggregation never changes the text"
    );

    // A handle is good once, like the blocks it names.
    let (status, again) = decode.post("/v1/completions", &with_handle).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(again.contains("KV transfer failed"), "{again}");
    assert_eq!(
        decode
            .metric("switchyard_mocker_kv_pull_failures_total")
            .await,
        1.0
    );
}

#[tokio::test]
async fn a_forged_handle_fails_and_recompute_serves_anyway() {
    let prefill = Mocker::start(args(Role::Prefill, 60_000)).await;
    let mut recompute = args(Role::Decode, 60_000);
    recompute.pd.kv_load_failure_policy = switchyard_mocker::pd::args::LoadFailurePolicy::Recompute;
    let decode = Mocker::start(recompute).await;
    let asked = json!({"max_tokens": 1, "kv_transfer_params": {"do_remote_decode": true}});
    let (_, answer) = prefill.post("/v1/completions", &completion(asked)).await;
    let params = serde_json::from_str::<Value>(&answer).unwrap()["kv_transfer_params"].clone();
    // Another engine's id, or block ids the handle never announced (expiry: a unit test).
    let mut forged = params.clone();
    forged["remote_engine_id"] = "someone-else".into();
    let mut wrong_blocks = params.clone();
    wrong_blocks["remote_block_ids"] = json!([1, 2]);
    for p in [forged, wrong_blocks] {
        let (status, body) = decode
            .post(
                "/v1/completions",
                &completion(json!({ "kv_transfer_params": p })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "recompute serves it: {body}");
    }
    assert_eq!(
        decode
            .metric("switchyard_mocker_kv_pull_failures_total")
            .await,
        2.0
    );
    assert_eq!(decode.metric("switchyard_mocker_kv_pulls_total").await, 0.0);
    assert!(
        decode
            .metric("switchyard_mocker_prefill_blocks_total")
            .await
            > 0.0,
        "recomputed"
    );
}

#[tokio::test]
async fn an_sglang_decode_waits_for_the_prefill_of_its_room() {
    let prefill = Mocker::start(args(Role::Prefill, 60_000)).await;
    let decode = Mocker::start(args(Role::Decode, 60_000)).await;
    let boot = json!({"bootstrap_host": "127.0.0.1", "bootstrap_port": prefill.addr.port(),
        "bootstrap_room": 4242, "stream": true});
    let body = completion(boot);
    // The decode request goes first and waits; the prefill then fills the room.
    let waiting = {
        let addr = decode.addr;
        let body = body.clone();
        tokio::spawn(async move {
            let resp = common::send_to(addr, "POST", "/v1/completions", body).await;
            (resp.status(), common::read_all(resp).await)
        })
    };
    let (status, prefilled) = prefill.post("/v1/completions", &body).await;
    assert_eq!(status, StatusCode::OK, "{prefilled}");
    let (status, streamed) = waiting.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(streamed.ends_with("data: [DONE]\n\n"), "{streamed}");
    assert_eq!(decode.metric("switchyard_mocker_kv_pulls_total").await, 1.0);
    assert_eq!(
        prefill
            .metric("switchyard_mocker_remote_prefills_total")
            .await,
        1.0
    );
    assert_eq!(
        prefill
            .metric("switchyard_mocker_kv_handed_over_total")
            .await,
        1.0
    );
}

#[tokio::test]
async fn an_sglang_room_nobody_prefills_fails_the_decode_after_the_window() {
    let prefill = Mocker::start(args(Role::Prefill, 100)).await;
    let decode = Mocker::start(args(Role::Decode, 100)).await;
    let boot = json!({"bootstrap_host": "127.0.0.1", "bootstrap_port": prefill.addr.port(),
        "bootstrap_room": 1});
    let (status, body) = decode.post("/v1/completions", &completion(boot)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body.contains("did not finish in time"), "{body}");
}
