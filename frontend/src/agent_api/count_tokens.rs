//! `POST /v1/messages/count_tokens`: how many input tokens a Messages request would take,
//! answered `{"input_tokens": N}` without reaching a worker.
//!
//! The count is exact only with the model's tokenizer (config `tokenizers.<model>`, else
//! `tokenizer`), so without one the route refuses rather than guessing from bytes: a client
//! budgeting a context window on an estimate would overrun it. The prompt counted is the one
//! a worker is sent: the request translated to chat, rendered with the default chat
//! template (what the mocker renders too), tokenized as a chat prompt.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use serde_json::{Map, Value};
use switchyard_kv::PromptKind;
use switchyard_protocol::bridge::messages_request;
use switchyard_protocol::messages::MessagesRequest;
use switchyard_runtime::ChatTemplate;

use super::chat_request;
use super::messages::error_response;
use crate::app::App;
use crate::body::Body;
use crate::error::ApiError;
use crate::http::{json_response, RequestBody};
use crate::pipeline::body_limits;
use crate::pipeline::parse::{self, TypedRequest};
use crate::pipeline::tracker::Tracker;

/// The `route` label of these requests' metrics.
pub const ROUTE: &str = "count_tokens";

pub async fn handle<B: RequestBody>(app: &Arc<App>, headers: HeaderMap, body: B) -> Response<Body> {
    let mut tracker = Tracker::start_route(app, ROUTE);
    match count(app, headers, body, &mut tracker).await {
        Ok(tokens) => {
            tracker.finish_with(200);
            json_response(
                StatusCode::OK,
                serde_json::json!({ "input_tokens": tokens }).to_string(),
            )
        }
        Err(error) => {
            tracker.finish_with(error.status);
            error_response(&error)
        }
    }
}

async fn count<B: RequestBody>(
    app: &Arc<App>,
    headers: HeaderMap,
    body: B,
    tracker: &mut Tracker,
) -> Result<usize, ApiError> {
    let (raw, reservation) =
        body_limits::read_within(&app.config.http.limits, &app.body_budget, &headers, body).await?;
    let request = decode(&raw)?;
    let parsed = chat_request(messages_request::to_chat(&request), headers, reservation)?;
    let TypedRequest::Chat(chat) = parsed.typed else {
        return Err(ApiError::internal("count_tokens: translation is not chat"));
    };
    if app.registry.topology().model(&chat.model).is_none() {
        return Err(ApiError::model_not_found(&chat.model));
    }
    // Labelled only once the model is known to exist: client-chosen names would otherwise
    // grow the metric's label set.
    tracker.set_model(&chat.model);
    let hasher = app.prompt_hashers.get(&chat.model).clone();
    if !hasher.is_tokenized() {
        return Err(ApiError::invalid_request(format!(
            "Token counting needs a tokenizer for model `{}`: configure `tokenizer` or \
             `tokenizers.{}` (a Hugging Face tokenizer.json) on the frontend.",
            chat.model, chat.model
        )));
    }
    // Rendering and tokenizing a long conversation is CPU work of up to the body limit:
    // keep it off the async workers.
    let counted = tokio::task::spawn_blocking(move || {
        static TEMPLATE: OnceLock<ChatTemplate> = OnceLock::new();
        let text = TEMPLATE
            .get_or_init(ChatTemplate::default)
            .render(&chat.messages)
            .map_err(|e| ApiError::invalid_request(format!("Cannot render the prompt: {e}")))?;
        match hasher.count_tokens(&text, PromptKind::Chat) {
            Some(Ok(tokens)) => Ok(tokens),
            Some(Err(e)) => Err(ApiError::internal(format!("The tokenizer failed: {e}"))),
            None => Err(ApiError::internal("count_tokens: tokenizer vanished")),
        }
    })
    .await
    .map_err(|e| ApiError::internal(format!("count_tokens task failed: {e}")))?;
    counted
}

/// Decodes the body as a Messages request. `max_tokens` is not part of a count request
/// (and ignored when sent); the translation needs one, and it does not change the prompt.
fn decode(raw: &[u8]) -> Result<MessagesRequest, ApiError> {
    parse::require_object(raw)?;
    let mut fields: Map<String, Value> = parse::from_json(raw)?;
    fields.insert("max_tokens".to_owned(), Value::from(1));
    let bytes = Bytes::from(
        serde_json::to_vec(&Value::Object(fields))
            .map_err(|e| ApiError::internal(e.to_string()))?,
    );
    parse::from_json(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_needs_no_max_tokens_and_names_bad_fields() {
        let ok = decode(br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert_eq!(ok.max_tokens, 1);
        let err = decode(br#"{"model":"m","messages":"hi"}"#).unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.contains("messages"), "{}", err.message);
        assert_eq!(decode(b"[1]").unwrap_err().status, 400);
    }
}
