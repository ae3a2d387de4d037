//! On-demand loading: before dispatch, an adapter request whose best-ranked instance does
//! not have the adapter (and whose adapter is `on_demand`) loads it there through the
//! engine's API — after unloading the least recently used idle adapter when the instance's
//! slots are full. Concurrent requests share one load per (instance, adapter). A failed load
//! fails the request with 502 `adapter_load_failed` (never a base-model answer), records the
//! instance's `last_error` and counts as a failure in its passive health.

use std::sync::Arc;
use std::time::Duration;

use switchyard_runtime::clock::now_ns;
use switchyard_runtime::health::ejection_allowed;
use switchyard_runtime::lora::AdapterSpec;
use switchyard_runtime::Instance;

use super::engine_api;
use crate::app::App;
use crate::error::ApiError;

/// Worker label that sets an instance's adapter slots when its engine does not report them.
pub const MAX_LORAS_LABEL: &str = "switchyard.dev/max-loras";

/// Makes the adapter available on the instance the request goes to; returns the ranking to
/// dispatch with (the pick, then only the others where the adapter is resident: a retry on
/// an instance without it would be refused by the engine).
pub async fn before_dispatch(
    app: &App,
    model: &str,
    routable: &[&Arc<Instance>],
    ranked: Vec<usize>,
) -> Result<Vec<usize>, ApiError> {
    let topology = app.registry.topology();
    let Some(adapter) = super::adapter_for(&topology, &app.lora.catalog, model) else {
        return Ok(ranked);
    };
    let Some(&first) = ranked.first() else {
        return Ok(ranked);
    };
    let target = routable[first];
    let now = now_ns();
    if adapter.on_demand && !target.adapters.is_resident(&adapter.name) {
        ensure_loaded(app, target, &adapter).await.map_err(|why| {
            ApiError::bad_gateway(format!(
                "Loading adapter `{}` on instance `{}` failed: {why}",
                adapter.name,
                target.id()
            ))
            .with_param("model")
            .with_code("adapter_load_failed")
        })?;
    }
    target.adapters.touch(&adapter.name, now);
    if !adapter.on_demand {
        return Ok(ranked);
    }
    Ok(ranked
        .into_iter()
        .filter(|&i| i == first || routable[i].adapters.is_resident(&adapter.name))
        .collect())
}

/// Loads the adapter on `target` once, however many requests ask at the same time.
async fn ensure_loaded(
    app: &App,
    target: &Arc<Instance>,
    adapter: &AdapterSpec,
) -> Result<(), String> {
    let timeout = Duration::from_millis(app.config.reliability.upstream.first_byte_timeout_ms);
    let key = (target.num_id, adapter.name.clone());
    app.lora
        .flights
        .run(key, || async {
            // A request that waited for an earlier flight may find it done.
            if target.adapters.is_resident(&adapter.name) {
                return Ok(());
            }
            free_a_slot(app, target, timeout).await;
            let loaded = engine_api::load(
                &app.client,
                target,
                (&adapter.name, &adapter.source),
                timeout,
            )
            .await;
            let counter = match loaded {
                Ok(()) => &app.lora.metrics.loads_ok,
                Err(_) => &app.lora.metrics.loads_failed,
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Err(why) = &loaded {
                // Once per failed load, however many requests waited on it.
                failed(app, target, adapter, why);
            }
            loaded?;
            target.adapters.touch(&adapter.name, now_ns());
            tracing::info!(instance = target.id(), adapter = %adapter.name, "adapter loaded");
            Ok(())
        })
        .await
}

/// A failed load is a health signal: the instance's `last_error` and one passive-health
/// failure (ejecting it only within `health.max_ejected_percent` of the base model's pool).
fn failed(app: &App, target: &Instance, adapter: &AdapterSpec, why: &str) {
    target.set_last_error(format!("loading adapter `{}`: {why}", adapter.name));
    let now = now_ns();
    let pool = app.registry.topology().model(&adapter.base_model).cloned();
    let may_eject = pool
        .as_deref()
        .is_none_or(|p| ejection_allowed(p, now, &app.config.reliability.health));
    target
        .health
        .record_failure(now, &app.config.reliability.health, may_eject);
}

/// With every slot taken, unloads the least recently used idle adapter. With none idle the
/// load goes ahead anyway: the engine swaps adapters in and out of its slots itself (vLLM
/// keeps more adapters registered than it has slots), at a cost the ranking already charges.
async fn free_a_slot(app: &App, target: &Instance, timeout: Duration) {
    let configured = target
        .spec
        .labels
        .get(MAX_LORAS_LABEL)
        .and_then(|v| v.trim().parse().ok());
    let Some(slots) = target.adapters.max_loras(configured) else {
        return;
    };
    if target.adapters.loaded_count() < slots as usize {
        return;
    }
    // Only adapters this frontend can load again: one the engine was started with (not
    // `on_demand`) would be gone for good.
    let reloadable = |name: &str| app.lora.catalog.get(name).is_some_and(|a| a.on_demand);
    let Some(victim) = target.adapters.eviction_candidate(now_ns(), reloadable) else {
        return;
    };
    match engine_api::unload(&app.client, target, &victim, timeout).await {
        Ok(()) => {
            target.adapters.unloaded(&victim);
            app.lora
                .metrics
                .evictions
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(instance = target.id(), adapter = %victim, "adapter evicted (LRU)");
        }
        Err(why) => {
            tracing::warn!(instance = target.id(), adapter = %victim, %why, "adapter unload failed")
        }
    }
}
