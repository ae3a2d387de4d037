//! The OpenAI surface over real sockets: shapes, determinism, streaming equality, errors.

mod common;

use common::{sse_events, Mocker};
use http::StatusCode;
use switchyard_mocker::MockerArgs;
use switchyard_protocol::{
    ChatCompletionChunk, ChatCompletionResponse, ChatMessage, CompletionChunk, CompletionResponse,
    EmbeddingResponse, ErrorBody, ModelList,
};
use switchyard_runtime::ChatTemplate;

const CHAT: &str = r#"{"model":"mock-model","messages":[{"role":"user","content":"hello there"}],"max_tokens":12,"seed":5}"#;

#[allow(clippy::unwrap_used)] // a test helper
fn streamed(body: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["stream"] = true.into();
    v["stream_options"] = serde_json::json!({"include_usage": true});
    v.to_string()
}

#[tokio::test]
async fn chat_streamed_chunks_concatenate_to_the_non_streamed_answer() {
    let mocker = Mocker::start(MockerArgs::default()).await;
    let (status, body) = mocker.post("/v1/chat/completions", CHAT).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let whole: ChatCompletionResponse = serde_json::from_str(&body).unwrap();
    let text = whole.choices[0].message.text();
    assert_eq!(text.split_whitespace().count(), 12);
    assert_eq!(whole.choices[0].finish_reason.as_deref(), Some("length"));
    let usage = whole.usage.unwrap();
    assert_eq!(usage.completion_tokens, 12);

    let (status, body) = mocker.post("/v1/chat/completions", &streamed(CHAT)).await;
    assert_eq!(status, StatusCode::OK);
    let events = sse_events(&body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<ChatCompletionChunk> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(
        chunks[0].choices[0].delta.role.as_deref(),
        Some("assistant")
    );
    let content: String = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .filter_map(|c| c.delta.content.clone())
        .collect();
    assert_eq!(content, text);
    assert_eq!(chunks.len(), 1 + 12 + 1 + 1, "role, tokens, finish, usage");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish.choices[0].finish_reason.as_deref(), Some("length"));
    let last = chunks.last().unwrap();
    assert!(last.choices.is_empty());
    assert_eq!(last.usage, Some(usage));
}

#[tokio::test]
async fn every_instance_gives_the_same_text_and_the_seed_changes_it() {
    let a = Mocker::start(MockerArgs::default()).await;
    let b = Mocker::start(MockerArgs {
        kv_blocks: 1,
        ..MockerArgs::default()
    })
    .await;
    let text = |body: String| {
        let r: ChatCompletionResponse = serde_json::from_str(&body).unwrap();
        r.choices[0].message.text()
    };
    let from_a = text(a.post("/v1/chat/completions", CHAT).await.1);
    assert_eq!(from_a, text(b.post("/v1/chat/completions", CHAT).await.1));
    let reseeded = CHAT.replace(r#""seed":5"#, r#""seed":6"#);
    assert_ne!(
        from_a,
        text(a.post("/v1/chat/completions", &reseeded).await.1)
    );
}

#[tokio::test]
async fn a_completion_of_rendered_chat_plus_partial_output_continues_it() {
    let mocker = Mocker::start(MockerArgs::default()).await;
    let (_, body) = mocker.post("/v1/chat/completions", CHAT).await;
    let chat: ChatCompletionResponse = serde_json::from_str(&body).unwrap();
    let text = chat.choices[0].message.text();
    let messages: Vec<ChatMessage> =
        serde_json::from_str(r#"[{"role":"user","content":"hello there"}]"#).unwrap();
    let rendered = ChatTemplate::default().render(&messages).unwrap();
    let cut = text.match_indices(' ').nth(5).unwrap().0; // after 5 tokens
    let prompt = format!("{rendered}{}", &text[..cut]);
    let req = serde_json::json!({"model":"mock-model","prompt":prompt,"max_tokens":7,"seed":5});
    let (status, body) = mocker.post("/v1/completions", &req.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let completion: CompletionResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(completion.choices[0].text, text[cut..]);
}

#[tokio::test]
async fn completions_stream_and_match() {
    let mocker = Mocker::start(MockerArgs::default()).await;
    let req = r#"{"model":"mock-model","prompt":"once upon a time","max_tokens":9}"#;
    let (_, body) = mocker.post("/v1/completions", req).await;
    let whole: CompletionResponse = serde_json::from_str(&body).unwrap();
    let (_, body) = mocker.post("/v1/completions", &streamed(req)).await;
    let events = sse_events(&body);
    let chunks: Vec<CompletionChunk> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .map(|c| c.text.as_str())
        .collect();
    assert_eq!(text, whole.choices[0].text);
    assert_eq!(chunks.last().unwrap().usage, whole.usage);
}

#[tokio::test]
async fn bad_requests_get_openai_errors() {
    let mocker = Mocker::start(MockerArgs::default()).await;
    for (path, body, want) in [
        ("/v1/chat/completions", "{not json", StatusCode::BAD_REQUEST),
        ("/v1/chat/completions", "[1,2]", StatusCode::BAD_REQUEST),
        (
            "/v1/chat/completions",
            r#"{"model":"mock-model"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/completions",
            r#"{"model":"mock-model","prompt":{}}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/completions",
            r#"{"model":"other","prompt":"x"}"#,
            StatusCode::NOT_FOUND,
        ),
        (
            "/v1/embeddings",
            r#"{"model":"other","input":"x"}"#,
            StatusCode::NOT_FOUND,
        ),
        ("/v1/nope", "{}", StatusCode::NOT_FOUND),
    ] {
        let (status, body) = mocker.post(path, body).await;
        assert_eq!(status, want, "{path} {body}");
        let err: ErrorBody = serde_json::from_str(&body).unwrap();
        assert!(!err.error.message.is_empty());
    }
    let (status, _) = mocker.get("/v1/chat/completions").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn models_health_and_embeddings() {
    let mocker = Mocker::start(MockerArgs {
        model: "m1".into(),
        ..MockerArgs::default()
    })
    .await;
    let (status, body) = mocker.get("/v1/models").await;
    assert_eq!(status, StatusCode::OK);
    let models: ModelList = serde_json::from_str(&body).unwrap();
    assert_eq!(models.data[0].id, "m1");
    assert_eq!(
        mocker.get("/health").await,
        (StatusCode::OK, r#"{"status":"ok"}"#.into())
    );
    let req = r#"{"model":"m1","input":["a","b","a"]}"#;
    let (status, body) = mocker.post("/v1/embeddings", req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let emb: EmbeddingResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(emb.data.len(), 3);
    assert_eq!(emb.data[0].embedding.len(), 16);
    assert_eq!(emb.data[0].embedding, emb.data[2].embedding);
    assert_ne!(emb.data[0].embedding, emb.data[1].embedding);
}
