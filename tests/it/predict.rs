//! Predicted-TTFT routing (`kv: {mode: predictive}`; `kv` is `serve`'s default policy) on a
//! heterogeneous pool: two mockers prefill at twice the others' time per block. After a
//! warm-up of streamed requests has taught every instance its rates, a long uncached prompt
//! goes to a fast instance, and explain shows every candidate's predicted TTFT.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::http::{metric, post_json, post_sse};
use switchyard_tests::{frontend, frontend_with_config, mocker, worker_flags, Proc};

use crate::plugins::{admin, EXPLAIN, TOKEN};
use crate::MODEL;

/// A prompt of ~40 uncached blocks (16 tokens of ~4 bytes each), unique from its first byte.
fn long_prompt(tag: &str) -> Value {
    let filler = "lorem ipsum dolor sit amet ".repeat(95);
    json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": format!("{tag} {filler}")}],
        "max_tokens": 2,
    })
}

/// Four concurrent streamed long prompts, unique to `round`.
async fn warm_up_round(url: &str, round: usize) {
    let batch = (0..4).map(|k| {
        let mut body = long_prompt(&format!("warm-up {round}.{k}"));
        body["stream"] = json!(true);
        async move { post_sse(url, &body).await.unwrap().0 }
    });
    for status in futures_util::future::join_all(batch).await {
        assert_eq!(status, 200);
    }
}

fn id_of(p: &Proc) -> String {
    p.url().trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn the_default_policy_learns_a_slow_pool_and_sends_long_prompts_to_fast_instances() {
    let mut fast = Vec::new();
    let mut slow = Vec::new();
    for _ in 0..2 {
        fast.push(mocker(&["--ttft-ms", "2"]).await.unwrap());
        slow.push(mocker(&["--ttft-ms", "4"]).await.unwrap());
    }
    let all: Vec<&Proc> = fast.iter().chain(&slow).collect();
    let mut args = worker_flags(MODEL, &all);
    // No --policy: the default is `kv`; its predictive mode is opt-in.
    args.extend(["--admin-token", TOKEN, "--explain-token", EXPLAIN].map(str::to_owned));
    let (fe, _dir) = frontend_with_config("kv:\n  mode: predictive\n", &args)
        .await
        .unwrap();
    let url = format!("{}/v1/chat/completions", fe.url());

    // Warm-up: streamed requests, four at a time, until every instance learned from
    // `kv.predict.min_samples` (8) first tokens; then one more round, predicted from the
    // learned rates (a slow instance may get nothing more once it is known to be slow).
    let samples = |p: &Proc| {
        format!(
            "switchyard_instance_ttft_samples{{worker=\"{}\",model=\"{MODEL}\"}}",
            id_of(p)
        )
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut round = 0;
    loop {
        let mut learned = true;
        for p in &all {
            learned &= metric(&fe.url(), &samples(p)).await >= 8.0;
        }
        warm_up_round(&url, round).await;
        round += 1;
        if learned {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "warm-up never taught every instance"
        );
    }

    let fast_ids: Vec<String> = fast.iter().map(id_of).collect();
    for n in 0..5 {
        let (status, headers, _) = post_json(
            &url,
            &long_prompt(&format!("measured {n}")),
            &[("x-switchyard-explain", EXPLAIN)],
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
        let served = headers["x-switchyard-instance"]
            .to_str()
            .unwrap()
            .to_owned();
        let id = headers["x-request-id"].to_str().unwrap();
        let e: Value = admin(&fe, &format!("/admin/explain/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(e["stages"][0]["plugin"], "native:kv", "{e}");
        let predicted: Vec<(String, f64)> = e["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let ms = c["predicted_ttft_ms"].as_f64();
                (
                    c["instance"].as_str().unwrap().to_owned(),
                    ms.unwrap_or(f64::NAN),
                )
            })
            .collect();
        assert_eq!(predicted.len(), 4, "{e}");
        assert!(
            predicted.iter().all(|(_, ms)| ms.is_finite() && *ms > 0.0),
            "{e}"
        );
        assert!(
            fast_ids.contains(&served),
            "a long uncached prompt went to slow {served}: {predicted:?}"
        );
    }
    // Predictions from learned rates were compared with the observed TTFT.
    let errors = format!(
        "switchyard_ttft_prediction_error_ratio_count{{learned=\"true\",model=\"{MODEL}\"}}"
    );
    assert!(metric(&fe.url(), &errors).await > 0.0);
}

#[tokio::test]
async fn a_malformed_ttft_target_header_is_a_400_in_the_openai_shape() {
    let m = mocker(&[]).await.unwrap();
    let fe = frontend(&worker_flags(MODEL, &[&m])).await.unwrap();
    let url = format!("{}/v1/chat/completions", fe.url());
    for bad in ["soon", "0", "-3", "1e9"] {
        let (status, _, body) = post_json(
            &url,
            &crate::chat("x", 2, false),
            &[("x-switchyard-ttft-slo-ms", bad)],
        )
        .await
        .unwrap();
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
        assert_eq!(body["error"]["param"], "x-switchyard-ttft-slo-ms", "{body}");
    }
    // A valid target routes as usual.
    let (status, _, _) = post_json(
        &url,
        &crate::chat("x", 2, false),
        &[("x-switchyard-ttft-slo-ms", "250")],
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
}
