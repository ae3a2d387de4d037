//! Disaggregated prefill/decode through real processes: a frontend, a `--role prefill` and a
//! `--role decode` mocker, in vLLM's and SGLang's protocols. The mockers' own counters show
//! which stage reached which instance with which fields (a pull succeeds only with the
//! handle or room the prefill really holds).

use std::time::Duration;

use serde_json::Value;
use switchyard_tests::http::{metric, post_json, post_sse, response_text, stream_text};
use switchyard_tests::{frontend_with_config, mocker, Proc};

use crate::distributed::eventually;
use crate::{chat, MODEL};

/// 4-token blocks on both sides; a 4-byte token without a tokenizer.
const BLOCK: &str = "4";

fn long_prompt(tag: &str) -> String {
    format!(
        "{tag}: {}",
        "a long document about rivers and their many bends ".repeat(8)
    )
}

/// The `kv` policy on purpose: its approximate index records the decode pick as holding the
/// prompt before the disaggregation decision runs, which must not make the prompt look cached.
fn config(protocol: &str, prefill: &Proc, decode: &Proc) -> String {
    let port = prefill.url().rsplit(':').next().unwrap().to_owned();
    format!(
        "routing:\n  policy: kv\nprobe:\n  interval_ms: 0\ncanary:\n  idle_ms: 0\nload_scrape:\n  interval_ms: 0\n\
         kv:\n  block_size: {BLOCK}\n\
         disaggregation:\n  pd_protocol: {protocol}\n  min_uncached_tokens: 32\n\
         workers:\n\
         \x20 - {{model: {MODEL}, url: \"{}\", id: prefill, role: prefill, bootstrap_port: {port}}}\n\
         \x20 - {{model: {MODEL}, url: \"{}\", id: decode, role: decode}}\n",
        prefill.url(),
        decode.url()
    )
}

async fn pool(protocol: &str, prefill_flags: &[&str]) -> (Proc, Proc, Proc, tempfile::TempDir) {
    let mut flags = vec!["--role", "prefill", "--block-size", BLOCK];
    flags.extend_from_slice(prefill_flags);
    let prefill = mocker(&flags).await.unwrap();
    let decode = mocker(&["--role", "decode", "--block-size", BLOCK, "--itl-ms", "20"])
        .await
        .unwrap();
    let (fe, dir) = frontend_with_config(&config(protocol, &prefill, &decode), &[])
        .await
        .unwrap();
    (fe, prefill, decode, dir)
}

/// The text an aggregated mocker gives for this request (every mocker gives the same).
async fn expected(worker: &Proc, body: &Value) -> String {
    let mut body = body.clone();
    body["stream"] = false.into();
    let (status, _, v) = post_json(&format!("{}/v1/chat/completions", worker.url()), &body, &[])
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    response_text(&v)
}

#[tokio::test]
async fn long_prompts_disaggregate_and_short_ones_stay_aggregated_in_both_protocols() {
    for protocol in ["vllm", "sglang"] {
        let (fe, prefill, decode, _dir) = pool(protocol, &[]).await;
        let url = format!("{}/v1/chat/completions", fe.url());

        let long = chat(&long_prompt(protocol), 12, true);
        let (status, headers, events) = post_sse(&url, &long).await.unwrap();
        assert_eq!(status, 200, "{protocol}: {events:?}");
        assert_eq!(headers["x-switchyard-instance"], "decode", "{protocol}");
        let text = stream_text(&events);
        assert_eq!(text, expected(&decode, &long).await, "{protocol}");
        // One prefill for a remote decode, handed over once, pulled once by the decode side.
        let m = |p: &Proc, s: &'static str| {
            let u = p.url();
            async move { metric(&u, s).await }
        };
        assert_eq!(
            m(&prefill, "switchyard_mocker_remote_prefills_total").await,
            1.0,
            "{protocol}"
        );
        assert_eq!(
            m(&prefill, "switchyard_mocker_kv_handed_over_total").await,
            1.0,
            "{protocol}"
        );
        assert_eq!(
            m(&decode, "switchyard_mocker_kv_pulls_total").await,
            1.0,
            "{protocol}"
        );
        assert_eq!(
            m(&decode, "switchyard_mocker_kv_pull_failures_total").await,
            0.0,
            "{protocol}"
        );
        assert_eq!(
            m(
                &fe,
                "switchyard_pd_decisions_total{decision=\"disaggregated\""
            )
            .await,
            1.0,
            "{protocol}"
        );

        // Not streamed: the same path.
        let mut whole = chat(&long_prompt(&format!("{protocol} whole")), 5, false);
        whole["stream"] = false.into();
        let (status, _, v) = post_json(&url, &whole, &[]).await.unwrap();
        assert_eq!(status, 200, "{protocol}: {v}");
        assert_eq!(
            response_text(&v),
            expected(&decode, &whole).await,
            "{protocol}"
        );
        assert_eq!(
            m(&decode, "switchyard_mocker_kv_pulls_total").await,
            2.0,
            "{protocol}"
        );

        // A short prompt never reaches the prefill instance.
        let before = m(&prefill, "switchyard_mocker_requests_total").await;
        let (status, headers, _) = post_json(&url, &chat("hi", 3, false), &[]).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(headers["x-switchyard-instance"], "decode");
        assert_eq!(
            m(&prefill, "switchyard_mocker_requests_total").await,
            before,
            "{protocol}"
        );
        assert_eq!(
            m(
                &fe,
                "switchyard_pd_decisions_total{decision=\"aggregated\",reason=\"short_prompt\""
            )
            .await,
            1.0,
            "{protocol}"
        );
    }
}

#[tokio::test]
async fn a_dead_prefill_instance_falls_back_to_aggregated_with_the_exact_text() {
    for protocol in ["vllm", "sglang"] {
        let (fe, prefill, decode, _dir) = pool(protocol, &[]).await;
        drop(prefill); // killed
        let body = chat(&long_prompt("fallback"), 10, true);
        let (status, headers, events) =
            post_sse(&format!("{}/v1/chat/completions", fe.url()), &body)
                .await
                .unwrap();
        assert_eq!(status, 200, "{protocol}: {events:?}");
        assert_eq!(headers["x-switchyard-instance"], "decode");
        assert_eq!(
            stream_text(&events),
            expected(&decode, &body).await,
            "{protocol}"
        );
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        assert_eq!(
            metric(&fe.url(), "switchyard_pd_fallbacks_total").await,
            1.0,
            "{protocol}"
        );
        assert_eq!(
            metric(&fe.url(), "switchyard_pd_prefill_failures_total").await,
            1.0,
            "{protocol}"
        );
        // The decode instance served it whole: nothing was pulled.
        assert_eq!(
            metric(&decode.url(), "switchyard_mocker_kv_pulls_total").await,
            0.0
        );
    }
}

/// Sends a long streamed request, waits until `busy` is computing it, then goes away.
async fn leave_while_busy(fe: &Proc, busy: &Proc) {
    let body = chat(&long_prompt("cancelled"), 50, true);
    let url = format!("{}/v1/chat/completions", fe.url());
    let request = tokio::spawn(async move { post_sse(&url, &body).await });
    eventually(
        Duration::from_secs(20),
        "the slow prefill is running",
        || async { (metric(&busy.url(), "switchyard_mocker_running").await == 1.0).then_some(()) },
    )
    .await;
    request.abort();
}

#[tokio::test]
async fn a_client_that_leaves_cancels_the_stages_in_flight() {
    // vLLM: the prefill is in flight (slow: 100 ms per block) when the client leaves.
    let (fe, prefill, _decode, _dir) = pool("vllm", &["--ttft-ms", "100"]).await;
    leave_while_busy(&fe, &prefill).await;
    eventually(
        Duration::from_secs(20),
        "the prefill sees the cancel",
        || async {
            (metric(&prefill.url(), "switchyard_mocker_requests_cancelled_total").await == 1.0)
                .then_some(())
        },
    )
    .await;

    // SGLang: both sides are in flight at once (the decode waits for the room).
    let (fe, prefill, decode, _dir) = pool("sglang", &["--ttft-ms", "100"]).await;
    leave_while_busy(&fe, &prefill).await;
    for side in [&prefill, &decode] {
        eventually(
            Duration::from_secs(20),
            "both sides see the cancel",
            || async {
                (metric(&side.url(), "switchyard_mocker_requests_cancelled_total").await == 1.0)
                    .then_some(())
            },
        )
        .await;
    }
}

#[tokio::test]
async fn a_decode_dying_mid_stream_migrates_with_the_exact_text_and_roles_are_shown() {
    let prefill = mocker(&["--role", "prefill", "--block-size", BLOCK])
        .await
        .unwrap();
    let dying = mocker(&[
        "--role",
        "decode",
        "--block-size",
        BLOCK,
        "--die-after-tokens",
        "5",
    ])
    .await
    .unwrap();
    let steady = mocker(&["--role", "decode", "--block-size", BLOCK])
        .await
        .unwrap();
    // Round-robin over the two decode instances: of two requests, one lands on the dying one.
    let yaml = format!(
        "routing:\n  policy: round-robin\nmigration_limit: 2\nprobe:\n  interval_ms: 0\n\
         canary:\n  idle_ms: 0\nload_scrape:\n  interval_ms: 0\nkv:\n  block_size: {BLOCK}\n\
         disaggregation:\n  min_uncached_tokens: 32\nworkers:\n\
         \x20 - {{model: {MODEL}, url: \"{}\", id: prefill, role: prefill}}\n\
         \x20 - {{model: {MODEL}, url: \"{}\", id: dying, role: decode}}\n\
         \x20 - {{model: {MODEL}, url: \"{}\", id: steady, role: decode}}\n",
        prefill.url(),
        dying.url(),
        steady.url()
    );
    let token = "pd-admin-token";
    let (fe, _dir) = frontend_with_config(&yaml, &["--admin-token".to_owned(), token.to_owned()])
        .await
        .unwrap();
    let admin: Value = reqwest::Client::new()
        .get(format!("{}/admin/instances", fe.admin_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let roles: Vec<(String, String)> = admin["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_owned(),
                i["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        roles.contains(&("prefill".into(), "prefill".into())),
        "{roles:?}"
    );
    assert!(
        roles.contains(&("dying".into(), "decode".into())),
        "{roles:?}"
    );
    assert_eq!(
        metric(
            &fe.url(),
            "switchyard_instance_info{worker=\"prefill\",model=\"mock-model\",role=\"prefill\"}"
        )
        .await,
        1.0
    );

    for i in 0..2 {
        let body = chat(&long_prompt(&format!("migrate {i}")), 12, true);
        let (status, _, events) = post_sse(&format!("{}/v1/chat/completions", fe.url()), &body)
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert_eq!(
            stream_text(&events),
            expected(&steady, &body).await,
            "request {i}"
        );
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    }
    assert_eq!(
        metric(&fe.url(), "switchyard_stream_migrations_total").await,
        1.0
    );
    assert_eq!(
        metric(&prefill.url(), "switchyard_mocker_remote_prefills_total").await,
        2.0,
        "both requests were disaggregated"
    );
}

#[tokio::test]
async fn with_retry_a_failing_prefill_is_replaced_by_another_prefill_not_by_aggregation() {
    let failing = mocker(&[
        "--role",
        "prefill",
        "--block-size",
        BLOCK,
        "--fail-rate",
        "1",
    ])
    .await
    .unwrap();
    let working = mocker(&["--role", "prefill", "--block-size", BLOCK])
        .await
        .unwrap();
    let decode = mocker(&["--role", "decode", "--block-size", BLOCK])
        .await
        .unwrap();
    let yaml = format!(
        "probe:\n  interval_ms: 0\ncanary:\n  idle_ms: 0\nload_scrape:\n  interval_ms: 0\n\
         kv:\n  block_size: {BLOCK}\n\
         disaggregation:\n  min_uncached_tokens: 32\n  on_prefill_failure: retry\nworkers:\n\
         \x20 - {{model: {MODEL}, url: \"{}\", id: failing, role: prefill}}\n\
         \x20 - {{model: {MODEL}, url: \"{}\", id: working, role: prefill}}\n\
         \x20 - {{model: {MODEL}, url: \"{}\", id: decode, role: decode}}\n",
        failing.url(),
        working.url(),
        decode.url()
    );
    let (fe, _dir) = frontend_with_config(&yaml, &[]).await.unwrap();
    // Equal prefill instances are ranked at random: send until one request met the failing
    // one first (each does with probability 1/2).
    let mut sent = 0;
    while metric(&fe.url(), "switchyard_pd_prefill_failures_total").await == 0.0 {
        assert!(
            sent < 20,
            "the failing prefill instance was never ranked first"
        );
        let body = chat(&long_prompt(&format!("retry {sent}")), 6, true);
        let (status, _, events) = post_sse(&format!("{}/v1/chat/completions", fe.url()), &body)
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert_eq!(stream_text(&events), expected(&decode, &body).await);
        sent += 1;
    }
    assert_eq!(
        metric(&fe.url(), "switchyard_pd_fallbacks_total").await,
        0.0
    );
    let pulled = metric(&decode.url(), "switchyard_mocker_kv_pulls_total").await;
    assert_eq!(pulled, f64::from(sent), "every request was disaggregated");
    assert_eq!(
        metric(&working.url(), "switchyard_mocker_remote_prefills_total").await,
        f64::from(sent)
    );
}

#[tokio::test]
async fn roles_and_the_bootstrap_port_arrive_through_etcd() {
    use crate::distributed::{instance_count, registered_mocker};
    let etcd = switchyard_tests::services::Etcd::start().await.unwrap();
    // A `--role prefill` mocker registers its role and its listen port as `bootstrap_port`;
    // the SGLang protocol cannot run without that port.
    let prefill = registered_mocker(
        &etcd,
        "p",
        "10",
        &["--role", "prefill", "--block-size", BLOCK],
    )
    .await;
    let decode = registered_mocker(
        &etcd,
        "d",
        "10",
        &["--role", "decode", "--block-size", BLOCK],
    )
    .await;
    let yaml = format!(
        "discovery: etcd\netcd: \"{}\"\nprobe:\n  interval_ms: 0\ncanary:\n  idle_ms: 0\n\
         load_scrape:\n  interval_ms: 0\nkv:\n  block_size: {BLOCK}\n\
         disaggregation:\n  pd_protocol: sglang\n  min_uncached_tokens: 32\n",
        etcd.url()
    );
    let (fe, _dir) = frontend_with_config(&yaml, &[]).await.unwrap();
    eventually(
        Duration::from_secs(20),
        "both mockers discovered",
        || async { (instance_count(&fe).await == 2).then_some(()) },
    )
    .await;
    let body = chat(&long_prompt("etcd"), 8, true);
    let (status, headers, events) = post_sse(&format!("{}/v1/chat/completions", fe.url()), &body)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(headers["x-switchyard-instance"], "d");
    assert_eq!(stream_text(&events), expected(&decode, &body).await);
    assert_eq!(
        metric(&prefill.url(), "switchyard_mocker_remote_prefills_total").await,
        1.0
    );
    assert_eq!(
        metric(&decode.url(), "switchyard_mocker_kv_pulls_total").await,
        1.0
    );
}

#[tokio::test]
async fn the_prefill_leg_continues_the_clients_trace_in_both_protocols() {
    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    for protocol in ["vllm", "sglang"] {
        let (fe, prefill, decode, _dir) = pool(protocol, &[]).await;
        let url = format!("{}/v1/chat/completions", fe.url());
        let parent = format!("00-{TRACE_ID}-00f067aa0ba902b7-01");
        let long = chat(&long_prompt(&format!("{protocol} traced")), 4, false);
        let (status, _, v) = post_json(&url, &long, &[("traceparent", parent.as_str())])
            .await
            .unwrap();
        assert_eq!(status, 200, "{protocol}: {v}");
        for (leg, worker) in [("prefill", &prefill), ("decode", &decode)] {
            let sent: Vec<String> = reqwest::get(format!("{}/debug/traceparents", worker.url()))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(sent.len(), 1, "{protocol} {leg}: {sent:?}");
            assert!(
                sent[0].starts_with(&format!("00-{TRACE_ID}-")),
                "{protocol} {leg}: {}",
                sent[0]
            );
            assert!(
                !sent[0].contains("00f067aa0ba902b7"),
                "a fresh span id per leg"
            );
        }
    }
}
