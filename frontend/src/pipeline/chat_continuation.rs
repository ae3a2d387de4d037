//! The continuation of a chat stream on a worker that serves chat itself (`api: chat`): the
//! same chat request with the text already sent as a final assistant message that the engine
//! continues instead of starting a new turn — vLLM's `continue_final_message: true` with
//! `add_generation_prompt: false` (the two together are the only combination vLLM accepts;
//! llama.cpp's server takes the same fields). The worker renders the conversation through its
//! own chat template, so the continuation needs no template here and never reaches
//! `/v1/completions`, which chat-only workers do not serve.

use bytes::Bytes;
use serde_json::value::RawValue;
use switchyard_protocol::{ChatCompletionRequest, ChatMessage, MessageContent};

use super::migrate::Progress;

/// The chat request that continues `chat` after `progress`: `max_tokens` and
/// `max_completion_tokens` reduced by the tokens already sent, streamed with usage.
pub fn chat_continuation(
    chat: &ChatCompletionRequest,
    progress: &Progress,
) -> Result<Bytes, String> {
    let mut next = chat.clone();
    let reduce = |limit: Option<u32>| match limit {
        // A worker may read 0 as "no limit" or refuse it; the relay ends such a stream itself.
        Some(m) if m <= progress.tokens => Err("no output tokens left".to_owned()),
        limit => Ok(limit.map(|m| m - progress.tokens)),
    };
    next.max_tokens = reduce(next.max_tokens)?;
    next.max_completion_tokens = reduce(next.max_completion_tokens)?;
    let already_prefilled = chat
        .extra
        .small_value("continue_final_message", 8)
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    match next.messages.last_mut() {
        // The client prefilled the answer itself: the text sent so far continues that message.
        Some(last) if already_prefilled && last.role == "assistant" => match &mut last.content {
            Some(MessageContent::Text(text)) => text.push_str(&progress.text),
            None => last.content = Some(MessageContent::Text(progress.text.clone())),
            Some(MessageContent::Parts(_)) => {
                return Err("a prefilled assistant message in parts cannot be continued".into())
            }
        },
        _ => next.messages.push(ChatMessage {
            role: "assistant".to_owned(),
            content: Some(MessageContent::Text(progress.text.clone())),
            name: None,
            extra: Default::default(),
        }),
    }
    let flag = |v: &str| RawValue::from_string(v.to_owned()).map_err(|e| e.to_string());
    next.extra
        .insert("continue_final_message".to_owned(), flag("true")?);
    next.extra
        .insert("add_generation_prompt".to_owned(), flag("false")?);
    next.stream = Some(true);
    // Usage is needed to count the whole stream; the client's other options (vLLM's
    // `continuous_usage_stats`) stay, so the continuation reports tokens as the first did.
    let mut options = next.stream_options.take().unwrap_or_default();
    options.include_usage = Some(true);
    next.stream_options = Some(options);
    serde_json::to_vec(&next)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}
