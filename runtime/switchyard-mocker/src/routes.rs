//! The HTTP edge: route by method and path, parse and validate the body, apply fault knobs,
//! then hand generation to a [`Sequence`]. Every failure becomes an OpenAI-shaped error here.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::args::EngineDialect;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use switchyard_protocol::{ChatCompletionRequest, CompletionRequest, EmbeddingRequest};

use crate::choices::{ChatPlan, Choices};
use crate::faults::Fault;
use crate::respond::{self, ApiError, Body};
use crate::sequence::{GenRequest, Sequence, DEFAULT_MAX_TOKENS};
use crate::state::Shared;
use crate::wire::{Envelope, Kind};
use crate::{choices_stream, embed, pd, stream};
use switchyard_kv::PromptKind;
use switchyard_runtime::exposition::{Scrape, CONTENT_TYPE};

/// Largest request body accepted.
const BODY_LIMIT: usize = 32 * 1024 * 1024;
/// Largest output a request may ask for: bounds the memory one request can take.
const MAX_OUTPUT_TOKENS: u32 = 1 << 20;

/// A parsed generation request.
struct Parsed {
    model: String,
    /// Chat beyond one plain text choice (`n`, `stop`, tools); `None` takes the plain path.
    choices: Option<ChatPlan>,
    gen: GenRequest,
    stream: bool,
    include_usage: bool,
    /// vLLM's `stream_options.continuous_usage_stats` (with `include_usage`): usage on every
    /// token chunk of the plain path.
    continuous_usage: bool,
}

/// Serves one request.
pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    if path.starts_with("/v1/") && !authorized(&shared, &req) {
        // vLLM's answer to a missing or wrong key.
        return respond::json(
            StatusCode::UNAUTHORIZED,
            Bytes::from_static(br#"{"error":"Unauthorized"}"#),
        );
    }
    shared.routes.count(path);
    shared.traceparents.record(req.headers());
    match (req.method(), path) {
        (&Method::POST, p) if shared.args.native.serves(p) => {
            crate::native_api::handle(shared, req).await
        }
        (&Method::POST, "/v1/chat/completions") => generate(shared, req, Kind::Chat).await,
        (&Method::POST, "/v1/completions") if shared.args.chat_only => {
            respond::error(StatusCode::NOT_FOUND, format!("no route for {path}"))
        }
        (&Method::POST, "/v1/completions") => generate(shared, req, Kind::Completion).await,
        (&Method::POST, "/v1/embeddings") => embeddings(shared, req).await,
        (&Method::POST, "/kv/pull") => kv_pull(shared, req).await,
        (&Method::GET, "/v1/models") if shared.lora.enabled() => respond::json(
            StatusCode::OK,
            crate::lora::routes::models_json(&shared.lora, &shared.args),
        ),
        (&Method::GET, "/v1/models") => respond::json(StatusCode::OK, shared.models_json.clone()),
        (&Method::POST, p) if crate::lora::routes::operation(shared.args.engine, p).is_some() => {
            lora_op(shared, req).await
        }
        (&Method::GET, "/health") => health(&shared),
        (&Method::GET, "/debug/traceparents") => {
            respond::json(StatusCode::OK, shared.traceparents.json())
        }
        (&Method::GET, "/metrics") => respond::text(CONTENT_TYPE, metrics_text(&shared)),
        // trtllm-serve's Prometheus text lives beside its JSON `/metrics`.
        (&Method::GET, "/prometheus/metrics") if shared.args.engine == EngineDialect::Trtllm => {
            let mut s = Scrape::default();
            shared
                .metrics
                .collect_dialect(EngineDialect::Trtllm, &shared.args.model, &mut s);
            respond::text(CONTENT_TYPE, crate::metrics::encode(s))
        }
        (_, "/v1/chat/completions" | "/v1/completions" | "/v1/embeddings")
        | (_, "/v1/models" | "/health" | "/metrics") => {
            respond::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => respond::error(StatusCode::NOT_FOUND, format!("no route for {path}")),
    }
}

async fn lora_op(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let Some(op) = crate::lora::routes::operation(shared.args.engine, req.uri().path()) else {
        return respond::error(StatusCode::NOT_FOUND, "no route");
    };
    match read_json(req).await {
        Ok(body) => crate::lora::routes::handle(&shared.lora, shared.args.engine, op, &body).await,
        Err(e) => e.into_response(),
    }
}

fn authorized(shared: &Shared, req: &Request<Incoming>) -> bool {
    let Some(key) = &shared.args.api_key else {
        return true;
    };
    req.headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| given == key)
}

fn health(shared: &Shared) -> Response<Body> {
    match shared.faults.status() {
        Some(status) => respond::error(status, "mocker configured with --status"),
        None => respond::json(StatusCode::OK, Bytes::from_static(br#"{"status":"ok"}"#)),
    }
}

async fn generate(shared: Arc<Shared>, req: Request<Incoming>, kind: Kind) -> Response<Body> {
    match read_json(req).await {
        Ok(body) => generate_body(shared, &body, kind).await,
        Err(e) => e.into_response(),
    }
}

/// Generates for a chat or completion body (also what the native agent APIs are served by,
/// [`crate::native_api`]).
pub(crate) async fn generate_body(shared: Arc<Shared>, body: &[u8], kind: Kind) -> Response<Body> {
    let parsed = parse(&shared, body, kind).and_then(|parsed| {
        let stage = pd::Fields::parse(body)
            .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, m))?
            .stage(shared.args.pd.role);
        Ok((parsed, stage))
    });
    let (mut parsed, stage) = match parsed {
        Ok(parsed) => parsed,
        Err(e) if shared.args.empty_errors => return e.into_empty_response(),
        Err(e) => return e.into_response(),
    };
    shared.metrics.requests.fetch_add(1, Relaxed);
    if let Some(resp) = fault(&shared).await {
        return resp;
    }
    // A request for an adapter swaps it into a slot first and counts as running on it.
    let adapter = match parsed.model != shared.args.model {
        true => Some(crate::lora::begin(&shared, &parsed.model).await),
        false => None,
    };
    if let Some(poison) = &shared.args.fail_on_prompt {
        if parsed.gen.context.contains(poison.as_str()) {
            return respond::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "simulated failure on this prompt (--fail-on-prompt)",
            );
        }
    }
    if matches!(stage, pd::Stage::PrefillForRoom(_)) {
        // SGLang's prefill side: one token, answered whole; the decode side streams.
        parsed.gen.max_tokens = 1;
        parsed.stream = false;
    }
    let hashes = matches!(stage, pd::Stage::Pull(_)).then(|| {
        shared
            .hasher
            .hash(&parsed.gen.context, parsed.gen.kind)
            .hashes
    });
    let envelope = Envelope::new(kind, &shared).answering_as(&parsed.model);
    // Created before the pull, so a client that leaves while it waits counts as cancelled.
    let choices = parsed
        .choices
        .take()
        .map(|plan| Choices::new(plan, &parsed.gen.context, parsed.gen.seed));
    let mut seq = Sequence::new(shared.clone(), parsed.gen);
    if let (pd::Stage::Pull(source), Some(hashes)) = (&stage, hashes) {
        if let Err(why) = pd::pull(&shared, source, &hashes).await {
            tracing::warn!(error = %why, "KV pull failed");
            if shared.args.pd.kv_load_failure_policy == pd::args::LoadFailurePolicy::Fail {
                seq.discard();
                return respond::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("KV transfer failed: {why}"),
                );
            }
        }
    }
    let holds = matches!(
        stage,
        pd::Stage::PrefillForHandle | pd::Stage::PrefillForRoom(_)
    );
    // `n`, `stop` and tool calls (a prefill stage answers one token and ignores them).
    if let (Some(choices), false) = (choices, holds) {
        if parsed.stream {
            let body = choices_stream::body(seq, choices, envelope, parsed.include_usage);
            return respond::sse(body);
        }
        let body = choices_stream::whole(seq, choices, &envelope).await;
        return respond::json(StatusCode::OK, body);
    }
    if holds {
        seq.hold_kv();
    } else if parsed.stream {
        let body = stream::body(seq, envelope, parsed.include_usage, parsed.continuous_usage);
        return respond::sse(crate::lora::hold(body, adapter));
    }
    seq.prefill().await;
    while seq.next_token().await.is_some() {}
    let answer = envelope.response(&seq.text, seq.usage());
    let answer = match (stage, seq.take_held()) {
        (pd::Stage::PrefillForHandle, Some(alloc)) => pd::prefill_answer(&shared, answer, alloc),
        (pd::Stage::PrefillForRoom(room), Some(alloc)) => {
            pd::hold_room(&shared, room, alloc);
            answer
        }
        _ => answer,
    };
    respond::json(StatusCode::OK, answer)
}

/// `POST /kv/pull`, the prefill side of a KV hand-over.
async fn kv_pull(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    match read_json(req).await {
        Ok(body) => pd::handle_pull(shared, body).await,
        Err(e) => e.into_response(),
    }
}

/// The mocker's own series, its adapters' and disaggregation's, and (except TRT-LLM, which
/// serves them on `/prometheus/metrics`) its engine dialect's.
fn metrics_text(shared: &Shared) -> String {
    let mut s = Scrape::default();
    shared.metrics.collect(&mut s);
    shared.routes.collect(&mut s);
    // SGLang exports no adapter metric of its own.
    let vllm_info = shared.args.engine != EngineDialect::Sglang;
    shared.lora.collect(vllm_info, &mut s);
    let held = shared.pd.handover.held_blocks();
    shared
        .pd
        .counters
        .collect(shared.args.pd.role, held, &mut s);
    if shared.args.engine != EngineDialect::Trtllm {
        shared
            .metrics
            .collect_dialect(shared.args.engine, &shared.args.model, &mut s);
    }
    crate::metrics::encode(s)
}

/// Parses and validates a chat or completion body into what the engine needs.
fn parse(shared: &Shared, body: &[u8], kind: Kind) -> Result<Parsed, ApiError> {
    let parsed = match kind {
        Kind::Chat => parse_chat(shared, body)?,
        Kind::Completion => parse_completion(shared, body)?,
    };
    check_model(shared, &parsed.model)?;
    if parsed.gen.max_tokens > MAX_OUTPUT_TOKENS {
        let message = format!("max_tokens must be at most {MAX_OUTPUT_TOKENS}");
        return Err(ApiError::new(StatusCode::BAD_REQUEST, message));
    }
    Ok(parsed)
}

/// A chat request's context is its messages rendered with the default chat template (the
/// final one left open with `continue_final_message`).
fn parse_chat(shared: &Shared, body: &[u8]) -> Result<Parsed, ApiError> {
    let req: ChatCompletionRequest = decode(body)?;
    let context = crate::prefill::chat_context(&shared.template, &req)?;
    let seed = mix_seed(shared, req.seed);
    let plan = ChatPlan::from_request(&req, seed)?;
    let max_tokens = plan.steps(req.output_limit().unwrap_or(DEFAULT_MAX_TOKENS));
    Ok(Parsed {
        choices: plan.into_extended(),
        gen: GenRequest {
            context,
            kind: PromptKind::Chat,
            seed,
            max_tokens,
        },
        stream: req.is_stream(),
        include_usage: req.include_usage() && !shared.args.no_stream_usage,
        continuous_usage: stream::continuous_usage(req.stream_options.as_ref()),
        model: req.model,
    })
}

fn parse_completion(shared: &Shared, body: &[u8]) -> Result<Parsed, ApiError> {
    let req: CompletionRequest = decode(body)?;
    Ok(Parsed {
        choices: ChatPlan::from_completion(&req)?.into_extended(),
        gen: GenRequest {
            context: req.prompt.as_text(),
            kind: PromptKind::Completion,
            seed: mix_seed(shared, req.seed),
            max_tokens: req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        },
        stream: req.is_stream(),
        include_usage: req.include_usage() && !shared.args.no_stream_usage,
        continuous_usage: stream::continuous_usage(req.stream_options.as_ref()),
        model: req.model,
    })
}

/// The request's seed XOR `--seed`. Negative seeds are valid in OpenAI's API; their
/// two's-complement bits are the seed.
fn mix_seed(shared: &Shared, seed: Option<i64>) -> u64 {
    seed.unwrap_or(0) as u64 ^ shared.args.seed
}

async fn embeddings(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let req: EmbeddingRequest = match read_json(req).await.and_then(|b| decode(&b)) {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = check_model(&shared, &req.model) {
        return e.into_response();
    }
    shared.metrics.requests.fetch_add(1, Relaxed);
    if let Some(resp) = fault(&shared).await {
        return resp;
    }
    let out = embed::response(&shared.args.model, &req.input.items(), shared.args.seed);
    match serde_json::to_vec(&out) {
        Ok(body) => respond::json(StatusCode::OK, Bytes::from(body)),
        Err(e) => respond::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Applies the fault knobs; `Some` is the response to send instead of generating.
async fn fault(shared: &Shared) -> Option<Response<Body>> {
    match shared.faults.roll() {
        Fault::None => None,
        Fault::Fail => Some(respond::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "simulated failure (--fail-rate)",
        )),
        Fault::Status(status) => Some(respond::error(status, "mocker configured with --status")),
        Fault::Hang => {
            // Hold the request until the client leaves (hyper drops this future) or the mocker
            // shuts down, so graceful shutdown is never blocked by a simulated hang.
            let mut shutdown = shared.shutdown.clone();
            let _ = shutdown.wait_for(|stopping| *stopping).await;
            Some(respond::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "mocker shutting down",
            ))
        }
    }
}

fn check_model(shared: &Shared, model: &str) -> Result<(), ApiError> {
    if model == shared.args.model || shared.lora.is_registered(model) {
        Ok(())
    } else {
        Err(ApiError::model_not_found(model))
    }
}

/// Reads the whole body, up to [`BODY_LIMIT`].
pub(crate) async fn read_json(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    match Limited::new(req.into_body(), BODY_LIMIT).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {BODY_LIMIT} bytes"),
        )),
        Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, e.to_string())),
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid request body: {e}"),
        )
    })
}
