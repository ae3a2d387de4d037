//! `/admin/plugins` and `/admin/explain`: list, upload (with a required sha256), swap,
//! delete, and decision explanations.
//!
//! `PUT /admin/plugins/{name}?sha256=HEX&kind=scorer[&weight=..&failurePolicy=..&mode=..&order=..&models=a,b&config=JSON&limits=JSON&memoryBytes=..]`
//! with the component bytes as the body (every parameter: `admin_plugin_params.rs`; an
//! unknown one is a 400). An existing plugin keeps its settings unless a parameter overrides
//! them. The PUT answers 202 with a status URL (`GET /admin/plugins/{name}/load`) and the
//! bytes are compiled in the background (`wait=true` answers when the load is done, 200 or
//! 400), then swapped in atomically: requests in flight finish with the version they started
//! with.

use std::sync::Arc;

use http::{Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use sha2::{Digest, Sha256};
use switchyard_plugin_host::{PluginKind, PluginLimits, QuarantineState};

use crate::admin_plugin_params::PutParams;
use crate::app::App;
use crate::body::Body;
use crate::error::ApiError;
use crate::http::json_response;
use crate::plugins::entry::PluginEntry;
use crate::plugins::{FailurePolicy, PluginMode, PluginSource};

/// Largest component accepted (Python components are ~20 MB).
const MAX_COMPONENT_BYTES: usize = 128 * 1024 * 1024;

#[derive(Serialize)]
struct PluginView {
    name: String,
    kind: PluginKind,
    implements: Vec<PluginKind>,
    sha256: String,
    mode: PluginMode,
    failure_policy: FailurePolicy,
    weight: f64,
    order: i32,
    models: Vec<String>,
    /// The JSON given to the plugin's `configure`.
    config: serde_json::Value,
    /// The limits it runs under (defaults filled in).
    limits: PluginLimits,
    source: String,
    quarantine: String,
    calls: u64,
    /// Over this version's most recent calls (up to 1024), microseconds.
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    faults: std::collections::HashMap<&'static str, u64>,
    fallbacks: u64,
    shadow_agreements: u64,
    shadow_disagreements: u64,
}

pub fn list(app: &App) -> Response<Body> {
    let table = app.plugins.table();
    let views: Vec<PluginView> = table.entries.iter().map(|e| view(e)).collect();
    json_response(
        StatusCode::OK,
        serde_json::json!({ "plugins": views }).to_string(),
    )
}

/// `GET /admin/plugins/{name}`: one plugin, in the same shape as a list entry.
pub fn get(app: &App, name: &str) -> Result<Response<Body>, ApiError> {
    let table = app.plugins.table();
    let entry = table
        .get(name)
        .ok_or_else(|| ApiError::not_found(format!("No plugin named `{name}`.")))?;
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_string(&view(entry)).unwrap_or_default(),
    ))
}

fn view(e: &PluginEntry) -> PluginView {
    use std::sync::atomic::Ordering::Relaxed;
    let percentiles = e.recent.percentiles_us();
    PluginView {
        name: e.name().to_owned(),
        kind: e.config.kind,
        implements: e.plugin.kinds().to_vec(),
        sha256: e.plugin.sha256().to_owned(),
        mode: e.config.mode,
        failure_policy: e.config.failure_policy,
        weight: e.config.weight,
        order: e.config.order,
        models: e.config.models.clone(),
        config: e.config.config.clone(),
        limits: e.plugin.limits().clone(),
        source: match &e.source {
            PluginSource::File { path, .. } => format!("file:{path}"),
            PluginSource::Admin => "admin".into(),
            PluginSource::Kubernetes => "kubernetes".into(),
        },
        quarantine: match e.quarantine_state() {
            QuarantineState::Active => "active".into(),
            QuarantineState::Quarantined { strikes, .. } => {
                format!("quarantined (strike {strikes})")
            }
            QuarantineState::Probation { .. } => "probation".into(),
        },
        calls: e.plugin.stats().calls,
        p50_us: percentiles.map(|p| p.0),
        p99_us: percentiles.map(|p| p.1),
        faults: e.metrics.faults(),
        fallbacks: e.metrics.fallbacks.load(Relaxed),
        shadow_agreements: e.metrics.shadow_agreements.load(Relaxed),
        shadow_disagreements: e.metrics.shadow_disagreements.load(Relaxed),
    }
}

pub async fn put(
    app: &Arc<App>,
    name: &str,
    query: Option<&str>,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let params = PutParams::parse(query)?;
    let expected = params
        .get("sha256")
        .ok_or_else(|| {
            ApiError::invalid_request("`sha256` (hex digest of the body) is required.")
                .with_param("sha256")
        })?
        .to_ascii_lowercase();
    let bytes = Limited::new(body, MAX_COMPONENT_BYTES)
        .collect()
        .await
        .map_err(|e| ApiError::invalid_request(format!("cannot read the component: {e}")))?
        .to_bytes();
    let actual = hex(&Sha256::digest(&bytes));
    if actual != expected {
        return Err(ApiError::invalid_request(format!(
            "sha256 mismatch: the body hashes to {actual}, not {expected}; refusing to load it."
        ))
        .with_param("sha256")
        .with_code("sha256_mismatch"));
    }
    let existing = app.plugins.table().get(name).map(|e| e.config.clone());
    let config = params.settings(name, existing)?;
    if params.wait()? {
        let entry = app
            .plugins
            .load(config, bytes.to_vec(), PluginSource::Admin)
            .await
            .map_err(|e| {
                ApiError::invalid_request(format!("plugin `{name}` was not loaded: {e}"))
                    .with_code("plugin_rejected")
            })?;
        return Ok(json_response(
            StatusCode::OK,
            serde_json::json!({
                "name": entry.name(),
                "sha256": entry.plugin.sha256(),
                "kind": entry.config.kind,
                "implements": entry.plugin.kinds(),
            })
            .to_string(),
        ));
    }
    // Compiling a Python or JS component takes seconds (without the compile cache): answer
    // now, load in the background, and report the outcome at the status URL.
    app.plugins.loads.started(name, &actual);
    let set = Arc::clone(&app.plugins);
    let (task_name, task_sha) = (name.to_owned(), actual.clone());
    tokio::spawn(async move {
        let result = set
            .load(config, bytes.to_vec(), PluginSource::Admin)
            .await
            .map(|_| ())
            .map_err(|e| format!("plugin `{task_name}` was not loaded: {e}"));
        if let Err(e) = &result {
            tracing::warn!(plugin = %task_name, sha256 = %task_sha, "admin upload failed: {e}");
        }
        set.loads.finished(&task_name, &task_sha, result);
    });
    let status_url = format!("/admin/plugins/{name}/load");
    let mut response = json_response(
        StatusCode::ACCEPTED,
        serde_json::json!({
            "name": name,
            "sha256": actual,
            "state": "loading",
            "status_url": status_url,
        })
        .to_string(),
    );
    if let Ok(location) = http::HeaderValue::from_str(&status_url) {
        response
            .headers_mut()
            .insert(http::header::LOCATION, location);
    }
    Ok(response)
}

/// `GET /admin/plugins/{name}/load`: how the latest upload of `name` is going.
pub fn load_status(app: &App, name: &str) -> Result<Response<Body>, ApiError> {
    let view = app.plugins.loads.view(name).ok_or_else(|| {
        ApiError::not_found(format!(
            "No upload of a plugin named `{name}` since start-up."
        ))
    })?;
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_string(&view).unwrap_or_default(),
    ))
}

pub async fn delete(app: &App, name: &str) -> Result<Response<Body>, ApiError> {
    if app.plugins.remove(name).await {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        Ok(response)
    } else {
        Err(ApiError::not_found(format!("No plugin named `{name}`.")))
    }
}

pub fn explain(app: &App, request_id: &str) -> Result<Response<Body>, ApiError> {
    let explanation = app.plugins.explains.get(request_id).ok_or_else(|| {
        ApiError::not_found(format!(
            "No explanation for request `{request_id}` (send the request with `x-switchyard-explain: <explain token>` (`admin.explain_token`); the last 512 are kept)."
        ))
    })?;
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_string(&*explanation).unwrap_or_default(),
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
