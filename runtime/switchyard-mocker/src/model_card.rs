//! The mocker's `/v1/models` card, in the dialect of the engine it plays: real engines say who
//! they are (`owned_by`), when they loaded the model (`created`, Unix seconds) and how long a
//! prompt may be (`max_model_len`, which clients size requests by). The frontend passes the
//! engine's card on, so the mocker must not invent a generic one.

use serde_json::{json, Value};

use crate::args::{EngineDialect, MockerArgs};

/// The card of the model this mocker serves.
pub fn card(args: &MockerArgs) -> Value {
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // The mocker's context is its whole KV cache: longer prompts could never be held.
    let max_model_len = args.kv_blocks.saturating_mul(args.block_size);
    match args.engine {
        // vLLM's `ModelCard`: `root` is the model path, `parent` null for a base model. The
        // mocker's own dialect has the same shape under its own name.
        EngineDialect::Vllm | EngineDialect::Mocker => json!({
            "id": args.model, "object": "model", "created": created,
            "owned_by": if args.engine == EngineDialect::Vllm { "vllm" } else { "switchyard-mocker" },
            "root": args.model, "parent": null, "max_model_len": max_model_len,
        }),
        EngineDialect::Sglang => json!({
            "id": args.model, "object": "model", "created": created, "owned_by": "sglang",
            "root": args.model, "max_model_len": max_model_len,
        }),
        EngineDialect::Trtllm => json!({
            "id": args.model, "object": "model", "created": created, "owned_by": "tensorrt_llm",
        }),
        // llama.cpp's server reports the context under `meta` (`n_ctx_train`).
        EngineDialect::Llamacpp => json!({
            "id": args.model, "object": "model", "created": created, "owned_by": "llamacpp",
            "meta": {"n_ctx_train": max_model_len},
        }),
    }
}

/// `/v1/models` listing `cards`.
pub fn list(cards: Vec<Value>) -> Value {
    json!({"object": "list", "data": cards})
}
