//! The token-protected admin API (`/admin/*`).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use http::request::Parts;
use http::{header, Method, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use switchyard_runtime::clock::now_ns;
use switchyard_runtime::health::HealthStatus;

use crate::admin_plugins;
use crate::app::App;
use crate::body::Body;
use crate::error::ApiError;
use crate::http::{constant_time_eq, error_response, json_response};

#[derive(Serialize)]
struct InstanceView<'a> {
    id: &'a str,
    model: &'a str,
    url: &'a str,
    engine: switchyard_runtime::Engine,
    api: switchyard_runtime::WorkerApi,
    role: switchyard_runtime::Role,
    health: HealthStatus,
    health_policy_says_unhealthy: bool,
    in_flight: u32,
    /// The engine's own figures (scraped or from NATS) and where they came from.
    queued: u32,
    running: u32,
    kv_usage: f32,
    prefix_hit_rate: f32,
    load_source: &'static str,
    load_age_ms: Option<u64>,
    ejections: u32,
    last_error: Option<String>,
    /// This frontend's latency averages for the instance (0: nothing measured yet).
    ttft_ewma_ms: f32,
    itl_ewma_ms: f32,
    /// LoRA adapters resident on the instance (engine reports and this frontend's loads).
    adapters: Vec<String>,
    /// The engine's `/v1/models` when it does not list the instance's model (then the instance
    /// is out of routing); absent when it does, or when it was not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    served_models_instead: Option<Vec<String>>,
}

pub async fn handle(app: &Arc<App>, parts: &Parts, body: Incoming) -> Response<Body> {
    // The console page holds no data: it asks for the token and sends it on its own requests.
    if parts.method == Method::GET && parts.uri.path() == "/console" {
        return crate::console::page();
    }
    if let Err(error) = authorize(app, parts) {
        return error_response(&error);
    }
    let path = parts.uri.path();
    let result = match (&parts.method, path) {
        (&Method::GET, "/admin/instances") => Ok(instances(app)),
        (&Method::GET, "/admin/plugins") => Ok(admin_plugins::list(app)),
        (&Method::GET, "/admin/decisions/stream") => Ok(crate::console::feed::stream(app)),
        (&Method::GET, p) if upload_of(p).is_some() => {
            admin_plugins::load_status(app, upload_of(p).unwrap_or_default())
        }
        (&Method::GET, p) if p.starts_with(PLUGINS) => admin_plugins::get(app, &p[PLUGINS.len()..]),
        (&Method::PUT, p) if p.starts_with(PLUGINS) => {
            admin_plugins::put(app, &p[PLUGINS.len()..], parts.uri.query(), body).await
        }
        (&Method::DELETE, p) if p.starts_with(PLUGINS) => {
            admin_plugins::delete(app, &p[PLUGINS.len()..]).await
        }
        (&Method::GET, p) if p.starts_with(EXPLAIN) => {
            admin_plugins::explain(app, &p[EXPLAIN.len()..])
        }
        (_, path) => Err(ApiError::not_found(format!("No admin route for {path}."))),
    };
    result.unwrap_or_else(|error| error_response(&error))
}

const PLUGINS: &str = "/admin/plugins/";
/// The status of a plugin's latest upload: `/admin/plugins/{name}/load`.
const LOAD: &str = "/load";

/// The plugin name in `/admin/plugins/{name}/load`.
fn upload_of(path: &str) -> Option<&str> {
    path.strip_prefix(PLUGINS)?.strip_suffix(LOAD)
}
const EXPLAIN: &str = "/admin/explain/";

/// Bearer-token check; the admin API is off when no token is configured.
fn authorize(app: &App, parts: &Parts) -> Result<(), ApiError> {
    let Some(expected) = app.config.http.admin_token.as_deref() else {
        return Err(ApiError::forbidden(
            "The admin API is disabled: start the frontend with --admin-token-file (or SWITCHYARD_ADMIN_TOKEN).",
        ));
    };
    let given = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("Missing `Authorization: Bearer <admin token>`."))?;
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("Invalid admin token."))
    }
}

fn instances(app: &App) -> Response<Body> {
    let now = now_ns();
    let all = app.registry.all();
    let views: Vec<InstanceView<'_>> = all
        .iter()
        .map(|i| (i, i.load.report(now)))
        .map(|(i, report)| InstanceView {
            id: i.id(),
            model: &i.spec.model,
            url: &i.spec.url,
            engine: i.spec.engine,
            api: i.spec.api,
            role: i.spec.role,
            health: i.health.status(now),
            health_policy_says_unhealthy: i.policy_says_unhealthy(),
            in_flight: i.load.in_flight(),
            queued: i.load.queued.load(Relaxed),
            running: i.load.running.load(Relaxed),
            kv_usage: i.load.kv_usage(),
            prefix_hit_rate: i.load.prefix_hit_ppm.load(Relaxed) as f32 / 1e6,
            load_source: report.0.as_str(),
            load_age_ms: report
                .1
                .map(|a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX)),
            ejections: i.health.ejections(),
            last_error: i.last_error(),
            ttft_ewma_ms: i.load.ttft_ewma_us.load(Relaxed) as f32 / 1000.0,
            itl_ewma_ms: i.load.itl_ewma_us.load(Relaxed) as f32 / 1000.0,
            adapters: i.adapters.names(),
            served_models_instead: i.served_mismatch(),
        })
        .collect();
    json_response(
        StatusCode::OK,
        serde_json::json!({ "instances": views }).to_string(),
    )
}
