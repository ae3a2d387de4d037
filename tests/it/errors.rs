//! Every error case of the HTTP contract gets its status and OpenAI's error shape.

use serde_json::Value;
use switchyard_tests::{frontend, mocker, worker_flags};

use crate::MODEL;

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
}

fn case(name: &'static str, path: &'static str, body: &str, status: u16) -> Case {
    Case {
        name,
        method: "POST",
        path,
        content_type: Some("application/json"),
        body: body.as_bytes().to_vec(),
        status,
    }
}

fn assert_openai_error(name: &str, v: &Value) {
    let e = &v["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{name}: {v}"
    );
    assert!(e["type"].is_string(), "{name}: {v}");
    assert!(
        e.get("param").is_some() && e.get("code").is_some(),
        "{name}: {v}"
    );
}

#[tokio::test]
async fn the_error_table() {
    let m = mocker(&[]).await.unwrap();
    let mut args = worker_flags(MODEL, &[&m]);
    args.extend([
        "--max-body-bytes".into(),
        "4096".into(),
        "--admin-token".into(),
        "test-admin-token".into(),
    ]);
    let fe = frontend(&args).await.unwrap();
    let chat = "/v1/chat/completions";
    let big = format!(
        r#"{{"model":"{MODEL}","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(8000)
    );
    let deep = format!(
        r#"{{"model":"{MODEL}","messages":[{{"role":"user","content":"x"}}],"x":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let mut cases = vec![
        case("malformed JSON", chat, "{\"model\":", 400),
        case("non-object JSON", chat, "[1,2,3]", 400),
        case("JSON string", chat, "\"hello\"", 400),
        case("JSON number", chat, "42", 400),
        case("JSON null", chat, "null", 400),
        case(
            "truncated object",
            chat,
            r#"{"model":"mock-model","messages":[{"#,
            400,
        ),
        case("empty body", chat, "", 400),
        case(
            "missing model",
            chat,
            r#"{"messages":[{"role":"user","content":"x"}]}"#,
            400,
        ),
        case("missing messages", chat, r#"{"model":"mock-model"}"#, 400),
        case(
            "ill-typed max_tokens",
            chat,
            r#"{"model":"mock-model","messages":[{"role":"user","content":"x"}],"max_tokens":"many"}"#,
            400,
        ),
        case(
            "ill-typed stream",
            chat,
            r#"{"model":"mock-model","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
            400,
        ),
        case(
            "NaN literal",
            chat,
            r#"{"model":"mock-model","messages":[{"role":"user","content":"x"}],"temperature":NaN}"#,
            400,
        ),
        case(
            "huge number",
            chat,
            r#"{"model":"mock-model","messages":[{"role":"user","content":"x"}],"max_tokens":1e999}"#,
            400,
        ),
        case(
            "integer beyond u64",
            chat,
            r#"{"model":"mock-model","messages":[{"role":"user","content":"x"}],"max_tokens":99999999999999999999999}"#,
            400,
        ),
        case(
            "negative max_tokens",
            chat,
            r#"{"model":"mock-model","messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#,
            400,
        ),
        case(
            "completions without prompt",
            "/v1/completions",
            r#"{"model":"mock-model"}"#,
            400,
        ),
        case(
            "embeddings with object input",
            "/v1/embeddings",
            r#"{"model":"mock-model","input":{}}"#,
            400,
        ),
        case(
            "unknown model",
            chat,
            r#"{"model":"nope","messages":[{"role":"user","content":"x"}]}"#,
            404,
        ),
        case("body too large", chat, &big, 413),
        case("10^5-deep nesting", chat, &deep, 413),
        case("unknown route", "/v1/nothing", "{}", 404),
    ];
    cases.push(Case {
        name: "invalid UTF-8",
        body: b"{\"model\":\"mock-\xff\xfe\",\"messages\":[]}".to_vec(),
        ..case("", chat, "", 400)
    });
    cases.push(Case {
        name: "wrong content type",
        content_type: Some("text/plain"),
        ..case(
            "",
            chat,
            r#"{"model":"mock-model","messages":[{"role":"user","content":"x"}]}"#,
            415,
        )
    });
    cases.push(Case {
        name: "GET on a POST route",
        method: "GET",
        ..case("", chat, "", 405)
    });
    let client = reqwest::Client::new();
    for c in cases {
        let mut req = client.request(c.method.parse().unwrap(), format!("{}{}", fe.url(), c.path));
        if let Some(ct) = c.content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.body(c.body).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), c.status, "{}", c.name);
        assert!(resp.headers().contains_key("x-request-id"), "{}", c.name);
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert_openai_error(c.name, &v);
    }
}

#[tokio::test]
async fn a_deep_body_within_the_limit_is_400() {
    let m = mocker(&[]).await.unwrap();
    let fe = frontend(&worker_flags(MODEL, &[&m])).await.unwrap();
    let deep = format!(
        r#"{{"model":"{MODEL}","messages":[],"x":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", fe.url()))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

#[tokio::test]
async fn admin_requires_the_token() {
    let m = mocker(&[]).await.unwrap();
    // The token comes from a file (a mounted Secret), never the command line.
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, "test-admin-token\n").unwrap();
    let mut args = worker_flags(MODEL, &[&m]);
    args.extend([
        "--admin-token-file".into(),
        token_file.display().to_string(),
    ]);
    let fe = frontend(&args).await.unwrap();
    let url = format!("{}/admin/instances", fe.admin_url());
    let client = reqwest::Client::new();
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        client
            .get(&url)
            .bearer_auth("wrong-token!")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let ok = client
        .get(&url)
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let v: Value = ok.json().await.unwrap();
    assert_eq!(v["instances"][0]["model"], MODEL);
    assert_eq!(v["instances"][0]["health"], "healthy");

    // The public listener does not serve the admin API, even with the right token.
    let public = client
        .get(format!("{}/admin/instances", fe.url()))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);

    // Without a token there is no admin listener at all.
    let open = frontend(&worker_flags(MODEL, &[&m])).await.unwrap();
    let refused = client
        .get(format!("{}/admin/instances", open.admin_url()))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "admin must be disabled without a configured token"
    );
}

#[tokio::test]
async fn models_health_and_live() {
    let m = mocker(&[]).await.unwrap();
    let fe = frontend(&worker_flags(MODEL, &[&m])).await.unwrap();
    let v: Value = reqwest::get(format!("{}/v1/models", fe.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"][0]["id"], MODEL);
    assert_eq!(
        reqwest::get(format!("{}/health", fe.url()))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        reqwest::get(format!("{}/live", fe.url()))
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = reqwest::get(format!("{}/metrics", fe.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("switchyard_instance_healthy{"),
        "{metrics}"
    );
}

/// llama-cpp-python answers some bad requests with an empty 400: the client still gets the
/// worker's status, in OpenAI's error shape and as JSON, never an empty body labelled JSON.
#[tokio::test]
async fn a_workers_bodyless_refusal_reaches_the_client_in_the_error_shape() {
    let m = mocker(&["--model", MODEL, "--empty-errors"]).await.unwrap();
    let fe = frontend(&worker_flags(MODEL, &[&m])).await.unwrap();
    // Within the frontend's checks, beyond the engine's limit (2^20 tokens).
    let body = serde_json::json!({"model": MODEL, "max_tokens": 2_000_000,
        "messages": [{"role": "user", "content": "hi"}]});
    let response = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", fe.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        response.headers().contains_key("x-switchyard-instance"),
        "the worker refused it, not the frontend"
    );
    let v: Value = response.json().await.unwrap();
    assert_openai_error("bodyless 400", &v);
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("status 400")),
        "{v}"
    );
}
