//! Unit tests of [`Choices`]: n choices, stop strings and tool calls, whole and streamed.

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::watch;

use super::*;
use crate::generate::generate_text;
use crate::state::Shared;
use crate::{MockerArgs, MockerHooks};

const CONTEXT: &str = "user: tell me a story";
const SEED: u64 = 42;

fn envelope() -> Envelope {
    envelope_of(crate::wire::Kind::Chat)
}

fn envelope_of(kind: crate::wire::Kind) -> Envelope {
    let (_, stopping) = watch::channel(false);
    let args = MockerArgs::default();
    let hasher = switchyard_kv::PromptHasher::bytes(args.block_size);
    let shared = Arc::new(Shared::new(args, hasher, MockerHooks::default(), stopping));
    Envelope::new(kind, &shared)
}

/// Runs `choices` for up to `steps` steps as the sequence would drive them (choice 0's
/// tokens from the request's own generator); returns the streamed chunks' JSON.
fn drive(choices: &mut Choices, steps: usize) -> Vec<Value> {
    let env = envelope();
    let mut gen = TextGen::new(CONTEXT, SEED);
    let mut sse = choices.role_chunks(&env).to_vec();
    for _ in 0..steps {
        let done = choices.advance(gen.next_token());
        sse.extend_from_slice(&choices.step_chunks(&env));
        if done {
            break;
        }
    }
    choices.finish_rest();
    sse.extend_from_slice(&choices.step_chunks(&env));
    String::from_utf8(sse)
        .unwrap()
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

/// Per choice index: the streamed content, the concatenated tool-call arguments, and the
/// finish reasons seen.
fn collect(chunks: &[Value], n: usize) -> Vec<(String, String, Vec<String>)> {
    let mut out = vec![(String::new(), String::new(), Vec::new()); n];
    for c in chunks {
        let choice = &c["choices"][0];
        let i = choice["index"].as_u64().unwrap() as usize;
        out[i].0 += choice["delta"]["content"].as_str().unwrap_or("");
        out[i].1 += choice["delta"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap_or("");
        if let Some(reason) = choice["finish_reason"].as_str() {
            out[i].2.push(reason.to_owned());
        }
    }
    out
}

fn plan(n: u32, stop: &[&str], tool: Option<ToolCall>) -> ChatPlan {
    ChatPlan {
        n,
        stop: stop.iter().map(|s| s.to_string()).collect(),
        tool,
        json: None,
        logprobs: None,
    }
}

#[test]
fn n_choices_are_deterministic_distinct_and_choice_0_is_the_plain_answer() {
    let mut choices = Choices::new(plan(3, &[], None), CONTEXT, SEED);
    let streamed = collect(&drive(&mut choices, 5), 3);
    let whole: Value =
        serde_json::from_slice(&choices.response(&envelope(), choices.usage(7))).unwrap();
    assert_eq!(whole["choices"].as_array().unwrap().len(), 3);
    assert_eq!(whole["usage"]["completion_tokens"], 15);
    let plain = generate_text(CONTEXT, SEED, 5);
    assert_eq!(whole["choices"][0]["message"]["content"], plain.as_str());
    for (i, (text, _, finish)) in streamed.iter().enumerate() {
        assert_eq!(whole["choices"][i]["index"], i);
        assert_eq!(whole["choices"][i]["message"]["content"], text.as_str());
        assert_eq!(whole["choices"][i]["finish_reason"], "length");
        assert_eq!(finish, &["length"]);
    }
    assert_ne!(streamed[0].0, streamed[1].0);
    assert_ne!(streamed[1].0, streamed[2].0);
    let mut again = Choices::new(plan(3, &[], None), CONTEXT, SEED);
    assert_eq!(collect(&drive(&mut again, 5), 3), streamed);
}

#[test]
fn a_stop_string_cuts_the_text_before_it_and_is_never_streamed() {
    let plain = generate_text(CONTEXT, SEED, 8);
    // A stop string that spans a token boundary: the end of token 3 and the start of 4.
    let at = plain.match_indices(' ').nth(3).unwrap().0;
    let stop = &plain[at - 2..at + 2];
    let mut choices = Choices::new(plan(1, &[stop, "never-generated"], None), CONTEXT, SEED);
    let chunks = drive(&mut choices, 8);
    let streamed = collect(&chunks, 1);
    assert_eq!(streamed[0].0, plain[..at - 2], "cut before the stop string");
    assert_eq!(streamed[0].2, ["stop"]);
    assert!(chunks.iter().all(|c| !c.to_string().contains(stop)));
    let whole: Value =
        serde_json::from_slice(&choices.response(&envelope(), choices.usage(1))).unwrap();
    assert_eq!(whole["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        whole["usage"]["completion_tokens"], 4,
        "stopped after the 4th token"
    );
}

#[test]
fn a_tool_call_streams_its_arguments_in_pieces_and_finishes_tool_calls() {
    let tools = json!([{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
        "required": ["query", "limit"]}}}])
    .to_string();
    let call = ToolCall::plan(Some(&tools), Some(r#""required""#), SEED)
        .unwrap()
        .unwrap();
    let steps = crate::tools::pieces(&call.arguments).len();
    let mut choices = Choices::new(plan(2, &[], Some(call.clone())), CONTEXT, SEED);
    let chunks = drive(&mut choices, steps);
    for (i, (text, arguments, finish)) in collect(&chunks, 2).into_iter().enumerate() {
        assert_eq!(text, "");
        assert_eq!(
            arguments, call.arguments,
            "choice {i}: each piece once, in order"
        );
        assert_eq!(finish, ["tool_calls"]);
    }
    let first = chunks
        .iter()
        .find(|c| c["choices"][0]["delta"]["tool_calls"].is_array())
        .unwrap();
    let delta = &first["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(delta["function"]["name"], "lookup");
    assert_eq!(delta["type"], "function");
    assert!(delta["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("call_")));

    let whole: Value =
        serde_json::from_slice(&choices.response(&envelope(), choices.usage(1))).unwrap();
    let message = &whole["choices"][1]["message"];
    assert_eq!(message["content"], Value::Null);
    assert_eq!(
        message["tool_calls"][0]["function"]["arguments"],
        call.arguments.as_str()
    );
    assert_eq!(whole["choices"][1]["finish_reason"], "tool_calls");
}

#[test]
fn plans_refuse_bad_values_and_plain_requests_stay_plain() {
    let req = |body: Value| -> ChatCompletionRequest { serde_json::from_value(body).unwrap() };
    let base = || json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
    let plain = ChatPlan::from_request(&req(base()), 0).unwrap();
    assert!(plain.into_extended().is_none());
    for (field, value) in [
        ("n", json!(0)),
        ("n", json!(MAX_N + 1)),
        ("stop", json!(7)),
        ("logprobs", json!("yes")),
        ("top_logprobs", json!(21)),
        ("top_logprobs", json!(2)),
        (
            "tool_choice",
            json!({"type": "function", "function": {"name": "absent"}}),
        ),
    ] {
        let mut body = base();
        body[field] = value;
        assert!(ChatPlan::from_request(&req(body), 0).is_err(), "{field}");
    }
    let mut body = base();
    body["stop"] = json!(["", "END"]);
    let p = ChatPlan::from_request(&req(body), 0).unwrap();
    assert_eq!(p.stop, ["END"]);
    assert!(p.into_extended().is_some());
}

#[test]
fn response_format_answers_the_json_whole_and_in_pieces() {
    let json = r#"{"answer":"river","count":3}"#.to_owned();
    let steps = crate::tools::pieces(&json).len();
    let plan = ChatPlan {
        json: Some(json.clone()),
        ..plan(1, &[], None)
    };
    let mut choices = Choices::new(plan, CONTEXT, SEED);
    let streamed = collect(&drive(&mut choices, steps), 1);
    assert_eq!(streamed[0].0, json);
    assert_eq!(streamed[0].2, ["stop"]);
    let whole: Value =
        serde_json::from_slice(&choices.response(&envelope(), choices.usage(1))).unwrap();
    assert_eq!(whole["choices"][0]["message"]["content"], json.as_str());
}

#[test]
fn logprobs_cover_exactly_the_text_sent_even_when_a_stop_string_cuts_it() {
    let plain = generate_text(CONTEXT, SEED, 8);
    let at = plain.match_indices(' ').nth(5).unwrap().0;
    let stop = &plain[at - 1..at + 2];
    let plan = ChatPlan {
        logprobs: Some(2),
        ..plan(2, &[stop], None)
    };
    let mut choices = Choices::new(plan, CONTEXT, SEED);
    let chunks = drive(&mut choices, 8);
    let texts = collect(&chunks, 2);
    let mut streamed = [String::new(), String::new()];
    for c in &chunks {
        let choice = &c["choices"][0];
        for entry in choice["logprobs"]["content"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(entry["top_logprobs"].as_array().unwrap().len(), 2);
            assert_eq!(entry["top_logprobs"][0]["token"], entry["token"]);
            streamed[choice["index"].as_u64().unwrap() as usize] +=
                entry["token"].as_str().unwrap();
        }
    }
    let whole: Value =
        serde_json::from_slice(&choices.response(&envelope(), choices.usage(1))).unwrap();
    for i in 0..2 {
        let tokens: String = whole["choices"][i]["logprobs"]["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["token"].as_str().unwrap())
            .collect();
        assert_eq!(tokens, streamed[i], "choice {i}: whole and streamed agree");
        // Whole tokens only: a token cut by the stop string is not reported.
        assert!(texts[i].0.starts_with(&tokens), "choice {i}");
    }
    assert_eq!(
        streamed[0],
        plain[..at - 1].rsplit_once(' ').unwrap().0.to_owned() + ""
    );
}

#[test]
fn completions_get_n_choices_and_stop_in_their_own_shape() {
    let plain = generate_text(CONTEXT, SEED, 8);
    let at = plain.match_indices(' ').nth(4).unwrap().0;
    let stop = &plain[at..at + 3];
    let mut choices = Choices::new(plan(2, &[stop], None), CONTEXT, SEED);
    let env = envelope_of(crate::wire::Kind::Completion);
    assert!(
        choices.role_chunks(&env).is_empty(),
        "completions have no role chunk"
    );
    let mut gen = TextGen::new(CONTEXT, SEED);
    let mut sse = Vec::new();
    for _ in 0..8 {
        let done = choices.advance(gen.next_token());
        let chunk = choices.step_chunks(&env);
        // Only whole tokens are sent while a stop string may still match.
        for event in String::from_utf8(chunk.to_vec()).unwrap().split("\n\n") {
            if let Some(data) = event.strip_prefix("data: ") {
                let v: Value = serde_json::from_str(data).unwrap();
                assert_eq!(v["object"], "text_completion");
                let text = v["choices"][0]["text"].as_str().unwrap();
                assert!(text.is_empty() || text.starts_with(' '), "{text:?}");
            }
        }
        sse.extend_from_slice(&chunk);
        if done {
            break;
        }
    }
    choices.finish_rest();
    sse.extend_from_slice(&choices.step_chunks(&env));
    let whole: Value = serde_json::from_slice(&choices.response(&env, choices.usage(1))).unwrap();
    assert_eq!(whole["object"], "text_completion");
    assert_eq!(whole["choices"][0]["text"], &plain[..at]);
    assert_eq!(whole["choices"][0]["finish_reason"], "stop");
    assert_eq!(whole["choices"].as_array().unwrap().len(), 2);
    let streamed: String = String::from_utf8(sse)
        .unwrap()
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter(|v| v["choices"][0]["index"] == 0)
        .map(|v| v["choices"][0]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(streamed, plain[..at]);
}
