//! The engines' adapter APIs: vLLM `POST /v1/load_lora_adapter` `{"lora_name","lora_path"}`
//! and `POST /v1/unload_lora_adapter` `{"lora_name"}` (plain-text success, OpenAI-shaped
//! error); SGLang `POST /load_lora_adapter` / `/unload_lora_adapter` with the same fields,
//! answering `{"success","error_message",…}`. Other engines are spoken to as vLLM.

use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Limited};
use switchyard_runtime::{Engine, Instance, WorkerClient};

/// Largest adapter-API answer read (only its error message matters).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Loads `name` from `source` on `instance`. `Err` carries the engine's reason.
pub async fn load(
    client: &WorkerClient,
    instance: &Instance,
    (name, source): (&str, &str),
    timeout: Duration,
) -> Result<(), String> {
    let path = match instance.spec.engine {
        Engine::Sglang => "/load_lora_adapter",
        _ => "/v1/load_lora_adapter",
    };
    let body = serde_json::json!({"lora_name": name, "lora_path": source});
    call(client, instance, path, body, timeout).await
}

/// Unloads `name` from `instance`; an adapter the engine does not know is already gone.
pub async fn unload(
    client: &WorkerClient,
    instance: &Instance,
    name: &str,
    timeout: Duration,
) -> Result<(), String> {
    let path = match instance.spec.engine {
        Engine::Sglang => "/unload_lora_adapter",
        _ => "/v1/unload_lora_adapter",
    };
    let body = serde_json::json!({"lora_name": name});
    match call(client, instance, path, body, timeout).await {
        Err(why) if why.starts_with("404") => Ok(()),
        other => other,
    }
}

async fn call(
    client: &WorkerClient,
    instance: &Instance,
    path: &str,
    body: serde_json::Value,
    timeout: Duration,
) -> Result<(), String> {
    let url = format!("{}{path}", instance.spec.url.trim_end_matches('/'));
    let uri: Uri = url
        .parse()
        .map_err(|_| format!("bad worker URL for {path}"))?;
    let exchange = async {
        let response = client
            .post_json(
                uri,
                Bytes::from(body.to_string()),
                "lora",
                instance.spec.auth_header(),
            )
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let status = response.status();
        let text = match Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
        {
            Ok(c) => String::from_utf8_lossy(&c.to_bytes()).into_owned(),
            Err(_) => String::new(),
        };
        Ok::<_, String>((status, text))
    };
    let (status, text) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("{path}: no answer within {} ms", timeout.as_millis()))??;
    judge(instance.spec.engine, status.as_u16(), &text)
        .map_err(|why| format!("{} {path}: {why}", status.as_u16()))
}

/// Whether an adapter-API answer is a success. vLLM refuses a second load of a name with a
/// 400 saying it "has already been loaded": for a load, that is the state we wanted.
fn judge(engine: Engine, status: u16, text: &str) -> Result<(), String> {
    let message = || reason(text);
    if engine == Engine::Sglang {
        let parsed: Option<serde_json::Value> = serde_json::from_str(text).ok();
        let success = parsed
            .as_ref()
            .and_then(|v| v.get("success"))
            .and_then(serde_json::Value::as_bool);
        return match (status, success) {
            (200..=299, Some(true) | None) => Ok(()),
            _ => Err(message()),
        };
    }
    if (200..=299).contains(&status) || (status == 400 && text.contains("has already been loaded"))
    {
        return Ok(());
    }
    Err(message())
}

/// The engine's error message (OpenAI `error.message`, SGLang `error_message`), else the
/// text itself, cut to a loggable length.
fn reason(text: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(text).ok();
    let message = parsed.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("error_message"))
            .or_else(|| v.get("message"))
            .and_then(serde_json::Value::as_str)
    });
    let mut m: String = message.unwrap_or(text).chars().take(300).collect();
    if m.is_empty() {
        m.push_str("empty answer");
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_judged_per_dialect() {
        assert!(judge(
            Engine::Vllm,
            200,
            "Success: LoRA adapter 'a' added successfully."
        )
        .is_ok());
        let again = r#"{"error":{"message":"The lora adapter 'a' has already been loaded.","type":"BadRequestError","code":400}}"#;
        assert!(judge(Engine::Vllm, 400, again).is_ok());
        let bad = r#"{"error":{"message":"Loading lora a failed: No adapter found for /x","type":"BadRequestError","code":400}}"#;
        assert_eq!(
            judge(Engine::Vllm, 400, bad),
            Err("Loading lora a failed: No adapter found for /x".into())
        );
        assert!(judge(
            Engine::Sglang,
            200,
            r#"{"success":true,"error_message":""}"#
        )
        .is_ok());
        assert_eq!(
            judge(
                Engine::Sglang,
                200,
                r#"{"success":false,"error_message":"no such file"}"#
            ),
            Err("no such file".into())
        );
        assert_eq!(judge(Engine::Vllm, 500, ""), Err("empty answer".into()));
    }
}
