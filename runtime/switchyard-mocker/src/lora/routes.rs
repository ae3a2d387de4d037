//! The adapter endpoints in each engine's dialect, and the adapters in `/v1/models`.
//!
//! vLLM: `POST /v1/load_lora_adapter` `{"lora_name","lora_path"}` and
//! `POST /v1/unload_lora_adapter` `{"lora_name"}`, answering plain text on success and an
//! OpenAI-shaped error otherwise. SGLang: `POST /load_lora_adapter` and
//! `POST /unload_lora_adapter` with the same fields, answering
//! `{"success","error_message","loaded_adapters"}`.

use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;

use super::{Adapters, Refusal};
use crate::args::EngineDialect;
use crate::respond::{self, Body};

#[derive(Debug, Deserialize)]
struct LoadRequest {
    lora_name: String,
    #[serde(default)]
    lora_path: Option<String>,
}

/// Which adapter operation a path is in `engine`'s dialect, if any.
pub fn operation(engine: EngineDialect, path: &str) -> Option<Op> {
    let sglang = engine == EngineDialect::Sglang;
    match (sglang, path) {
        (false, "/v1/load_lora_adapter") | (true, "/load_lora_adapter") => Some(Op::Load),
        (false, "/v1/unload_lora_adapter") | (true, "/unload_lora_adapter") => Some(Op::Unload),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Load,
    Unload,
}

/// Serves a load or unload.
pub async fn handle(
    adapters: &Adapters,
    engine: EngineDialect,
    op: Op,
    body: &[u8],
) -> http::Response<Body> {
    let req: LoadRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return respond::error(
                StatusCode::BAD_REQUEST,
                format!("invalid request body: {e}"),
            )
        }
    };
    let result = match (op, req.lora_path.as_deref()) {
        (Op::Load, Some(path)) if !req.lora_name.is_empty() && !path.is_empty() => {
            adapters.load(&req.lora_name, path).await
        }
        (Op::Load, _) => {
            return respond::error(
                StatusCode::BAD_REQUEST,
                "Both 'lora_name' and 'lora_path' must be provided.",
            )
        }
        (Op::Unload, _) => adapters.unload(&req.lora_name),
    };
    if engine == EngineDialect::Sglang {
        return sglang_answer(adapters, result);
    }
    match result {
        Ok(()) => {
            let verb = if op == Op::Load { "added" } else { "removed" };
            let text = format!(
                "Success: LoRA adapter '{}' {verb} successfully.",
                req.lora_name
            );
            respond::text("text/plain; charset=utf-8", text)
        }
        Err(refusal) => {
            let status = match refusal {
                Refusal::NotFound(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            };
            respond::error(status, refusal.message())
        }
    }
}

fn sglang_answer(adapters: &Adapters, result: Result<(), Refusal>) -> http::Response<Body> {
    let loaded: serde_json::Map<String, serde_json::Value> = adapters
        .registered()
        .into_iter()
        .map(|(n, p)| (n, p.into()))
        .collect();
    let (status, success, message) = match result {
        Ok(()) => (StatusCode::OK, true, String::new()),
        Err(r) => (StatusCode::BAD_REQUEST, false, r.message()),
    };
    let body = serde_json::json!({
        "success": success,
        "error_message": message,
        "loaded_adapters": loaded,
    });
    respond::json(status, Bytes::from(body.to_string()))
}

/// `/v1/models` with the registered adapters after the base model, as vLLM lists them
/// (`root` = the adapter's path, `parent` = the base model).
pub fn models_json(adapters: &Adapters, args: &crate::args::MockerArgs) -> Bytes {
    let model = &args.model;
    let mut data = vec![crate::model_card::card(args)];
    for (name, path) in adapters.registered() {
        data.push(serde_json::json!({
            "id": name, "object": "model", "created": 0, "owned_by": "vllm", "root": path, "parent": model,
        }));
    }
    Bytes::from(crate::model_card::list(data).to_string())
}
