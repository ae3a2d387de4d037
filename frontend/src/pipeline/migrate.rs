//! Mid-stream migration (`migration_limit`): when a worker fails after tokens reached the
//! client, the request is re-issued to another instance as a *continuation* of the text
//! already sent, with `max_tokens` reduced by the tokens already sent, and the relay splices
//! its stream onto the client's, so the client sees one stream with no lost or duplicated
//! text. A chat stream on a chat worker continues on its chat endpoint with that text as an
//! open final assistant message ([`super::chat_continuation`]), rendered by the worker's own
//! template; on a completions-only worker, and for completions streams, the continuation is a
//! completions prompt (chat rendered through the target's configured template) plus the text.
//!
//! Exactness relies on the worker continuing a prompt the way it would have continued its own
//! generation (true for deterministic decoding; the mocker is built for it). Tokens already
//! sent are the engine's count where its chunks carry one (continuous usage, `token_ids`;
//! [`super::migrate_usage`]), else one per text chunk.
//!
//! Requests that a text continuation cannot reproduce are not migrated ([`why_not`]): they end
//! with the in-band error, as with migration off. So are streams that turn out to carry more
//! than text (tool-call or reasoning deltas). A continuation is a re-issue: it needs a
//! retry-budget permit and an instance with room, like a retry before the first byte.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use switchyard_protocol::{CompletionRequest, Prompt, Usage};
use switchyard_runtime::clock::now_ns;
use switchyard_runtime::health::HealthStatus;
use switchyard_runtime::{Instance, WorkerApi, WorkerBody};

use super::chat_continuation::chat_continuation;
use super::migrate_usage::segment_tokens;
use super::outcome;
use super::parse::{ParsedRequest, TypedRequest};
use super::preprocess::UpstreamRequest;
use super::upstream::{self, StreamStart};
use super::Endpoint;
use crate::app::App;
use crate::translate;

/// The continuation being set up: resolves to the new stream's start, or why none could be had.
/// Boxed once per migration, never per event.
pub type Resume<B = WorkerBody> =
    Pin<Box<dyn Future<Output = Result<StreamStart<B>, String>> + Send>>;

/// Starts the exchange for a continuation: [`connect`] in the product; a relay under test
/// passes one that answers from memory.
pub type Connect<B> = fn(Arc<App>, Continue) -> Resume<B>;

/// What a continuation needs: the request, what the client has received, and the instances
/// that already failed it.
pub struct Continue {
    typed: Arc<TypedRequest>,
    model: String,
    progress: Progress,
    exclude: Vec<Arc<Instance>>,
    request_id: String,
}

/// What to do about a stream whose worker failed.
pub enum Step {
    /// The generation had already finished (only `[DONE]` was missing): end it cleanly.
    Finish,
    /// Every token the client asked for was sent but the finish chunk was not: end the
    /// stream with [`Migration::finish_chunk`] (a continuation would be asked for 0 tokens).
    Exhausted,
    /// Set up this continuation ([`Connect`]).
    Resume(Continue),
    /// Migration is not possible; end the stream with an in-band error.
    GiveUp(String),
}

/// Per-stream migration state; exists only when migration is on and the request can be
/// continued exactly ([`why_not`] is `None`).
pub struct Migration {
    typed: Arc<TypedRequest>,
    model: String,
    request_id: String,
    limit: u32,
    done: u32,
    /// Client-facing payloads sent so far (refcounted clones, parsed only on failure).
    sent: Vec<Bytes>,
    /// Completion tokens sent before the current upstream (the engines' counts where they
    /// report them, [`segment_tokens`]): added to its usage report.
    pub tokens_before: u32,
    /// Where the current upstream's payloads start in `sent`.
    segment_start: usize,
    /// The first worker's `prompt_tokens`, when its chunks reported usage.
    prompt_tokens: Option<u32>,
    failed: Vec<Arc<Instance>>,
    /// The first chunk's `id` and `created`, stamped on the continuation's chunks.
    stamp: Option<(Value, Value)>,
}

impl Migration {
    /// The stream's migration state; `Err(None)` when migration is off or the request is not
    /// a stream, `Err(Some(why))` when it is on but this request cannot be continued exactly.
    pub fn new(
        app: &App,
        request: &ParsedRequest,
        request_id: &str,
    ) -> Result<Box<Self>, Option<&'static str>> {
        let limit = app.config.reliability.migration_limit;
        if limit == 0 || !request.is_stream() {
            return Err(None);
        }
        if let Some(why) = why_not(&request.typed) {
            return Err(Some(why));
        }
        Ok(Box::new(Self {
            typed: Arc::new(request.typed.clone()),
            model: request.model().to_owned(),
            request_id: request_id.to_owned(),
            limit,
            done: 0,
            sent: Vec::with_capacity(64),
            tokens_before: 0,
            segment_start: 0,
            prompt_tokens: None,
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
    pub fn step(&mut self, failed: &Arc<Instance>) -> Step {
        let mut progress = progress(&self.sent);
        if progress.finished {
            return Step::Finish;
        }
        if let Some(what) = progress.inexact {
            return Step::GiveUp(format!("not migrated: the stream carried {what}"));
        }
        // Tokens, not chunks: what this upstream produced, by its engine's count if it gave one.
        let segment = segment_tokens(self.sent.get(self.segment_start..).unwrap_or_default());
        if self.done == 0 {
            self.prompt_tokens = segment.prompt_tokens;
        }
        progress.tokens = self.tokens_before.saturating_add(segment.tokens);
        self.tokens_before = progress.tokens;
        self.segment_start = self.sent.len();
        if self.stamp.is_none() {
            self.stamp = self.sent.first().and_then(|first| stamp_of(first));
        }
        if remaining_tokens(&self.typed, &progress) == Some(0) {
            return Step::Exhausted;
        }
        if self.done >= self.limit {
            return Step::GiveUp(format!("migration limit ({}) reached", self.limit));
        }
        self.done += 1;
        self.failed.push(Arc::clone(failed));
        Step::Resume(Continue {
            typed: Arc::clone(&self.typed),
            model: self.model.clone(),
            progress,
            exclude: self.failed.clone(),
            request_id: self.request_id.clone(),
        })
    }

    /// The chunk that ends a stream whose output budget was spent, in the client's shape,
    /// with the stream's `id` and `created`.
    pub fn finish_chunk(&self) -> Bytes {
        let choice = match &*self.typed {
            TypedRequest::Chat(_) => json!({"index": 0, "delta": {}, "finish_reason": "length"}),
            _ => json!({"index": 0, "text": "", "finish_reason": "length"}),
        };
        self.chunk(json!([choice]), None)
    }

    /// The usage chunk for a stream ended by [`Self::finish_chunk`] (`choices: []`).
    pub fn usage_chunk(&self, usage: &Usage) -> Bytes {
        self.chunk(json!([]), Some(usage))
    }

    /// A chunk of this stream in the client's shape, with its `id` and `created`.
    fn chunk(&self, choices: Value, usage: Option<&Usage>) -> Bytes {
        let (id, created) = self
            .stamp
            .clone()
            .unwrap_or_else(|| (Value::from(format!("cmpl-{}", self.request_id)), 0.into()));
        let object = match &*self.typed {
            TypedRequest::Chat(_) => "chat.completion.chunk",
            _ => "text_completion",
        };
        let mut chunk = json!({
            "id": id, "object": object, "created": created, "model": self.model,
            "choices": choices,
        });
        if let Some(usage) = usage {
            chunk["usage"] = json!(usage);
        }
        Bytes::from(chunk.to_string())
    }

    /// The continuation's usage, counted for the whole spliced stream: the tokens sent
    /// before it plus its own completion tokens; the prompt is the first worker's count, or
    /// the continuation's less the text it was given back.
    pub fn adjust_usage(&self, usage: Usage) -> Usage {
        let completion = usage.completion_tokens.saturating_add(self.tokens_before);
        let prompt = self
            .prompt_tokens
            .unwrap_or_else(|| usage.prompt_tokens.saturating_sub(self.tokens_before));
        Usage::new(prompt, completion)
    }

    /// The usage of a stream that ended without a continuation (its budget spent).
    pub fn usage_so_far(&self) -> Usage {
        Usage::new(self.prompt_tokens.unwrap_or(0), self.tokens_before)
    }

    /// A continuation chunk with the original stream's `id` and `created` and no role delta
    /// (a chat worker starts its continuation with one), so the client sees one stream. Only
    /// spliced streams pay for the re-encoding.
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
            if let Some(Value::Array(choices)) = object.get_mut("choices") {
                for choice in choices {
                    if let Some(Value::Object(delta)) = choice.get_mut("delta") {
                        delta.remove("role");
                    }
                }
            }
        }
        serde_json::to_vec(&chunk).map(Bytes::from).unwrap_or(data)
    }
}

fn stamp_of(chunk: &[u8]) -> Option<(Value, Value)> {
    let mut v: Value = serde_json::from_slice(chunk).ok()?;
    let object = v.as_object_mut()?;
    Some((object.remove("id")?, object.remove("created")?))
}

/// Why `typed` cannot be continued exactly by a text continuation, if it cannot: several
/// choices, a prompt that is not text, chat fields a completions request cannot carry
/// (tools, structured output, chat log probabilities), or completions options whose output
/// is not a plain continuation of the prompt (`echo`, `best_of`).
fn why_not(typed: &TypedRequest) -> Option<&'static str> {
    // Raw text: a present value other than `null`/`false`, of any size, asks for it.
    let truthy =
        |v: Option<&Box<RawValue>>| v.is_some_and(|v| !matches!(v.get().trim(), "null" | "false"));
    match typed {
        TypedRequest::Chat(r) if r.n.unwrap_or(1) > 1 => Some("n > 1"),
        // vLLM's chat `echo` repeats the final message: a continuation would resend the text.
        TypedRequest::Chat(r) if truthy(r.extra.get("echo")) => Some("echo"),
        TypedRequest::Chat(r) => translate::lost_in_translation(r),
        TypedRequest::Completion(r) if r.n.unwrap_or(1) > 1 => Some("n > 1"),
        TypedRequest::Completion(r) if !matches!(r.prompt, Prompt::Text(_)) => {
            Some("a token or batch prompt")
        }
        TypedRequest::Completion(r) if truthy(r.extra.get("echo")) => Some("echo"),
        TypedRequest::Completion(r)
            if r.extra
                .small_value("best_of", 32)
                .and_then(|v| v.as_u64())
                .unwrap_or(1)
                > 1 =>
        {
            Some("best_of > 1")
        }
        TypedRequest::Completion(_) => None,
        TypedRequest::Embedding(_) => Some("embeddings"),
    }
}

/// Output tokens still allowed after `progress` (`None`: no limit was set).
fn remaining_tokens(typed: &TypedRequest, progress: &Progress) -> Option<u32> {
    let limit = match typed {
        TypedRequest::Chat(r) => r.output_limit(),
        TypedRequest::Completion(r) => r.max_tokens,
        TypedRequest::Embedding(_) => None,
    };
    limit.map(|m| m.saturating_sub(progress.tokens))
}

/// What the client has received so far.
#[derive(Debug, Default, PartialEq)]
pub struct Progress {
    pub text: String,
    pub tokens: u32,
    pub finished: bool,
    /// The stream carried something a text continuation cannot reproduce.
    pub inexact: Option<&'static str>,
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
    #[serde(default)]
    tool_calls: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    function_call: Option<IgnoredAny>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
}

impl DeltaProbe {
    /// What besides text this delta carries, if anything.
    fn beyond_text(&self) -> Option<&'static str> {
        let nonempty = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
        if self.tool_calls.as_ref().is_some_and(|t| !t.is_empty()) || self.function_call.is_some() {
            Some("tool-call deltas")
        } else if nonempty(&self.reasoning_content) || nonempty(&self.reasoning) {
            Some("reasoning deltas")
        } else {
            None
        }
    }
}

/// Reads the text, token count and finish state out of chat or completion chunks.
pub fn progress(sent: &[Bytes]) -> Progress {
    let mut p = Progress::default();
    for data in sent {
        let Ok(chunk) = serde_json::from_slice::<ChunkProbe>(data) else {
            continue;
        };
        for choice in chunk.choices {
            if let Some(what) = choice.delta.as_ref().and_then(DeltaProbe::beyond_text) {
                p.inexact.get_or_insert(what);
            }
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

/// The request that continues `typed` on `target` after `progress`: a chat stream on a chat
/// worker continues on its chat endpoint ([`chat_continuation`]); on a completions-only worker,
/// and for completions streams, it is a completions request whose prompt is the one sent
/// (chat messages rendered through the target's configured template) plus the text so far.
pub fn continuation(
    typed: &TypedRequest,
    target: &Instance,
    progress: &Progress,
) -> Result<UpstreamRequest, String> {
    let mut completion: CompletionRequest = match typed {
        TypedRequest::Chat(chat) if target.spec.api == WorkerApi::Chat => {
            return Ok(UpstreamRequest {
                endpoint: Endpoint::Chat,
                body: chat_continuation(chat, progress)?,
                translated: false,
                native: None,
                forward: Vec::new(),
            });
        }
        TypedRequest::Chat(chat) => {
            // Never a built-in template for a worker whose own one is unknown here.
            let template = target.template.as_deref().ok_or_else(|| {
                format!("no chat template for completions worker {}", target.id())
            })?;
            let body = translate::chat_to_completion(chat, template)?;
            serde_json::from_slice(&body).map_err(|e| e.to_string())?
        }
        TypedRequest::Completion(c) => c.clone(),
        TypedRequest::Embedding(_) => return Err("embeddings cannot be continued".to_owned()),
    };
    let Prompt::Text(prompt) = &mut completion.prompt else {
        return Err("only text prompts can be continued".to_owned());
    };
    prompt.push_str(&progress.text);
    completion.max_tokens = match completion.max_tokens {
        // A worker may read 0 as "no limit" or refuse it; the relay ends such a stream itself.
        Some(m) if m <= progress.tokens => return Err("no output tokens left".to_owned()),
        limit => limit.map(|m| m - progress.tokens),
    };
    completion.stream = Some(true);
    // Usage is needed to count the whole stream; the client's other options (vLLM's
    // `continuous_usage_stats`) stay, so the continuation reports tokens as the first did.
    let mut options = completion.stream_options.take().unwrap_or_default();
    options.include_usage = Some(true);
    completion.stream_options = Some(options);
    let body = serde_json::to_vec(&completion)
        .map(Bytes::from)
        .map_err(|e| e.to_string())?;
    Ok(UpstreamRequest {
        endpoint: Endpoint::Completions,
        body,
        // A chat client's stream gets the completion chunks translated back.
        translated: matches!(typed, TypedRequest::Chat(_)),
        native: None,
        forward: Vec::new(),
    })
}

/// The product's [`Connect`]: [`resume`] over the worker client.
pub fn connect(app: Arc<App>, cont: Continue) -> Resume {
    Box::pin(resume(app, cont))
}

/// The routable instances of `model` not in `exclude`.
fn others(app: &App, model: &str, exclude: &[Arc<Instance>]) -> Vec<Arc<Instance>> {
    let now = now_ns();
    let topology = app.registry.topology();
    topology.model(model).map_or_else(Vec::new, |pool| {
        pool.iter()
            .filter(|i| !exclude.iter().any(|e| Arc::ptr_eq(e, i)) && i.routable(now))
            .cloned()
            .collect()
    })
}

/// The least-loaded of `candidates`, healthy ones first, if its trial slot (when half-open)
/// can be claimed.
fn pick_target(app: &App, candidates: &[Arc<Instance>]) -> Option<Arc<Instance>> {
    let now = now_ns();
    candidates
        .iter()
        .min_by_key(|i| {
            (
                i.health.status(now) != HealthStatus::Healthy,
                i.load.in_flight(),
            )
        })
        .filter(|i| i.health.try_claim(now, &app.config.reliability.health))
        .cloned()
}

/// Sets up the continuation on the best other instance, trying up to `1 + max_retries` of
/// them. Each attempt is a re-issue like a retry: it needs an instance with room (the
/// overload thresholds) and counts against the retry budget until the continuation's first
/// event. The first attempt is never refused by the budget: a stream that already delivered
/// tokens shows the pool was serving, its re-issues are bounded by `migration_limit`, and when
/// a worker dies every stream on it migrates at once — more than a 20 % budget covers with few
/// workers. Further attempts (the continuation target failing too) need a permit.
pub async fn resume(app: Arc<App>, cont: Continue) -> Result<StreamStart, String> {
    let Continue {
        typed,
        model,
        progress,
        mut exclude,
        request_id,
    } = cont;
    let mut last = "no other instance of the model is available".to_owned();
    for attempt in 0..=app.config.reliability.upstream.max_retries {
        let candidates = others(&app, &model, &exclude);
        if candidates.is_empty() {
            break;
        }
        let refs: Vec<&Arc<Instance>> = candidates.iter().collect();
        if let Err(shed) = app.admission.check_capacity(&HeaderMap::new(), &refs) {
            return Err(format!("could not migrate the stream: {}", shed.message));
        }
        let permit = match attempt {
            0 => Some(app.retry_budget.acquire()),
            _ => app.retry_permit(),
        };
        let Some(_permit) = permit else {
            return Err("could not migrate the stream: the retry budget is spent".to_owned());
        };
        let Some(target) = pick_target(&app, &candidates) else {
            break;
        };
        let upstream = continuation(&typed, &target, &progress)?;
        match upstream::resume(&app, &target, upstream, &request_id).await {
            Ok(start) => {
                tracing::info!(
                    instance = target.id(),
                    tokens = progress.tokens,
                    "stream migrated"
                );
                return Ok(start);
            }
            Err(failure) => {
                tracing::warn!(request_id = %request_id, %failure, "continuation failed");
                outcome::blame(&app, &target, &failure, outcome::request_key(&request_id));
                last = failure.message();
                exclude.push(target);
            }
        }
    }
    Err(format!("could not migrate the stream: {last}"))
}

#[cfg(test)]
#[path = "migrate_tests.rs"]
mod tests;
