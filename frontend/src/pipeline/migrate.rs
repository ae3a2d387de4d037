//! Mid-stream migration (`migration_limit`): when a worker fails after tokens reached the
//! client, the request is re-issued to another instance as a completions *continuation* —
//! the prompt (chat messages rendered through the target's chat template, or the default one)
//! plus the text already sent, with `max_tokens` reduced by the tokens already sent — and the
//! relay splices its stream onto the client's, so the client sees one stream with no lost or
//! duplicated text.
//!
//! Exactness relies on the worker continuing a prompt the way it would have continued its own
//! generation (true for deterministic decoding with a matching template; the mocker is built
//! for it). A chunk is counted as one token: engines that pack several tokens into one chunk
//! get a looser `max_tokens`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use switchyard_protocol::{CompletionRequest, Prompt, StreamOptions, Usage};
use switchyard_runtime::clock::now_ns;
use switchyard_runtime::health::HealthStatus;
use switchyard_runtime::{ChatTemplate, Instance};

use super::dispatch::{self, StreamStart};
use super::parse::{ParsedRequest, TypedRequest};
use crate::app::App;
use crate::translate;

/// The continuation being set up: resolves to the new stream's start, or why none could be had.
pub type Resume = Pin<Box<dyn Future<Output = Result<StreamStart, String>> + Send>>;

/// What to do about a stream whose worker failed.
pub enum Step {
    /// The generation had already finished (only `[DONE]` was missing): end it cleanly.
    Finish,
    /// A continuation is on its way.
    Resume(Resume),
    /// Migration is not possible; end the stream with an in-band error.
    GiveUp(String),
}

/// Per-stream migration state; exists only when migration is on and the request can be
/// continued (a stream with one choice and a text prompt).
pub struct Migration {
    typed: Arc<TypedRequest>,
    model: String,
    request_id: String,
    limit: u32,
    done: u32,
    /// Client-facing payloads sent so far (refcounted clones, parsed only on failure).
    sent: Vec<Bytes>,
    /// Content tokens sent before the current upstream: added to its usage report.
    pub tokens_before: u32,
    failed: Vec<Arc<Instance>>,
    /// The first chunk's `id` and `created`, stamped on the continuation's chunks.
    stamp: Option<(Value, Value)>,
}

impl Migration {
    pub fn new(app: &App, request: &ParsedRequest, request_id: &str) -> Option<Box<Self>> {
        let limit = app.config.migration_limit;
        if limit == 0 || !request.is_stream() || !continuable(&request.typed) {
            return None;
        }
        Some(Box::new(Self {
            typed: Arc::new(request.typed.clone()),
            model: request.model().to_owned(),
            request_id: request_id.to_owned(),
            limit,
            done: 0,
            sent: Vec::with_capacity(64),
            tokens_before: 0,
            failed: Vec::new(),
            stamp: None,
        }))
    }

    /// Remembers one payload the client received.
    pub fn record_sent(&mut self, data: &Bytes) {
        self.sent.push(data.clone());
    }

    /// Whether this stream has been migrated at least once.
    pub fn migrated(&self) -> bool {
        self.done > 0
    }

    /// Decides what follows the failure of `failed`.
    pub fn step(&mut self, app: &Arc<App>, failed: &Arc<Instance>) -> Step {
        let progress = progress(&self.sent);
        if progress.finished {
            return Step::Finish;
        }
        if self.done >= self.limit {
            return Step::GiveUp(format!("migration limit ({}) reached", self.limit));
        }
        self.done += 1;
        self.tokens_before = progress.tokens;
        if self.stamp.is_none() {
            self.stamp = self.sent.first().and_then(|first| stamp_of(first));
        }
        self.failed.push(Arc::clone(failed));
        Step::Resume(Box::pin(resume(
            Arc::clone(app),
            Arc::clone(&self.typed),
            self.model.clone(),
            progress,
            self.failed.clone(),
            self.request_id.clone(),
        )))
    }

    /// The continuation's usage, counted for the whole spliced stream.
    pub fn adjust_usage(&self, usage: Usage) -> Usage {
        let completion = usage.completion_tokens.saturating_add(self.tokens_before);
        Usage::new(
            usage.prompt_tokens.saturating_sub(self.tokens_before),
            completion,
        )
    }

    /// A continuation chunk with the original stream's `id` and `created`, so the client sees
    /// one stream. Only spliced streams pay for the re-encoding.
    pub fn restamp(&self, data: Bytes) -> Bytes {
        let Some((id, created)) = &self.stamp else {
            return data;
        };
        let Ok(mut chunk) = serde_json::from_slice::<Value>(&data) else {
            return data;
        };
        if let Some(object) = chunk.as_object_mut() {
            object.insert("id".to_owned(), id.clone());
            object.insert("created".to_owned(), created.clone());
        }
        serde_json::to_vec(&chunk).map(Bytes::from).unwrap_or(data)
    }
}

fn stamp_of(chunk: &[u8]) -> Option<(Value, Value)> {
    let mut v: Value = serde_json::from_slice(chunk).ok()?;
    let object = v.as_object_mut()?;
    Some((object.remove("id")?, object.remove("created")?))
}

fn continuable(typed: &TypedRequest) -> bool {
    match typed {
        TypedRequest::Chat(r) => r.n.unwrap_or(1) <= 1,
        TypedRequest::Completion(r) => r.n.unwrap_or(1) <= 1 && matches!(r.prompt, Prompt::Text(_)),
        TypedRequest::Embedding(_) => false,
    }
}

/// What the client has received so far.
#[derive(Debug, Default, PartialEq)]
pub struct Progress {
    pub text: String,
    pub tokens: u32,
    pub finished: bool,
}

#[derive(Deserialize)]
struct ChunkProbe {
    #[serde(default)]
    choices: Vec<ChoiceProbe>,
}

#[derive(Deserialize)]
struct ChoiceProbe {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    delta: Option<DeltaProbe>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct DeltaProbe {
    #[serde(default)]
    content: Option<String>,
}

/// Reads the text, token count and finish state out of chat or completion chunks.
pub fn progress(sent: &[Bytes]) -> Progress {
    let mut p = Progress::default();
    for data in sent {
        let Ok(chunk) = serde_json::from_slice::<ChunkProbe>(data) else {
            continue;
        };
        for choice in chunk.choices {
            let text = choice
                .text
                .or_else(|| choice.delta.and_then(|d| d.content))
                .unwrap_or_default();
            if !text.is_empty() {
                p.text.push_str(&text);
                p.tokens += 1;
            }
            p.finished |= choice.finish_reason.is_some();
        }
    }
    p
}

/// The completions request that continues `typed` on `target` after `progress`.
pub fn continuation(
    typed: &TypedRequest,
    target: &Instance,
    progress: &Progress,
) -> Result<Bytes, String> {
    let mut completion: CompletionRequest = match typed {
        TypedRequest::Chat(chat) => {
            let body = match &target.template {
                Some(template) => translate::chat_to_completion(chat, template)?,
                None => translate::chat_to_completion(chat, &ChatTemplate::default())?,
            };
            serde_json::from_slice(&body).map_err(|e| e.to_string())?
        }
        TypedRequest::Completion(c) => c.clone(),
        TypedRequest::Embedding(_) => return Err("embeddings cannot be continued".to_owned()),
    };
    let Prompt::Text(prompt) = &mut completion.prompt else {
        return Err("only text prompts can be continued".to_owned());
    };
    prompt.push_str(&progress.text);
    completion.max_tokens = completion
        .max_tokens
        .map(|m| m.saturating_sub(progress.tokens));
    completion.stream = Some(true);
    completion.stream_options = Some(StreamOptions {
        include_usage: Some(true),
        extra: Default::default(),
    });
    serde_json::to_vec(&completion)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// The least-loaded routable instance of `model` not in `exclude`, healthy ones first.
fn pick_target(app: &App, model: &str, exclude: &[Arc<Instance>]) -> Option<Arc<Instance>> {
    let now = now_ns();
    let topology = app.registry.topology();
    topology
        .model(model)?
        .iter()
        .filter(|i| !exclude.iter().any(|e| Arc::ptr_eq(e, i)) && i.health.is_routable(now))
        .min_by_key(|i| {
            (
                i.health.status(now) != HealthStatus::Healthy,
                i.load.in_flight(),
            )
        })
        .filter(|i| i.health.try_claim(now, &app.config.health))
        .cloned()
}

async fn resume(
    app: Arc<App>,
    typed: Arc<TypedRequest>,
    model: String,
    progress: Progress,
    mut exclude: Vec<Arc<Instance>>,
    request_id: String,
) -> Result<StreamStart, String> {
    let mut last = "no other instance of the model is available".to_owned();
    for _ in 0..=app.config.upstream.max_retries {
        let Some(target) = pick_target(&app, &model, &exclude) else {
            break;
        };
        let body = continuation(&typed, &target, &progress)?;
        match dispatch::resume_stream(&app, &target, body, &request_id).await {
            Ok(start) => {
                tracing::info!(
                    instance = target.id(),
                    tokens = progress.tokens,
                    "stream migrated"
                );
                return Ok(start);
            }
            Err(error) => {
                dispatch::record_instance_failure(&app, &target, &error);
                last = error.message;
                exclude.push(target);
            }
        }
    }
    Err(format!("could not migrate the stream: {last}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::parse::decode;
    use crate::pipeline::Endpoint;
    use switchyard_runtime::InstanceSpec;

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

    #[test]
    fn a_chat_continuation_is_the_rendered_prompt_plus_the_text() {
        let typed = decode(
            Endpoint::Chat,
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":10,"seed":7,"stream":true}"#,
        )
        .unwrap();
        let target = Instance::new(InstanceSpec::new("t", "m", "http://t"), None);
        let p = progress(&chunks(&[" a", " b", " c"]));
        let v: Value = serde_json::from_slice(&continuation(&typed, &target, &p).unwrap()).unwrap();
        assert_eq!(v["prompt"], "<|user|>\nhi\n<|assistant|>\n a b c");
        assert_eq!(v["max_tokens"], 7);
        assert_eq!(v["seed"], 7);
        assert_eq!(v["stream_options"]["include_usage"], true);
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
        let v: Value = serde_json::from_slice(&continuation(&typed, &target, &p).unwrap()).unwrap();
        assert_eq!(v["prompt"], "once upon");
        assert_eq!(v["max_tokens"], 3);
        let tokens = decode(
            Endpoint::Completions,
            br#"{"model":"m","prompt":[1,2],"stream":true}"#,
        )
        .unwrap();
        assert!(!continuable(&tokens));
        assert!(continuation(&tokens, &target, &p).is_err());
    }
}
