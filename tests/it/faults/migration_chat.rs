//! Migration onto chat-only workers: a chat stream cut mid-way continues on the next worker's
//! chat endpoint (`continue_final_message`), never on `/v1/completions`, which these workers
//! answer with 404 — the continuation that used to blame a healthy target.

use futures_util::future::join_all;
use serde_json::{json, Value};
use switchyard_tests::http::{metric, post_json};
use switchyard_tests::{mocker, Proc};

use super::{expected_text, frontend_over, stream, Streamed};
use crate::chat;

const CHAT: &str = "/v1/chat/completions";

fn chunks(outcome: &Streamed) -> Vec<Value> {
    outcome
        .events
        .iter()
        .filter_map(|e| serde_json::from_str(e).ok())
        .collect()
}

/// A full-chat reference mocker, and a frontend over two chat-only mockers (no
/// `/v1/completions`) of which the first dies once it generated 12 tokens in all, so every
/// stream it serves is cut mid-way and must continue on the other's chat endpoint.
struct ChatOnlyPool {
    reference: Proc,
    frontend: Proc,
    _workers: [Proc; 2],
}

impl ChatOnlyPool {
    async fn start() -> Self {
        let reference = mocker(&[]).await.unwrap();
        let victim = mocker(&["--chat-only", "--die-after-tokens", "12", "--itl-ms", "5"])
            .await
            .unwrap();
        let survivor = mocker(&["--chat-only"]).await.unwrap();
        let frontend = frontend_over(
            "probe:\n  interval_ms: 0\nmigration_limit: 1\n",
            &[&victim, &survivor],
            &["--policy", "round-robin"],
        )
        .await;
        Self {
            reference,
            frontend,
            _workers: [victim, survivor],
        }
    }
}

#[tokio::test]
async fn a_chat_only_pool_migrates_a_killed_stream_with_the_exact_text() {
    let pool = ChatOnlyPool::start().await;
    let (reference, fe) = (&pool.reference, &pool.frontend);
    let bodies: Vec<Value> = (0..4)
        .map(|i| {
            let mut body = chat(&format!("tell story number {i}"), 30, true);
            body["seed"] = i.into();
            body["stream_options"] = json!({"include_usage": true});
            body
        })
        .collect();
    let expected = join_all(bodies.iter().map(|b| expected_text(reference, CHAT, b))).await;
    let base = fe.url();
    let outcomes = join_all(bodies.iter().map(|b| stream(&base, CHAT, b))).await;
    for (i, (outcome, expected)) in outcomes.iter().zip(&expected).enumerate() {
        assert_eq!(outcome.status, 200, "stream {i}");
        assert!(
            outcome.error().is_none(),
            "stream {i}: {:?}",
            outcome.error()
        );
        assert!(outcome.done(), "stream {i} did not end with [DONE]");
        assert_eq!(&outcome.text(), expected, "stream {i}");
        let chunks = chunks(outcome);
        let roles = chunks
            .iter()
            .filter(|c| c["choices"][0]["delta"].get("role").is_some())
            .count();
        assert_eq!(roles, 1, "stream {i}: one role delta across the splice");
        assert!(
            chunks.iter().all(|c| c["id"] == chunks[0]["id"]),
            "stream {i}: one stream id across the splice"
        );
        let usage = chunks
            .iter()
            .find_map(|c| c["usage"]["completion_tokens"].as_u64());
        assert_eq!(usage, Some(30), "stream {i}: usage of the whole stream");
    }
    let migrations = metric(&fe.url(), "switchyard_stream_migrations_total").await;
    assert!(
        migrations >= 1.0,
        "no stream was migrated: the fault missed"
    );
}

/// `usage` of every chunk that carries one, in order.
fn usages(outcome: &Streamed) -> Vec<Value> {
    chunks(outcome)
        .into_iter()
        .filter_map(|c| c.get("usage").filter(|u| !u.is_null()).cloned())
        .collect()
}

#[tokio::test]
async fn continuous_usage_counts_the_whole_stream_across_a_migration() {
    let pool = ChatOnlyPool::start().await;
    let (reference, fe) = (&pool.reference, &pool.frontend);
    let bodies: Vec<Value> = (0..2)
        .map(|i| {
            let mut body = chat(&format!("count the tokens of story {i}"), 20, true);
            body["seed"] = i.into();
            body["stream_options"] = json!({"include_usage": true, "continuous_usage_stats": true});
            body
        })
        .collect();
    let base = fe.url();
    let outcomes = join_all(bodies.iter().map(|b| stream(&base, CHAT, b))).await;
    for (i, (outcome, body)) in outcomes.iter().zip(&bodies).enumerate() {
        assert!(
            outcome.error().is_none(),
            "stream {i}: {:?}",
            outcome.error()
        );
        let mut whole = body.clone();
        whole["stream"] = false.into();
        whole.as_object_mut().map(|o| o.remove("stream_options"));
        let (status, _, answer) = post_json(&format!("{}{CHAT}", reference.url()), &whole, &[])
            .await
            .unwrap();
        assert_eq!(status, 200);
        let usages = usages(outcome);
        let counts: Vec<u64> = usages
            .iter()
            .filter_map(|u| u["completion_tokens"].as_u64())
            .collect();
        // One per token chunk, 1..=20, then the final usage chunk: no restart at the splice.
        let expected: Vec<u64> = (1..=20).chain([20]).collect();
        assert_eq!(counts, expected, "stream {i}");
        assert_eq!(
            usages.last(),
            Some(&answer["usage"]),
            "stream {i}: the uninterrupted request's usage"
        );
    }
    let migrations = metric(&fe.url(), "switchyard_stream_migrations_total").await;
    assert!(
        migrations >= 1.0,
        "no stream was migrated: the fault missed"
    );
}
