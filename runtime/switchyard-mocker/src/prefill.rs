//! Assistant prefill on the chat endpoint, as vLLM's `continue_final_message`: the final
//! message is left open and the model continues its text instead of starting a new turn.
//! The frontend migrates a chat stream to a chat-only worker this way, so the context must be
//! exactly what the completions continuation would have been: the conversation before the
//! final message rendered with its generation prompt, followed by that message's text.

use http::StatusCode;
use switchyard_protocol::ChatCompletionRequest;
use switchyard_runtime::ChatTemplate;

use crate::respond::ApiError;

/// The text the model continues for `req`: its messages rendered with `template`, or — with
/// `continue_final_message: true` — the messages before the final assistant message rendered,
/// plus that message's text left open.
pub(crate) fn chat_context(
    template: &ChatTemplate,
    req: &ChatCompletionRequest,
) -> Result<String, ApiError> {
    let bad = |message: &str| ApiError::new(StatusCode::BAD_REQUEST, message.to_owned());
    let flag = |name: &str| req.extra.small_value(name, 8).and_then(|v| v.as_bool());
    let continue_final = flag("continue_final_message").unwrap_or(false);
    // vLLM's default for `add_generation_prompt` is true; both at once is its 400.
    if continue_final && flag("add_generation_prompt").unwrap_or(true) {
        return Err(bad(
            "Cannot set both `continue_final_message` and `add_generation_prompt` to True.",
        ));
    }
    let render = |messages| {
        template
            .render(messages)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))
    };
    if !continue_final {
        return render(&req.messages);
    }
    match req.messages.split_last() {
        Some((last, before)) if last.role == "assistant" => Ok(render(before)? + &last.text()),
        _ => Err(bad(
            "`continue_final_message` needs a final message with role `assistant`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::generate_text;

    fn request(body: &str) -> ChatCompletionRequest {
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn continuing_the_final_message_is_the_completions_continuation() {
        let template = ChatTemplate::default();
        let plain = request(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
        let context = chat_context(&template, &plain).unwrap();
        let whole = generate_text(&context, 3, 12);
        // Tokens are words with a leading space: the first five of twelve.
        let cut: String = whole
            .split(' ')
            .skip(1)
            .take(5)
            .map(|w| format!(" {w}"))
            .collect();
        let prefilled = request(&format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}},
                {{"role":"assistant","content":{}}}],
                "continue_final_message":true,"add_generation_prompt":false}}"#,
            serde_json::to_string(&cut).unwrap()
        ));
        let continued = chat_context(&template, &prefilled).unwrap();
        assert_eq!(continued, format!("{context}{cut}"));
        assert_eq!(format!("{cut}{}", generate_text(&continued, 3, 7)), whole);
    }

    #[test]
    fn vllm_refuses_continuing_with_a_generation_prompt_or_without_an_assistant_message() {
        let template = ChatTemplate::default();
        let both = request(
            r#"{"model":"m","messages":[{"role":"assistant","content":"a"}],
                "continue_final_message":true}"#,
        );
        assert!(chat_context(&template, &both).is_err());
        let user_last = request(
            r#"{"model":"m","messages":[{"role":"user","content":"a"}],
                "continue_final_message":true,"add_generation_prompt":false}"#,
        );
        assert!(chat_context(&template, &user_last).is_err());
    }
}
