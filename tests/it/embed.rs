//! `frontend/examples/embed.rs` as a real process: an axum app serving its own route and the
//! Switchyard frontend under `/v1`, in front of a mocker.

use switchyard_tests::http::{post_json, post_sse, response_text, stream_text};
use switchyard_tests::{example_bin, free_port, mocker, Proc};

use crate::{chat, MODEL};

#[tokio::test]
async fn the_embedding_example_serves_its_own_route_and_switchyard_under_v1() {
    let m = mocker(&[]).await.unwrap();
    let port = free_port();
    let args = vec!["{port}".to_owned(), format!("{MODEL}={}", m.url())];
    let mut app = Proc::spawn_program("embed", &example_bin("embed"), &args, port, &[]).unwrap();
    app.wait_ready("/hello").await.unwrap();

    let own = reqwest::get(format!("{}/hello", app.url())).await.unwrap();
    assert_eq!(own.status(), 200);
    assert_eq!(own.text().await.unwrap(), "hello from the embedding app\n");

    let url = format!("{}/v1/chat/completions", app.url());
    let request = chat("embedded switchyard", 8, false);
    let (status, headers, routed) = post_json(&url, &request, &[]).await.unwrap();
    assert_eq!(status, 200, "{routed}\n{}", app.log_text());
    assert!(headers.contains_key("x-request-id"));
    assert!(headers.contains_key("x-switchyard-instance"));
    let (_, _, direct) = post_json(&format!("{}/v1/chat/completions", m.url()), &request, &[])
        .await
        .unwrap();
    assert_eq!(response_text(&routed), response_text(&direct));

    let (status, _, events) = post_sse(&url, &chat("embedded switchyard", 8, true))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(stream_text(&events), response_text(&direct));

    // Switchyard's own errors keep their shape under the embedder's router.
    let missing = reqwest::get(format!("{}/v1/nothing", app.url()))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["type"], "not_found_error", "{body}");
}
