//! Tests of `migrate.rs`: what can be continued, the progress read from sent chunks, the
//! continuation request, and the steps taken after a failure.

use super::*;
use crate::pipeline::parse::decode;
use crate::pipeline::Endpoint;
use switchyard_runtime::{ChatTemplate, InstanceSpec};

fn chunks(texts: &[&str]) -> Vec<Bytes> {
    texts
        .iter()
        .map(|t| {
            Bytes::from(format!(
                r#"{{"object":"chat.completion.chunk","choices":[{{"index":0,"delta":{{"content":"{t}"}},"finish_reason":null}}]}}"#
            ))
        })
        .collect()
}

#[test]
fn progress_counts_content_chunks_and_sees_the_finish() {
    let mut sent = vec![Bytes::from_static(
        br#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
    )];
    sent.extend(chunks(&[" a", " b"]));
    let p = progress(&sent);
    assert_eq!((p.text.as_str(), p.tokens, p.finished), (" a b", 2, false));
    sent.push(Bytes::from_static(
        br#"{"choices":[{"index":0,"text":"","finish_reason":"length"}]}"#,
    ));
    assert!(progress(&sent).finished);
}

/// The continuation's endpoint and body as JSON.
fn continued(typed: &TypedRequest, target: &Instance, p: &Progress) -> (Endpoint, Value) {
    let upstream = continuation(typed, target, p).unwrap();
    (
        upstream.endpoint,
        serde_json::from_slice(&upstream.body).unwrap(),
    )
}

fn completions_worker(template: Option<ChatTemplate>) -> Instance {
    let mut spec = InstanceSpec::new("t", "m", "http://t");
    spec.api = WorkerApi::Completions;
    Instance::new(spec, template.map(Arc::new))
}

#[test]
fn a_chat_worker_continues_the_final_assistant_message_on_its_chat_endpoint() {
    let typed = decode(
        Endpoint::Chat,
        br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":10,"seed":7,"stream":true}"#,
    )
    .unwrap();
    let target = Instance::new(InstanceSpec::new("t", "m", "http://t"), None);
    let p = progress(&chunks(&[" a", " b", " c"]));
    let (endpoint, v) = continued(&typed, &target, &p);
    assert_eq!(endpoint, Endpoint::Chat);
    assert!(!continuation(&typed, &target, &p).unwrap().translated);
    assert_eq!(
        v["messages"],
        json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": " a b c"}])
    );
    assert_eq!(v["continue_final_message"], true);
    assert_eq!(v["add_generation_prompt"], false);
    assert_eq!(v["max_tokens"], 7);
    assert_eq!(v["seed"], 7);
    assert_eq!(v["stream_options"]["include_usage"], true);
}

#[test]
fn a_client_prefill_is_extended_rather_than_followed() {
    let typed = decode(
        Endpoint::Chat,
        br#"{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Sure:"}],
            "continue_final_message":true,"add_generation_prompt":false,"max_completion_tokens":5,"stream":true,
            "stream_options":{"continuous_usage_stats":true}}"#,
    )
    .unwrap();
    let target = Instance::new(InstanceSpec::new("t", "m", "http://t"), None);
    let (_, v) = continued(&typed, &target, &progress(&chunks(&[" a", " b"])));
    assert_eq!(v["messages"][1]["content"], "Sure: a b");
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["max_completion_tokens"], 3);
    assert_eq!(
        v["stream_options"],
        json!({"include_usage": true, "continuous_usage_stats": true})
    );
}

#[test]
fn a_completions_worker_gets_the_prompt_rendered_with_its_own_template() {
    let typed = chat_request(r#","max_tokens":10"#);
    let own = ChatTemplate::from_source(
        "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}[assistant]".to_owned(),
    )
    .unwrap();
    let p = progress(&chunks(&[" a", " b"]));
    let (endpoint, v) = continued(&typed, &completions_worker(Some(own)), &p);
    assert_eq!(endpoint, Endpoint::Completions);
    assert_eq!(v["prompt"], "[user]hi[assistant] a b");
    assert_eq!(v["max_tokens"], 8);
    let upstream = continuation(&typed, &completions_worker(None), &p);
    assert!(upstream.is_err(), "never the built-in template silently");
}

#[test]
fn continuation_chunks_get_the_original_id_and_created() {
    let mut m = Migration {
        typed: Arc::new(
            decode(
                Endpoint::Completions,
                br#"{"model":"m","prompt":"p","stream":true}"#,
            )
            .unwrap(),
        ),
        model: "m".into(),
        request_id: "r".into(),
        limit: 1,
        done: 0,
        sent: vec![Bytes::from_static(
            br#"{"id":"first","created":1,"choices":[{"index":0,"text":" a"}]}"#,
        )],
        tokens_before: 0,
        segment_start: 0,
        prompt_tokens: None,
        failed: Vec::new(),
        stamp: None,
    };
    let same = Bytes::from_static(br#"{"id":"second","created":2,"choices":[]}"#);
    assert_eq!(m.restamp(same.clone()), same, "no stamp before a migration");
    m.stamp = stamp_of(&m.sent[0]);
    let v: Value = serde_json::from_slice(&m.restamp(same)).unwrap();
    assert_eq!(
        (v["id"].as_str(), v["created"].as_u64()),
        (Some("first"), Some(1))
    );
    // A chat worker's continuation opens with its own role delta: the client had one already.
    let role = Bytes::from_static(
        br#"{"id":"second","created":2,"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
    );
    let v: Value = serde_json::from_slice(&m.restamp(role)).unwrap();
    assert_eq!(v["choices"][0]["delta"], json!({"content": ""}));
}

#[test]
fn a_completion_continuation_appends_to_the_prompt() {
    let typed = decode(
        Endpoint::Completions,
        br#"{"model":"m","prompt":"once","max_tokens":4,"stream":true}"#,
    )
    .unwrap();
    let target = Instance::new(InstanceSpec::new("t", "m", "http://t"), None);
    let p = progress(&[Bytes::from_static(
        br#"{"choices":[{"index":0,"text":" upon","finish_reason":null}]}"#,
    )]);
    let (endpoint, v) = continued(&typed, &target, &p);
    assert_eq!(endpoint, Endpoint::Completions);
    assert_eq!(v["prompt"], "once upon");
    assert_eq!(v["max_tokens"], 3);
    let tokens = decode(
        Endpoint::Completions,
        br#"{"model":"m","prompt":[1,2],"stream":true}"#,
    )
    .unwrap();
    assert_eq!(why_not(&tokens), Some("a token or batch prompt"));
    assert!(continuation(&tokens, &target, &p).is_err());
}

fn chat_request(extra: &str) -> TypedRequest {
    decode(
        Endpoint::Chat,
        format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"stream":true{extra}}}"#
        )
        .as_bytes(),
    )
    .unwrap()
}

fn completion_request(extra: &str) -> TypedRequest {
    decode(
        Endpoint::Completions,
        format!(r#"{{"model":"m","prompt":"once","stream":true{extra}}}"#).as_bytes(),
    )
    .unwrap()
}

#[test]
fn requests_a_text_continuation_cannot_reproduce_are_not_migrated() {
    for (extra, why) in [
        (r#","n":2"#, "n > 1"),
        (
            r#","tools":[{"type":"function","function":{"name":"f"}}]"#,
            "tools",
        ),
        (
            r#","tool_choice":{"type":"function","function":{"name":"f"}}"#,
            "tool_choice",
        ),
        (
            r#","response_format":{"type":"json_schema","json_schema":{}}"#,
            "response_format",
        ),
        (r#","logprobs":true"#, "logprobs"),
        (r#","echo":true"#, "echo"),
    ] {
        assert_eq!(why_not(&chat_request(extra)), Some(why), "chat {extra}");
    }
    for (extra, why) in [
        (r#","n":3"#, "n > 1"),
        (r#","echo":true"#, "echo"),
        (r#","best_of":2"#, "best_of > 1"),
    ] {
        assert_eq!(
            why_not(&completion_request(extra)),
            Some(why),
            "completion {extra}"
        );
    }
    for fine in [
        "",
        r#","temperature":0,"seed":3,"max_tokens":9"#,
        r#","tools":[]"#,
    ] {
        assert_eq!(why_not(&chat_request(fine)), None, "chat {fine}");
    }
    for fine in ["", r#","echo":false,"best_of":1,"logprobs":2"#] {
        assert_eq!(
            why_not(&completion_request(fine)),
            None,
            "completion {fine}"
        );
    }
}

#[test]
fn tool_call_and_reasoning_deltas_make_the_progress_inexact() {
    let mut sent = chunks(&[" a"]);
    assert_eq!(progress(&sent).inexact, None);
    let empty_tools = br#"{"choices":[{"index":0,"delta":{"content":" b","tool_calls":[]}}]}"#;
    sent.push(Bytes::from_static(empty_tools));
    assert_eq!(
        progress(&sent).inexact,
        None,
        "an empty tool_calls list is nothing"
    );
    let mut tools = sent.clone();
    tools.push(Bytes::from_static(
        br#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}"#,
    ));
    assert_eq!(progress(&tools).inexact, Some("tool-call deltas"));
    sent.push(Bytes::from_static(
        br#"{"choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]}"#,
    ));
    assert_eq!(progress(&sent).inexact, Some("reasoning deltas"));
}

#[test]
fn a_continuation_never_asks_for_zero_tokens() {
    let typed = completion_request(r#","max_tokens":2"#);
    let target = Instance::new(InstanceSpec::new("t", "m", "http://t"), None);
    let p = progress(&chunks(&[" a", " b"]));
    assert!(continuation(&typed, &target, &p).is_err());
    let one = progress(&chunks(&[" a"]));
    let (_, v) = continued(&typed, &target, &one);
    assert_eq!(v["max_tokens"], 1);
}

/// An app with migration on, `instances` of model `m` (unreachable URLs) and `tune` applied.
fn test_app(instances: &[&str], tune: impl FnOnce(&mut crate::config::ServeConfig)) -> Arc<App> {
    let mut config = crate::config::ServeConfig::default();
    config.reliability.migration_limit = 1;
    tune(&mut config);
    let registry = Arc::new(switchyard_runtime::Registry::default());
    for id in instances {
        registry.apply(switchyard_runtime::DiscoveryEvent::Upsert(Box::new(
            InstanceSpec::new(*id, "m", "http://127.0.0.1:9"),
        )));
    }
    let plugins = crate::plugins::PluginSet::new(Default::default(), Default::default(), None);
    App::new(config, registry, Arc::new(plugins)).unwrap()
}

fn migration_for(typed: TypedRequest, sent: Vec<Bytes>) -> Migration {
    Migration {
        typed: Arc::new(typed),
        model: "m".into(),
        request_id: "r".into(),
        limit: 1,
        done: 0,
        sent,
        tokens_before: 0,
        segment_start: 0,
        prompt_tokens: None,
        failed: Vec::new(),
        stamp: None,
    }
}

#[tokio::test]
async fn a_spent_output_budget_finishes_the_stream_instead_of_migrating() {
    let failed = Arc::new(Instance::new(InstanceSpec::new("f", "m", "http://f"), None));
    let mut sent = vec![Bytes::from_static(
        br#"{"id":"c1","created":5,"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
    )];
    sent.extend(chunks(&[" a", " b"]));
    let mut m = migration_for(chat_request(r#","max_completion_tokens":2"#), sent);
    assert!(matches!(m.step(&failed), Step::Exhausted));
    assert_eq!(m.tokens_before, 2);
    let end: Value = serde_json::from_slice(&m.finish_chunk()).unwrap();
    assert_eq!(end["id"], "c1");
    assert_eq!(end["created"], 5);
    assert_eq!(end["object"], "chat.completion.chunk");
    assert_eq!(end["choices"][0]["finish_reason"], "length");
    let usage: Value = serde_json::from_slice(&m.usage_chunk(&Usage::new(0, 2))).unwrap();
    assert_eq!(usage["choices"], serde_json::json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 2);

    let mut c = migration_for(
        completion_request(r#","max_tokens":1"#),
        vec![Bytes::from_static(
            br#"{"id":"c2","created":1,"choices":[{"index":0,"text":" x"}]}"#,
        )],
    );
    assert!(matches!(c.step(&failed), Step::Exhausted));
    let end: Value = serde_json::from_slice(&c.finish_chunk()).unwrap();
    assert_eq!(
        (end["object"].as_str(), end["choices"][0]["text"].as_str()),
        (Some("text_completion"), Some(""))
    );
}

#[tokio::test]
async fn a_stream_with_tool_calls_gives_up_and_the_limit_is_kept() {
    let failed = Arc::new(Instance::new(InstanceSpec::new("f", "m", "http://f"), None));
    let mut sent = chunks(&[" a"]);
    sent.push(Bytes::from_static(
        br#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t"}]}}]}"#,
    ));
    let mut m = migration_for(chat_request(""), sent);
    match m.step(&failed) {
        Step::GiveUp(why) => assert!(why.contains("tool-call deltas"), "{why}"),
        _ => panic!("a stream with tool calls was migrated"),
    }
    let mut spent = migration_for(chat_request(""), chunks(&[" a"]));
    spent.done = 1;
    match spent.step(&failed) {
        Step::GiveUp(why) => assert!(why.contains("migration limit"), "{why}"),
        _ => panic!("the migration limit was ignored"),
    }
}

#[tokio::test]
async fn a_first_continuation_is_never_refused_by_the_budget_but_a_second_needs_a_permit() {
    // Both other instances refuse connections; the budget allows nothing.
    let app = test_app(&["o1", "o2"], |c| {
        c.reliability.retry_budget.min_concurrent = 0;
        c.reliability.retry_budget.percent = 0;
    });
    let failed = Arc::new(Instance::new(InstanceSpec::new("f", "m", "http://f"), None));
    let mut m = migration_for(chat_request(""), chunks(&[" a"]));
    let Step::Resume(cont) = m.step(&failed) else {
        panic!("expected a continuation attempt");
    };
    let err = resume(Arc::clone(&app), cont)
        .await
        .err()
        .unwrap_or_default();
    assert!(err.contains("retry budget"), "{err}");
    // The first attempt went out despite the empty budget (and failed on its instance) …
    let tried: Vec<_> = app
        .registry
        .all()
        .into_iter()
        .filter(|i| i.last_error().is_some())
        .map(|i| i.id().to_owned())
        .collect();
    assert_eq!(tried.len(), 1, "{tried:?}");
    // … the second was refused.
    assert_eq!(app.metrics.retry_budget_exhausted.get(), 1);
}

#[tokio::test]
async fn a_continuation_is_shed_when_every_other_instance_is_full() {
    let app = test_app(&["other"], |c| {
        c.reliability.overload.max_in_flight_per_instance = 1
    });
    let busy = app.registry.all().into_iter().next().unwrap();
    let _held = busy.start_request();
    let failed = Arc::new(Instance::new(InstanceSpec::new("f", "m", "http://f"), None));
    let mut m = migration_for(chat_request(""), chunks(&[" a"]));
    let Step::Resume(cont) = m.step(&failed) else {
        panic!("expected a continuation attempt");
    };
    let err = resume(Arc::clone(&app), cont)
        .await
        .err()
        .unwrap_or_default();
    assert!(err.contains("at capacity"), "{err}");
}

#[tokio::test]
async fn a_health_policy_verdict_keeps_a_continuation_off_the_instance() {
    // The only other instance has a closed breaker but a health-policy plugin took it out.
    let app = test_app(&["out"], |_| {});
    let out = app.registry.all().into_iter().next().unwrap();
    out.set_policy_verdict(Some(false));
    let failed = Arc::new(Instance::new(InstanceSpec::new("f", "m", "http://f"), None));
    let mut m = migration_for(chat_request(""), chunks(&[" a"]));
    let Step::Resume(cont) = m.step(&failed) else {
        panic!("expected a continuation attempt");
    };
    let err = resume(Arc::clone(&app), cont)
        .await
        .err()
        .unwrap_or_default();
    assert!(err.contains("no other instance"), "{err}");
    assert_eq!(out.last_error(), None, "the continuation was sent to it");
    // With the verdict cleared, the same instance is tried (and refuses the connection).
    out.set_policy_verdict(None);
    let mut m = migration_for(chat_request(""), chunks(&[" a"]));
    let Step::Resume(cont) = m.step(&failed) else {
        panic!("expected a continuation attempt");
    };
    assert!(resume(Arc::clone(&app), cont).await.is_err());
    assert!(out.last_error().is_some(), "the instance was not tried");
}

#[tokio::test]
async fn usage_after_a_migration_is_the_engines_token_counts_not_chunks() {
    let failed = Arc::new(Instance::new(InstanceSpec::new("f", "m", "http://f"), None));
    // The first worker packs tokens into chunks and reports continuous usage.
    let sent = vec![
        Bytes::from_static(
            br#"{"choices":[{"index":0,"text":" a b"}],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#,
        ),
        Bytes::from_static(
            br#"{"choices":[{"index":0,"text":" c d"}],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}"#,
        ),
    ];
    let mut m = migration_for(completion_request(r#","max_tokens":10"#), sent);
    assert!(matches!(m.step(&failed), Step::Resume(_)));
    assert_eq!(m.tokens_before, 4, "the engine's count, not 2 chunks");
    // The continuation's prompt holds the text given back; its completion is its own.
    assert_eq!(m.adjust_usage(Usage::new(13, 3)), Usage::new(9, 7));
    // A continuation without engine counts adds one token per text chunk to what came before.
    for data in chunks(&[" e", " f"]) {
        m.record_sent(&data);
    }
    assert!(matches!(m.step(&failed), Step::GiveUp(_)));
    assert_eq!(m.tokens_before, 6);
}
