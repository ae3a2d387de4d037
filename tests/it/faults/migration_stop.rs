//! A chat stream with a `stop` string, cut mid-way by an in-band error and migrated: the
//! mocker streams whole tokens while a stop string may still match and honours `stop` on the
//! completions continuation, so the spliced text stops exactly where an unbroken stream does.

use serde_json::Value;
use switchyard_tests::http::metric;
use switchyard_tests::mocker;

use super::{expected_text, frontend_over, stream};
use crate::chat;

#[tokio::test]
async fn a_migrated_stream_with_a_stop_string_stops_at_the_same_place() {
    let reference = mocker(&[]).await.unwrap();
    let broken = mocker(&["--error-after-tokens", "10"]).await.unwrap();
    let survivor = mocker(&[]).await.unwrap();
    let fe = frontend_over(
        "probe:\n  interval_ms: 0\nmigration_limit: 1\nhealth:\n  failure_threshold: 1\n  eject_base_ms: 60000\n  eject_max_ms: 60000\n",
        &[&broken, &survivor],
        &["--policy", "round-robin"],
    )
    .await;
    for i in 0..4 {
        let mut body = chat(&format!("tell story number {i}"), 30, true);
        body["seed"] = i.into();
        // A stop string from past the cut (token 15 of the unbroken answer), spanning the
        // end of one token and the start of the next.
        let full = expected_text(&reference, "/v1/chat/completions", &body).await;
        let at = full.match_indices(' ').nth(15).map(|(at, _)| at).unwrap();
        body["stop"] = Value::from(&full[at - 2..at + 2]);
        let expected = expected_text(&reference, "/v1/chat/completions", &body).await;
        assert_eq!(
            expected,
            full[..at - 2],
            "the reference stops before the stop string"
        );
        let outcome = stream(&fe.url(), "/v1/chat/completions", &body).await;
        assert_eq!(outcome.status, 200, "stream {i}");
        assert!(
            outcome.error().is_none(),
            "stream {i}: {:?}",
            outcome.error()
        );
        assert!(outcome.done(), "stream {i} did not end with [DONE]");
        assert_eq!(outcome.text(), expected, "stream {i}");
    }
    assert!(metric(&fe.url(), "switchyard_stream_migrations_total").await >= 1.0);
}
