//! What a native agent-API request carries to its worker, and how a native stream ends
//! when its worker goes quiet: Anthropic's version and beta headers go along, the client's
//! own key never does (the worker gets its configured key), and a stalled stream ends with
//! the API's own failure event within the stall timeout. Observed through the mocker's own
//! counters (`switchyard_mocker_native_headers_total`), never through logs.

use serde_json::Value;
use switchyard_tests::http::{metric, post_json, post_sse};
use switchyard_tests::{frontend_with_config, mocker, mocker_with_key, Proc};

use crate::agent_native::{messages_body, responses_body, route_count, NATIVE};
use crate::tenants::sha256_hex;
use crate::MODEL;

async fn header_count(m: &Proc, header: &str, value: &str) -> f64 {
    let series =
        format!("switchyard_mocker_native_headers_total{{header=\"{header}\",value=\"{value}\"}}");
    metric(&m.url(), &series).await
}

#[tokio::test]
async fn a_native_messages_request_carries_anthropics_headers_and_the_workers_key_never_the_clients(
) {
    const WORKER_KEY: &str = "sk-worker-native-7c1";
    const TENANT_KEY: &str = "sk-tenant-native-3e9";
    let m = mocker_with_key(WORKER_KEY, &["--native-apis", NATIVE])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("worker-key");
    std::fs::write(&key_file, WORKER_KEY).unwrap();
    let yaml = format!(
        "tenants:\n  - id: team\n    key_sha256: {}\nworkers:\n  - {{model: {MODEL}, url: \"{}\", \
         apis: [responses, messages], api_key_file: \"{}\"}}\n",
        sha256_hex(TENANT_KEY),
        m.url(),
        key_file.display()
    );
    let (fe, _config) = frontend_with_config(&yaml, &[]).await.unwrap();
    let url = format!("{}/v1/messages", fe.url());
    let bearer = format!("Bearer {TENANT_KEY}");
    // The client's key as Anthropic's SDK sends it, then as OpenAI-style clients do.
    for key in [
        ("x-api-key", TENANT_KEY),
        ("authorization", bearer.as_str()),
    ] {
        let headers = [
            key,
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "tools-2024-04-04"),
        ];
        let (status, _, v) = post_json(&url, &messages_body(false), &headers)
            .await
            .unwrap();
        // The mocker, like vLLM and SGLang, answers only `Authorization: Bearer <its key>`.
        assert_eq!(status, 200, "{v}");
    }
    assert_eq!(route_count(&m, "messages").await, 2.0);
    assert_eq!(
        header_count(&m, "anthropic-version", "2023-06-01").await,
        2.0
    );
    assert_eq!(
        header_count(&m, "anthropic-beta", "tools-2024-04-04").await,
        2.0
    );
    assert_eq!(header_count(&m, "authorization", "worker-key").await, 2.0);
    for header in ["authorization", "x-api-key"] {
        assert_eq!(header_count(&m, header, "other").await, 0.0, "{header}");
    }
    assert_eq!(header_count(&m, "x-api-key", "worker-key").await, 0.0);
}

#[tokio::test]
async fn a_stalled_native_stream_ends_with_the_apis_failure_event() {
    let m = mocker(&["--native-apis", NATIVE, "--stall-after-tokens", "3"])
        .await
        .unwrap();
    let yaml = format!(
        "probe:\n  interval_ms: 0\nupstream:\n  stall_timeout_ms: 400\nhealth:\n  \
         failure_threshold: 50\nworkers:\n  - {{model: {MODEL}, url: \"{}\", \
         apis: [responses, messages]}}\n",
        m.url()
    );
    let (fe, _config) = frontend_with_config(&yaml, &[]).await.unwrap();
    for (path, mut body, limit, last_type) in [
        (
            "/v1/responses",
            responses_body(true),
            "max_output_tokens",
            "response.failed",
        ),
        ("/v1/messages", messages_body(true), "max_tokens", "error"),
    ] {
        body[limit] = 50.into();
        let (status, _, events) = post_sse(&format!("{}{path}", fe.url()), &body)
            .await
            .unwrap();
        assert_eq!(status, 200, "{events:?}");
        let events: Vec<Value> = events
            .iter()
            .map(|e| serde_json::from_str(e).unwrap_or_else(|_| panic!("not JSON: {e}")))
            .collect();
        let deltas = events
            .iter()
            .filter(|e| {
                matches!(
                    e["type"].as_str(),
                    Some("response.output_text.delta" | "content_block_delta")
                )
            })
            .count();
        assert_eq!(
            deltas, 3,
            "the tokens before the stall reach the client: {events:?}"
        );
        let last = events.last().unwrap();
        assert_eq!(last["type"], last_type, "{events:?}");
        let message = if last_type == "response.failed" {
            assert_eq!(last["response"]["status"], "failed", "{last}");
            &last["response"]["error"]["message"]
        } else {
            assert_eq!(last["error"]["type"], "api_error", "{last}");
            &last["error"]["message"]
        };
        assert!(
            message.as_str().is_some_and(|m| m.contains("stalled")),
            "{last}"
        );
    }
    assert_eq!(route_count(&m, "responses").await, 1.0);
    assert_eq!(route_count(&m, "messages").await, 1.0);
    assert!(metric(&fe.url(), "switchyard_stream_stalls_total").await >= 2.0);
}
