//! Chat requests are validated before dispatch: each invalid standard parameter is a 400
//! naming it, and the worker never sees the request.

use serde_json::json;
use switchyard_tests::http::{metric, post_json};
use switchyard_tests::{frontend, mocker, worker_flags};

use crate::MODEL;

#[tokio::test]
async fn invalid_chat_parameters_are_400_naming_the_parameter() {
    let m = mocker(&[]).await.unwrap();
    let fe = frontend(&worker_flags(MODEL, &[&m])).await.unwrap();
    let url = format!("{}/v1/chat/completions", fe.url());
    let user = json!([{"role": "user", "content": "x"}]);
    for (body, param) in [
        (json!({"model": MODEL, "messages": user, "n": 0}), "n"),
        (
            json!({"model": MODEL, "messages": user, "temperature": "hot"}),
            "temperature",
        ),
        (
            json!({"model": MODEL, "messages": [{"role": "bogus", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"model": MODEL, "messages": user, "top_p": 1.5}),
            "top_p",
        ),
        (
            json!({"model": MODEL, "messages": user, "max_tokens": 0}),
            "max_tokens",
        ),
    ] {
        let (status, _, v) = post_json(&url, &body, &[]).await.unwrap();
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        assert_eq!(v["error"]["param"], param, "{v}");
    }
    assert_eq!(
        metric(&m.url(), "switchyard_mocker_requests_total").await,
        0.0,
        "no invalid request reached the worker"
    );
    let (status, _, _) = post_json(
        &url,
        &json!({"model": MODEL, "messages": user, "temperature": 0.7, "top_k": 5}),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "valid requests with unknown fields still pass");
    assert_eq!(
        metric(&m.url(), "switchyard_mocker_requests_total").await,
        1.0,
        "the worker counts what it was sent"
    );
}
