//! Completions-only workers: the frontend renders the chat template and translates back.

use serde_json::{json, Value};
use switchyard_tests::http::{post_json, post_sse, response_text, stream_text};
use switchyard_tests::{frontend, mocker, Proc};

use crate::{chat, MODEL};

async fn completions_only_frontend(m: &Proc, template: Option<&str>) -> (Proc, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut worker = format!(
        "  - model: {MODEL}\n    url: {}\n    api: completions\n",
        m.url()
    );
    if let Some(t) = template {
        let path = dir.path().join("template.jinja");
        std::fs::write(&path, t).unwrap();
        worker.push_str(&format!("    chat_template: {}\n", path.display()));
    }
    let config = dir.path().join("switchyard.yaml");
    std::fs::write(&config, format!("workers:\n{worker}")).unwrap();
    let fe = frontend(&["--config".into(), config.display().to_string()])
        .await
        .unwrap();
    (fe, dir)
}

#[tokio::test]
async fn chat_is_rendered_with_the_default_template_and_translated_back() {
    let m = mocker(&[]).await.unwrap();
    let (fe, _dir) = completions_only_frontend(&m, None).await;
    let rendered = "<|system|>\nbe brief\n<|user|>\nhello\n<|assistant|>\n";
    let (_, _, direct) = post_json(
        &format!("{}/v1/completions", m.url()),
        &json!({"model": MODEL, "prompt": rendered, "max_tokens": 12}),
        &[],
    )
    .await
    .unwrap();
    let req = json!({
        "model": MODEL,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
        "max_tokens": 12,
    });
    let (status, _, routed) = post_json(&format!("{}/v1/chat/completions", fe.url()), &req, &[])
        .await
        .unwrap();
    assert_eq!(status, 200, "{routed}");
    assert_eq!(routed["object"], "chat.completion");
    assert_eq!(routed["choices"][0]["message"]["role"], "assistant");
    assert_eq!(response_text(&routed), response_text(&direct));

    let mut sreq = req.clone();
    sreq["stream"] = true.into();
    let (_, _, events) = post_sse(&format!("{}/v1/chat/completions", fe.url()), &sreq)
        .await
        .unwrap();
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(stream_text(&events), response_text(&direct));
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(
        !events.iter().any(|e| e.contains("\"usage\"")),
        "usage leaked: {events:?}"
    );
}

#[tokio::test]
async fn a_custom_template_file_is_used() {
    let m = mocker(&[]).await.unwrap();
    let template =
        "{% for m in messages %}[{{ m.role | upper }}] {{ m.content }}\n{% endfor %}[ASSISTANT]";
    let (fe, _dir) = completions_only_frontend(&m, Some(template)).await;
    let (_, _, direct) = post_json(
        &format!("{}/v1/completions", m.url()),
        &json!({"model": MODEL, "prompt": "[USER] hi\n[ASSISTANT]", "max_tokens": 6}),
        &[],
    )
    .await
    .unwrap();
    let (status, _, routed) = post_json(
        &format!("{}/v1/chat/completions", fe.url()),
        &chat("hi", 6, false),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(response_text(&routed), response_text(&direct));
}

fn with_tools(mut body: Value) -> Value {
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    body
}

#[tokio::test]
async fn tools_never_reach_a_completions_only_worker() {
    let (chat_worker, completions_worker) =
        (mocker(&[]).await.unwrap(), mocker(&[]).await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("switchyard.yaml");
    std::fs::write(
        &config,
        format!(
            "workers:\n  - {{ id: chat-w, model: {MODEL}, url: \"{}\" }}\n  - {{ id: completions-w, model: {MODEL}, url: \"{}\", api: completions }}\n",
            chat_worker.url(),
            completions_worker.url()
        ),
    )
    .unwrap();
    let fe = frontend(&[
        "--config".into(),
        config.display().to_string(),
        "--policy".into(),
        "round-robin".into(),
    ])
    .await
    .unwrap();
    let url = format!("{}/v1/chat/completions", fe.url());
    let served_by = |headers: &reqwest::header::HeaderMap| {
        headers["x-switchyard-instance"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let mut plain = std::collections::HashSet::new();
    for i in 0..4 {
        let (status, headers, body) = post_json(&url, &chat(&format!("q{i}"), 2, false), &[])
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        plain.insert(served_by(&headers));
    }
    assert_eq!(plain.len(), 2, "plain chat uses both workers: {plain:?}");
    for i in 0..4 {
        let (status, headers, body) =
            post_json(&url, &with_tools(chat(&format!("t{i}"), 2, false)), &[])
                .await
                .unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            served_by(&headers),
            "chat-w",
            "tools went to a completions-only worker"
        );
    }
}

#[tokio::test]
async fn tools_for_a_completions_only_model_are_refused_by_name() {
    let m = mocker(&[]).await.unwrap();
    let (fe, _dir) = completions_only_frontend(&m, None).await;
    let url = format!("{}/v1/chat/completions", fe.url());
    let (status, _, body) = post_json(&url, &with_tools(chat("hi", 2, false)), &[])
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "tools", "{body}");
    assert_eq!(body["error"]["code"], "unsupported_parameter", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");

    let mut structured = chat("hi", 2, false);
    structured["response_format"] = json!({"type": "json_object"});
    let (status, _, body) = post_json(&url, &structured, &[]).await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "response_format", "{body}");

    // Values that ask for nothing are still served.
    let mut harmless = chat("hi", 2, false);
    harmless["response_format"] = json!({"type": "text"});
    harmless["tools"] = json!([]);
    let (status, _, body) = post_json(&url, &harmless, &[]).await.unwrap();
    assert_eq!(status, 200, "{body}");
}
