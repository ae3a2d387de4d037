//! The prefill stage of disaggregated serving (`docs/disaggregation.md`).
//!
//! Dispatch has chosen a decode instance with the model's policy or plugin chain. For each
//! attempt on it, [`plan`] decides whether to split the request: only for a model with
//! `role: prefill` instances, only when more than `min_uncached_tokens` of the prompt are
//! missing from that decode instance's KV cache, and only when some prefill instance has at
//! most `max_prefill_queue` requests outstanding. The usable prefill instances are ranked by
//! the `kv` cost (cache overlap on the prefill side plus load). [`run`] then speaks the
//! model's protocol ([`vllm`] or [`sglang`]) and returns the decode instance's answer to
//! relay, exactly as an aggregated attempt would — so retries, migration and the relay treat
//! both the same. A failed prefill falls back to an aggregated request on the decode
//! instance (or, with `on_prefill_failure: retry`, tries the next prefill instance first).

pub mod body;
pub mod decide;
pub mod exchange;
mod flow;
pub mod metrics;
pub mod sglang;
pub mod vllm;

use std::sync::Arc;

use switchyard_runtime::clock::now_ns;
use switchyard_runtime::policy::{Kv, Policy};
use switchyard_runtime::{Instance, RouteContext};

use super::failure::Failure;
use super::parse::{ParsedRequest, TypedRequest};
use super::preprocess::{self, Prepared, UpstreamRequest};
use super::tracker::Tracker;
use super::upstream::Upstream;
use crate::app::App;
use crate::config::{OnPrefillFailure, PdProtocol};
use decide::Inputs;

pub use metrics::PdMetrics;

/// A decided disaggregation: the protocol and the prefill instances to try, best first.
#[derive(Debug)]
pub struct Plan {
    protocol: PdProtocol,
    prefills: Vec<Arc<Instance>>,
}

/// What the decision needs to know from before the select stage.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The prompt's cached blocks per instance before this request was routed: the `kv`
    /// policy's approximate index records its pick as holding the prompt the moment it picks,
    /// which would make every prompt look cached on its decode instance.
    overlap: switchyard_kv::Overlap,
}

/// For a model with prefill instances: hashes the prompt (if routing did not already) and
/// takes the [`Snapshot`]. Other models pay one topology lookup.
pub fn before_routing(app: &App, request: &ParsedRequest, prepared: &mut Prepared) {
    if matches!(request.typed, TypedRequest::Embedding(_))
        || !has_prefill_pool(app, request.model())
    {
        return;
    }
    if prepared.block_hashes.is_empty() {
        prepared.block_hashes =
            preprocess::prompt_block_hashes(request, app.prompt_hashers.get(request.model()));
    }
    let overlap = if prepared.block_hashes.is_empty() {
        switchyard_kv::Overlap::default()
    } else {
        app.kv.current().source.overlap(&prepared.block_hashes)
    };
    prepared.pd = Some(Snapshot { overlap });
}

fn has_prefill_pool(app: &App, model: &str) -> bool {
    app.registry.topology().model(model).is_some_and(|pool| {
        pool.iter()
            .any(|i| i.spec.role == switchyard_runtime::Role::Prefill)
    })
}

/// Whether (and with which prefill instances) to disaggregate `upstream` on `decode`; `None`
/// sends it aggregated. Counts the decision for models that have prefill instances.
pub fn plan(
    app: &App,
    request: &ParsedRequest,
    prepared: &Prepared,
    decode: &Arc<Instance>,
    upstream: &UpstreamRequest,
) -> Option<Plan> {
    // Only models with prefill instances have a snapshot (embeddings never do).
    let snapshot = prepared.pd.as_ref()?;
    // A body the frontend rendered for a completions-only worker is not handed over: the
    // prefill instance may render differently.
    if upstream.translated {
        return None;
    }
    let model = request.model();
    let pool = app.registry.topology().model(model).cloned()?;
    let settings = &app.config.routing.disaggregation;
    let protocol = settings.protocol(model);
    let candidates = prefill_candidates(&pool, decode, protocol);
    let hashes = &prepared.block_hashes;
    let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let cached_on_decode = to_u32(snapshot.overlap.get(decode.id()));
    let inputs = Inputs {
        prompt_blocks: to_u32(hashes.len()),
        cached_on_decode,
        block_size: to_u32(app.config.routing.kv.block_size),
        min_uncached_tokens: settings.min_uncached_tokens(model),
        max_prefill_queue: settings.max_prefill_queue,
    };
    let queues: Vec<u32> = candidates.iter().map(|i| i.load.outstanding()).collect();
    let usable = match decide::usable_prefills(&inputs, &queues) {
        Ok(usable) => usable,
        Err(why) => {
            app.metrics.pd.aggregated(why);
            return None;
        }
    };
    let usable: Vec<&Arc<Instance>> = usable.iter().map(|&n| candidates[n]).collect();
    let want = match settings.on_prefill_failure {
        OnPrefillFailure::Fallback => 1,
        OnPrefillFailure::Retry => 1 + app.config.reliability.upstream.max_retries as usize,
    };
    let ctx = RouteContext {
        session_key: None,
        block_hashes: hashes,
        want,
        ..RouteContext::default()
    };
    // Prefill instances are ranked by the frontend's own KV view.
    let prefills = Kv::new(app.kv.clone())
        .rank(&ctx, &usable)
        .into_iter()
        .filter_map(|n| usable.get(n).map(|i| Arc::clone(i)))
        .collect();
    app.metrics.pd.disaggregated();
    Some(Plan { protocol, prefills })
}

/// The routable instances that may prefill for `decode`: `prefill` and `both` ones other than
/// `decode` itself; for SGLang only those with a bootstrap port.
fn prefill_candidates<'a>(
    pool: &'a [Arc<Instance>],
    decode: &Instance,
    protocol: PdProtocol,
) -> Vec<&'a Arc<Instance>> {
    let now = now_ns();
    pool.iter()
        .filter(|i| i.spec.role.prefills() && i.id() != decode.id() && i.routable(now))
        .filter(|i| protocol != PdProtocol::Sglang || i.spec.bootstrap_port.is_some())
        .collect()
}

/// Runs the planned stages and returns the decode instance's answer (or, after a failed
/// prefill, the aggregated answer of the same decode instance). A failure returned here is
/// the decode instance's, for dispatch to retry elsewhere.
pub async fn run(
    app: &Arc<App>,
    plan: Plan,
    request: &ParsedRequest,
    decode: &Arc<Instance>,
    upstream: UpstreamRequest,
    request_id: &str,
    tracker: &Tracker,
) -> Result<Upstream, Failure> {
    let call = flow::Call {
        app,
        request,
        decode,
        request_id,
        tracker,
    };
    match plan.protocol {
        PdProtocol::Vllm => flow::vllm(&call, &plan.prefills, upstream).await,
        PdProtocol::Sglang => flow::sglang(&call, &plan.prefills, upstream).await,
    }
}

#[cfg(test)]
mod tests {
    use switchyard_runtime::{InstanceSpec, Role};

    use super::*;

    fn instance(id: &str, role: Role, bootstrap_port: Option<u16>) -> Arc<Instance> {
        let mut spec = InstanceSpec::new(id, "m", format!("http://{id}:1"));
        spec.role = role;
        spec.bootstrap_port = bootstrap_port;
        Arc::new(Instance::new(spec, None))
    }

    #[test]
    fn prefill_candidates_are_prefill_and_both_instances_other_than_the_decode_one() {
        let pool = vec![
            instance("p", Role::Prefill, None),
            instance("b", Role::Both, Some(8998)),
            instance("d", Role::Decode, Some(8998)),
            instance("p2", Role::Prefill, Some(8998)),
        ];
        let ids = |v: Vec<&Arc<Instance>>| v.iter().map(|i| i.id().to_owned()).collect::<Vec<_>>();
        assert_eq!(
            ids(prefill_candidates(&pool, &pool[2], PdProtocol::Vllm)),
            ["p", "b", "p2"]
        );
        // `b` decodes this request, so it does not also prefill it.
        assert_eq!(
            ids(prefill_candidates(&pool, &pool[1], PdProtocol::Vllm)),
            ["p", "p2"]
        );
        // SGLang needs the prefill's bootstrap port.
        assert_eq!(
            ids(prefill_candidates(&pool, &pool[2], PdProtocol::Sglang)),
            ["b", "p2"]
        );
    }
}
