//! The HTTP edge: route by method and path, stamp `x-request-id`, render errors, and the
//! small non-generating endpoints (`/v1/models`, `/health`, `/live`, `/metrics`). The admin
//! API is not served here but on its own listener ([`crate::admin_listener`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use switchyard_protocol::ModelList;
use switchyard_runtime::clock::now_ns;

use crate::agent_api;
use crate::app::App;
use crate::body::Body;
use crate::error::ApiError;
use crate::http::{error_response, json_response, RequestBody, REQUEST_ID_HEADER};
use crate::pipeline::{self, health_filter, Endpoint};
use crate::tenants::{self, Tenant};

/// Entry point for every request: the one router, which both the product's own server
/// ([`crate::server`]) and the tower service ([`crate::service::Frontend`]) call. Generic over
/// the request body (hyper's `Incoming`, an embedder's, an in-memory one in tests).
pub async fn handle<B: RequestBody>(app: Arc<App>, request: Request<B>) -> Response<Body> {
    let request_id = request_id(request.headers());
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let caller = tenants::edge::gate(&app.tenants, &parts.method, path, &parts.headers);
    let (tenant, lease) = match caller {
        Ok(caller) => (caller.tenant, caller.lease),
        Err(refused) => return with_request_id(*refused, &request_id),
    };
    let mut response = match (&parts.method, path) {
        (&Method::POST, "/v1/chat/completions") => {
            let req = (parts.headers, body, lease);
            pipeline::generate(&app, req, Endpoint::Chat, &request_id).await
        }
        (&Method::POST, "/v1/completions") => {
            let req = (parts.headers, body, lease);
            pipeline::generate(&app, req, Endpoint::Completions, &request_id).await
        }
        (&Method::POST, "/v1/embeddings") => {
            let req = (parts.headers, body, lease);
            pipeline::generate(&app, req, Endpoint::Embeddings, &request_id).await
        }
        (&Method::POST, "/v1/responses") => {
            agent_api::responses(&app, (parts.headers, body, lease), &request_id).await
        }
        (&Method::POST, "/v1/messages") => {
            agent_api::messages(&app, (parts.headers, body, lease), &request_id).await
        }
        (&Method::POST, "/v1/messages/count_tokens") => {
            agent_api::count_tokens::handle(&app, parts.headers, body).await
        }
        (&Method::GET, "/v1/models") => models(&app, tenant.as_deref()),
        (&Method::GET, "/health") => health(&app),
        (&Method::GET, "/ready") => crate::readiness::ready(&app),
        (&Method::GET, "/live") => json_response(StatusCode::OK, r#"{"status":"live"}"#.into()),
        (&Method::GET, "/metrics") => metrics(&app),
        (method, p @ ("/v1/messages" | "/v1/messages/count_tokens")) => {
            agent_api::messages::error_response(&ApiError::method_not_allowed(method.as_str(), p))
        }
        (method, p) if is_known_path(p) => {
            error_response(&ApiError::method_not_allowed(method.as_str(), p))
        }
        (_, p) => error_response(&ApiError::not_found(format!("No route for {p}."))),
    };
    tenants::edge::stamp(tenant.as_deref(), &mut response);
    with_request_id(response, &request_id)
}

fn with_request_id(mut response: Response<Body>, request_id: &str) -> Response<Body> {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

fn is_known_path(path: &str) -> bool {
    matches!(
        path,
        "/v1/chat/completions"
            | "/v1/completions"
            | "/v1/embeddings"
            | "/v1/responses"
            | "/v1/models"
            | "/health"
            | "/ready"
            | "/live"
            | "/metrics"
    )
}

/// The client's `x-request-id` if it is sane, else a fresh random one.
fn request_id(headers: &HeaderMap) -> String {
    if let Some(id) = headers.get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()) {
        if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) {
            return id.to_owned();
        }
    }
    format!("{:032x}", rand::random::<u128>())
}

/// Models with at least one routable instance, sorted.
fn routable_models(app: &App) -> Vec<String> {
    health_filter::routable_models(&app.registry, now_ns())
}

/// The routable models; a tenant sees only those its list allows.
fn models(app: &App, tenant: Option<&Tenant>) -> Response<Body> {
    let mut names = routable_models(app);
    let adapters = crate::lora::models::listed(&app.lora.catalog, &names, tenant);
    if let Some(tenant) = tenant {
        names.retain(|m| tenant.allows_model(m));
    }
    let topology = app.registry.topology();
    let now = now_ns();
    // The engine's own card (its `max_model_len`, `created`, `owned_by`) from any routable
    // instance the served-model check has read; a made-up one only where none has been read.
    let engine_card = |model: &str| {
        topology.model(model)?.iter().find_map(|i| {
            i.routable(now)
                .then(|| i.engine_card())
                .flatten()
                .map(|c| (*c).clone())
        })
    };
    let list = ModelList::new(names)
        .with_engine_cards(engine_card)
        .with_adapters(adapters);
    json_response(
        StatusCode::OK,
        serde_json::to_string(&list).unwrap_or_default(),
    )
}

/// Ready when at least one model is routable and the frontend is not draining.
fn health(app: &App) -> Response<Body> {
    let models = routable_models(app);
    let draining = app.draining.load(Ordering::Relaxed);
    let ready = !models.is_empty() && !draining;
    let body = serde_json::json!({
        "status": if ready { "ok" } else { "unavailable" },
        "draining": draining,
        "models": models,
        "discovery": {
            "kind": app.config.discovery.kind,
            "connected": app.registry.discovery_connected(),
        },
        "instances": app.registry.topology().all().len(),
        // NATS (`--nats`): connection, and whether routing is KV-aware or load-only.
        "events": app.bus.health_details(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, body.to_string())
}

fn metrics(app: &App) -> Response<Body> {
    let text = app.metrics.render();
    let mut response = Response::new(Body::full(text));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(switchyard_runtime::exposition::CONTENT_TYPE),
    );
    response
}
