//! The request path, one module per stage, in the order a request meets them:
//!
//! parse → tenant charge → admission → candidates → preprocess → health filter → flow control
//! → select → dispatch → relay (→ migrate on a mid-stream failure; → finish)
//!
//! The tenant was authenticated and admitted against its request rate at the edge, before
//! the body was read ([`crate::tenants::edge`]); after parsing, its model list and token rate
//! are checked ([`crate::tenants::Lease::charge`]). Flow control ([`crate::flow`]) waits for
//! an instance with room just before selection, so the pick sees fresh load.
//!
//! For models with prefill instances, `pd` adds the prefill stage inside dispatch: each decode
//! attempt may first run a prefill on a prefill instance (vLLM's or SGLang's protocol).
//!
//! `run` reads top to bottom through them. Admission (the concurrency limit) comes
//! after parse: a client that trickles its body waits for it on its own connection, under
//! the body timeouts, without holding a slot that a complete request could use.

pub mod access_log;
pub mod access_writer;
pub mod body_budget;
pub mod body_limits;
pub mod candidates;
pub mod chat_continuation;
pub mod dispatch;
pub mod failure;
#[cfg(test)]
pub(crate) mod fake_worker;
pub mod health_filter;
pub mod inband;
pub mod latency;
pub mod migrate;
pub mod migrate_usage;
pub mod native;
pub mod native_events;
pub mod native_relay;
pub mod outcome;
pub mod parse;
pub mod pd;
pub mod preprocess;
pub mod relay;
pub mod select;
pub mod tracker;
pub mod upstream;
pub mod upstream_pull;
pub mod validate;

use std::sync::Arc;

use http::{HeaderMap, Response};

use crate::app::App;
use crate::error::ApiError;
use crate::http::RequestBody;
use crate::telemetry::{spans, traced, Trace};
use crate::tenants::Lease;
use parse::ParsedRequest;
use tracker::Tracker;

/// The response body the pipeline answers in: whole bytes, or one of its relays. The
/// frontend's body enum ([`crate::body::Body`]) is one; the pipeline names only this bound, so
/// it does not depend on the module that composes the body types (monomorphized: no boxing).
pub trait AnswerBody:
    From<bytes::Bytes> + From<Box<relay::RelayBody>> + From<Box<native_relay::NativeRelay>>
{
}

impl<B> AnswerBody for B where
    B: From<bytes::Bytes> + From<Box<relay::RelayBody>> + From<Box<native_relay::NativeRelay>>
{
}

/// The OpenAI endpoints that generate through a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Chat,
    Completions,
    Embeddings,
}

impl Endpoint {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Chat => "chat_completions",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
        }
    }

    /// The path on the worker.
    pub fn path(self) -> &'static str {
        match self {
            Self::Chat => "/v1/chat/completions",
            Self::Completions => "/v1/completions",
            Self::Embeddings => "/v1/embeddings",
        }
    }
}

/// Serves one generation request; every failure becomes an OpenAI-shaped error response.
/// `lease` is the caller's tenant hold, when tenants are configured. Generic over the
/// client's body `B` (only the parse stage reads it; everything after is not generic over it).
pub async fn generate<B: RequestBody, Body: AnswerBody>(
    app: &Arc<App>,
    (headers, body, lease): (HeaderMap, B, Option<Lease>),
    endpoint: Endpoint,
    request_id: &str,
) -> Response<Body> {
    let mut tracker = Tracker::start(app, endpoint);
    tracker.set_lease(lease);
    tracker.set_request_id(request_id);
    let trace = Trace::start(&headers, endpoint.label(), request_id);
    let scope = trace.clone();
    tracker.set_trace(trace);
    let result = if scope.is_inert() {
        run(app, headers, body, endpoint, request_id, &mut tracker).await
    } else {
        scope
            .scope(run(app, headers, body, endpoint, request_id, &mut tracker))
            .await
    };
    match result {
        Ok(response) => response,
        Err(error) => {
            tracker.finish_with(error.status);
            crate::http::error_response(&error)
        }
    }
}

/// Serves a request another API was translated into (the agent APIs bridged onto chat):
/// `parse` reads and translates the body; from there the request takes the same path as
/// one that came in on its endpoint. `route` labels its metrics.
pub async fn generate_as<F, Body: AnswerBody>(
    app: &Arc<App>,
    (route, lease): (&'static str, Option<Lease>),
    request_id: &str,
    parse: F,
) -> Response<Body>
where
    F: std::future::Future<Output = Result<ParsedRequest, ApiError>>,
{
    let mut tracker = Tracker::start_route(app, route);
    tracker.set_lease(lease);
    tracker.set_request_id(request_id);
    // The agent APIs' headers are read by their parse: the trace starts once it is done.
    let result = match parse.await {
        Ok(request) => {
            let trace = Trace::start(&request.headers, route, request_id);
            let scope = trace.clone();
            tracker.set_trace(trace);
            if scope.is_inert() {
                run_parsed(app, request, request_id, &mut tracker).await
            } else {
                scope
                    .scope(run_parsed(app, request, request_id, &mut tracker))
                    .await
            }
        }
        Err(error) => Err(error),
    };
    match result {
        Ok(response) => response,
        Err(error) => {
            tracker.finish_with(error.status);
            crate::http::error_response(&error)
        }
    }
}

async fn run<B: RequestBody, Body: AnswerBody>(
    app: &Arc<App>,
    headers: HeaderMap,
    body: B,
    endpoint: Endpoint,
    request_id: &str,
    tracker: &mut Tracker,
) -> Result<Response<Body>, ApiError> {
    let request = traced!(
        spans::parse(),
        body_limits::parse_within(
            &app.config.http.limits,
            &app.body_budget,
            headers,
            body,
            endpoint,
        )
    )?;
    run_parsed(app, request, request_id, tracker).await
}

/// Runs inside the request's trace ([`Trace::scope`]): its span is the current one, and each
/// stage below opens a child span.
async fn run_parsed<Body: AnswerBody>(
    app: &Arc<App>,
    request: ParsedRequest,
    request_id: &str,
    tracker: &mut Tracker,
) -> Result<Response<Body>, ApiError> {
    let span = tracker
        .trace_mut()
        .map_or_else(tracing::Span::none, |t| t.span().clone());
    span.record("model", request.model());
    if let Some(lease) = tracker.lease_mut() {
        span.record("tenant", lease.tenant().id.as_str());
        lease.charge(request.model(), request.output_limit())?;
    }
    let permit = traced!(
        spans::admission(),
        app.admission.admit(&request.headers, &app.metrics.queued)
    )?;
    let instances = candidates::for_request(&app.registry, &app.lora.catalog, &request)?;
    tracker.set_model(request.model());
    let routing = app.routing(&crate::lora::routing_model(
        &app.registry.topology(),
        &app.lora.catalog,
        request.model(),
    ));
    let hasher = preprocess::hasher_for(app, routing, request.model());
    let mut prepared = preprocess::prepare(&request, routing, hasher);
    pd::before_routing(app, &request, &mut prepared);
    let panic_policy = app.config.reliability.overload.panic_policy;
    let routable = health_filter::routable(&instances, request.model(), panic_policy)?;
    let tenant = tracker.lease_mut().map(|l| Arc::clone(l.tenant()));
    let tenant_slo = tenant.as_deref().and_then(|t| t.ttft_slo_ms);
    prepared.ttft_slo_ms =
        crate::predict::slo::target(&request.headers, tenant_slo, routing.ttft_slo_ms)?;
    let reservation = traced!(
        spans::flow(),
        crate::flow::admit(app, &request, &routable.instances, tenant.as_deref())
    )?;
    tracker.set_reservation(reservation);
    let select_span = spans::select();
    let ranked = select_span.in_scope(|| {
        select::rank(
            app,
            routing,
            &request,
            &prepared,
            &routable.instances,
            request_id,
            tenant.as_deref(),
        )
    })?;
    let ranked = traced!(
        select_span,
        crate::lora::load::before_dispatch(app, request.model(), &routable.instances, ranked)
    )?;
    let upstream = dispatch::dispatch(
        app, &request, &prepared, &routable, &ranked, request_id, tracker,
    )
    .await?;
    match &upstream {
        upstream::Upstream::Complete { instance, .. } => {
            span.record("instance", instance.id());
        }
        upstream::Upstream::Stream(start) => {
            span.record("instance", start.instance.id());
            if let Some(trace) = tracker.trace_mut() {
                trace.enter_relay();
            }
        }
    }
    let context = relay::RelayContext { permit, request_id };
    Ok(relay::respond(
        app,
        &request,
        upstream,
        tracker.take(),
        context,
    ))
}
