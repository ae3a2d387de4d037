//! Stage 5 — select: rank the routable instances, best first. The model's native policy does
//! it, unless Wasm plugins apply to the model, in which case the plugin chain does (with the
//! native policy as the FailOpen fallback).

use std::sync::Arc;

use http::HeaderMap;
use switchyard_plugin_host::{DecisionOutput, PluginKind, Priority, Request, Stage};
use switchyard_runtime::policy::kv;
use switchyard_runtime::{Instance, RouteContext};

use super::parse::{ParsedRequest, TypedRequest};
use super::preprocess::Prepared;
use crate::app::{App, ModelRouting};
use crate::error::ApiError;
use crate::flow::FlowControl;
use crate::plugins::chain::{self, candidate_of, ChainInput};
use crate::plugins::explain::{Explanation, Stage as ExplainedStage};
use crate::tenants::{Priority as TenantPriority, Tenant};

/// Header that asks for a decision explanation; its value must be the admin token.
pub const EXPLAIN_HEADER: &str = "x-switchyard-explain";

/// Indices into `routable`, best first; as many as the request may try (1 + retries).
pub fn rank(
    app: &App,
    routing: &ModelRouting,
    request: &ParsedRequest,
    prepared: &Prepared,
    routable: &[&Arc<Instance>],
    request_id: &str,
    tenant: Option<&Tenant>,
) -> Result<Vec<usize>, ApiError> {
    let tenant_id = tenant.map(|t| t.id.as_str());
    let want = 1 + app.config.reliability.upstream.max_retries as usize;
    let ctx = RouteContext {
        session_key: prepared.session_key.as_deref(),
        block_hashes: &prepared.block_hashes,
        want,
        ttft_slo_ms: prepared.ttft_slo_ms,
        decision: Some(&prepared.decision),
    };
    // An adapter request is ranked by residency against load instead (docs/lora.md).
    let adapter =
        crate::lora::adapter_for(&app.registry.topology(), &app.lora.catalog, request.model());
    let native = |subset: &[&Arc<Instance>]| match &adapter {
        Some(a) => switchyard_runtime::lora::rank(&a.name, subset, want),
        None => routing.policy.rank(&ctx, subset),
    };
    let explain = wants_explanation(app, &request.headers) || app.plugins.explains.watched();
    let table = app.plugins.table();
    if !table.routes(request.model()) {
        let ranked = native(routable);
        crate::predict::after_rank(app, request.model(), &prepared.decision);
        if explain || app.plugins.recorder.is_some() {
            let ids = (request_id, tenant);
            record_native(
                app, routing, request, prepared, routable, &ranked, ids, explain,
            );
        }
        return Ok(ranked);
    }
    let input = ChainInput {
        model: request.model(),
        request_id,
        tenant: tenant_id,
        request: plugin_request(app, request, prepared, tenant),
        routable,
        want,
        explain,
        cached_prefix_blocks: kv::cached_blocks(&app.kv, &prepared.block_hashes, routable),
        adapter: adapter.as_deref().map(|a| a.name.as_str()),
    };
    let ranked = chain::decide(&app.plugins, &table, &input, native)?;
    // Plugin decisions teach the approximate KV index too (as the `kv` policy's do), so
    // `cached-prefix-blocks` means something to plugins even without worker events.
    if let (Some(&first), false) = (ranked.first(), prepared.block_hashes.is_empty()) {
        app.kv
            .current()
            .source
            .routed(routable[first].id(), &prepared.block_hashes);
    }
    Ok(ranked)
}

fn wants_explanation(app: &App, headers: &HeaderMap) -> bool {
    match (
        headers.get(EXPLAIN_HEADER),
        app.config.http.admin.explain_token.as_deref(),
    ) {
        (Some(given), Some(token)) => {
            crate::http::constant_time_eq(given.as_bytes(), token.as_bytes())
        }
        _ => false,
    }
}

/// The numeric request record plugins see (`wit/v0.2/plugin.wit` says where each field comes
/// from; 0.1.0 plugins see the fields their record has).
pub fn plugin_request(
    app: &App,
    request: &ParsedRequest,
    prepared: &Prepared,
    tenant: Option<&Tenant>,
) -> Request {
    let max_tokens = match &request.typed {
        TypedRequest::Chat(r) => r.output_limit(),
        TypedRequest::Completion(r) => r.max_tokens,
        TypedRequest::Embedding(_) => None,
    };
    let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Request {
        model_index: app
            .plugins
            .topology()
            .model_index
            .get(request.model())
            .copied()
            .unwrap_or(0),
        prompt_blocks: to_u32(prepared.block_hashes.len()),
        prompt_tokens: to_u32(request.raw.len() / switchyard_kv::BYTES_PER_TOKEN),
        max_tokens: max_tokens.unwrap_or(0),
        session_hash: prepared
            .session_key
            .as_ref()
            .map(|k| xxhash_rust::xxh3::xxh3_64(k.as_bytes())),
        prefix_hash: prepared.block_hashes.first().copied().unwrap_or(0),
        streaming: request.is_stream(),
        // A model with prefill instances: the chain picks the instance that decodes; the
        // prefill instance is chosen natively afterwards (`pd::plan`).
        stage: match prepared.pd {
            Some(_) => Stage::Decode,
            None => Stage::Both,
        },
        priority: match FlowControl::band(
            &app.config.reliability.overload,
            &request.headers,
            tenant.map_or(TenantPriority::Normal, |t| t.priority),
        ) {
            TenantPriority::Low => Priority::Low,
            TenantPriority::Normal => Priority::Normal,
            TenantPriority::High => Priority::High,
        },
        tenant_weight: tenant.map_or(1, |t| t.weight.max(1)),
        deadline_ms: match app.flow.enabled() {
            true => {
                let deadline = app
                    .flow
                    .deadline(&request.headers, tenant.and_then(|t| t.queue_deadline_ms));
                u32::try_from(deadline.as_millis()).unwrap_or(u32::MAX)
            }
            false => 0,
        },
    }
}

/// Explains and/or records a native decision (so a recorded trace of native routing can be
/// replayed against a candidate plugin).
#[allow(clippy::too_many_arguments)]
fn record_native(
    app: &App,
    routing: &ModelRouting,
    request: &ParsedRequest,
    prepared: &Prepared,
    routable: &[&Arc<Instance>],
    ranked: &[usize],
    (request_id, tenant): (&str, Option<&Tenant>),
    explain: bool,
) {
    let topology = app.registry.topology();
    let adapter = crate::lora::adapter_for(&topology, &app.lora.catalog, request.model());
    let adapter = adapter.as_deref().map(|a| a.name.as_str());
    let cached = kv::cached_blocks(&app.kv, &prepared.block_hashes, routable);
    let now = switchyard_runtime::clock::now_ns();
    let candidates: Vec<_> = routable
        .iter()
        .zip(cached)
        .map(|(i, c)| candidate_of(i, c, adapter, now))
        .collect();
    let name = match adapter {
        Some(_) => "native:lora-affinity".to_owned(),
        None => format!("native:{}", routing.policy.name()),
    };
    if let Some(recorder) = &app.plugins.recorder {
        let req = plugin_request(app, request, prepared, tenant);
        recorder.decision(
            request_id,
            &name,
            PluginKind::Picker,
            &req,
            &candidates,
            DecisionOutput::Indices(ranked.to_vec()),
        );
    }
    if explain {
        let names = |v: &[usize]| {
            v.iter()
                .map(|&i| routable[i].id().to_owned())
                .collect::<Vec<_>>()
        };
        let mut explained = chain::explained(routable, &candidates);
        if let Some(decision) = prepared.decision.peek() {
            for (e, i) in explained.iter_mut().zip(routable) {
                e.predicted_ttft_ms = decision.for_instance(i.num_id).map(|p| p.predicted_ms);
            }
        }
        app.plugins.explains.push(Explanation {
            request_id: request_id.to_owned(),
            model: request.model().to_owned(),
            tenant: tenant.map(|t| t.id.clone()),
            candidates: explained,
            stages: vec![ExplainedStage {
                plugin: name,
                kind: "picker",
                ranked: Some(names(ranked)),
                ..ExplainedStage::default()
            }],
            total_scores: None,
            pick: names(ranked),
        });
    }
}
