//! The plugin chain for one request: filters → scorers (weighted sum) → picker.
//!
//! Each stage is optional; a stage whose plugin fails applies the plugin's failure policy
//! (FailOpen: skip it, the native policy fills in; FailClosed: a 503 naming the plugin).
//! Without a picker, candidates are ranked by total score, or by the native policy when no
//! scorer ran either.

use std::sync::Arc;

use switchyard_plugin_host::{Candidate, DecisionOutput, Health, PluginKind, Request};
use switchyard_runtime::clock::now_ns;
use switchyard_runtime::health::HealthStatus;
use switchyard_runtime::Instance;

use super::config::FailurePolicy;
use super::entry::{PluginEntry, PluginFailure};
use super::explain::{ExplainedCandidate, Explanation, Stage};
use super::set::{PluginSet, PluginTable};
use super::shadow::ShadowRun;
use crate::error::ApiError;

/// Everything the chain needs about one request.
pub struct ChainInput<'a> {
    pub model: &'a str,
    pub request_id: &'a str,
    /// The caller's tenant id, for explanations.
    pub tenant: Option<&'a str>,
    pub request: Request,
    pub routable: &'a [&'a Arc<Instance>],
    pub want: usize,
    pub explain: bool,
    /// Leading cached prompt blocks per `routable` entry (zeros without prefix hashes).
    pub cached_prefix_blocks: Vec<u32>,
    /// The LoRA adapter the request names, for the candidates' `adapter-resident`.
    pub adapter: Option<&'a str>,
}

/// The numeric view of an instance that plugins receive, as of `now` (nanoseconds); `adapter`
/// is the LoRA adapter the request names, if any.
pub fn candidate_of(
    instance: &Instance,
    cached_prefix_blocks: u32,
    adapter: Option<&str>,
    now: u64,
) -> Candidate {
    use std::sync::atomic::Ordering::Relaxed;
    let health = match instance.health.status(now) {
        _ if instance.policy_says_unhealthy() => Health::Unhealthy,
        HealthStatus::Healthy => Health::Healthy,
        HealthStatus::Degraded => Health::Degraded,
        _ => Health::Unhealthy,
    };
    Candidate {
        id: instance.num_id,
        in_flight: instance.load.total_in_flight(),
        queued: instance.load.queued.load(Relaxed),
        kv_usage: instance.load.kv_usage(),
        cached_prefix_blocks,
        ttft_ewma_ms: instance.load.ttft_ewma_us.load(Relaxed) as f32 / 1000.0,
        itl_ewma_ms: instance.load.itl_ewma_us.load(Relaxed) as f32 / 1000.0,
        health,
        weight: instance.spec.weight,
        running: instance.load.running.load(Relaxed),
        adapter_resident: adapter.is_some_and(|a| instance.adapters.is_resident(a)),
    }
}

struct Run<'a> {
    set: &'a PluginSet,
    input: &'a ChainInput<'a>,
    candidates: Vec<Candidate>,
    /// Positions into `routable` still eligible.
    positions: Vec<usize>,
    stages: Vec<Stage>,
}

/// Ranks `input.routable` through the chain; `native` ranks a subset when a stage falls back.
pub fn decide(
    set: &PluginSet,
    table: &PluginTable,
    input: &ChainInput<'_>,
    native: impl Fn(&[&Arc<Instance>]) -> Vec<usize>,
) -> Result<Vec<usize>, ApiError> {
    let now = now_ns();
    let candidates: Vec<Candidate> = input
        .routable
        .iter()
        .enumerate()
        .map(|(n, i)| {
            let cached = input.cached_prefix_blocks.get(n).copied().unwrap_or(0);
            candidate_of(i, cached, input.adapter, now)
        })
        .collect();
    let mut run = Run {
        set,
        input,
        positions: (0..candidates.len()).collect(),
        candidates,
        stages: Vec::new(),
    };
    for entry in table.active(PluginKind::Filter, input.model) {
        run.filter(entry)?;
    }
    let totals = run.score(table)?;
    let mut order: Vec<usize> = (0..run.positions.len()).collect();
    if let Some(totals) = &totals {
        // Equal totals share the load: the stable sort starts from a rotation that moves on
        // with every decision, so at low load a scorer's ties do not all go to the first
        // candidate.
        if !order.is_empty() {
            let len = order.len();
            order.rotate_left(set.next_tie_break() % len);
        }
        order.sort_by(|a, b| totals[*b].total_cmp(&totals[*a]));
    }
    let picked = match table.active(PluginKind::Picker, input.model).next() {
        Some(entry) => run.pick(entry, &order)?,
        None => None,
    };
    let local = match (picked, &totals) {
        (Some(ranked), _) => ranked,
        (None, Some(_)) => order,
        (None, None) => {
            let subset: Vec<&Arc<Instance>> =
                run.positions.iter().map(|&p| input.routable[p]).collect();
            native(&subset)
        }
    };
    let ranked: Vec<usize> = local
        .iter()
        .filter_map(|&l| run.positions.get(l).copied())
        .take(input.want.max(1))
        .collect();
    run.shadow(table, &ranked);
    if input.explain {
        run.explain(totals.as_deref(), &ranked);
    }
    Ok(ranked)
}

impl Run<'_> {
    fn sub(&self, order: Option<&[usize]>) -> Vec<Candidate> {
        match order {
            Some(order) => order
                .iter()
                .map(|&l| self.candidates[self.positions[l]])
                .collect(),
            None => self.positions.iter().map(|&p| self.candidates[p]).collect(),
        }
    }

    fn name_of(&self, position: usize) -> String {
        self.input.routable[position].id().to_owned()
    }

    /// Writes the decision to the recorder, if one is on; `output` is only built then.
    fn record(
        &self,
        entry: &PluginEntry,
        candidates: &[Candidate],
        output: impl FnOnce() -> DecisionOutput,
    ) {
        if let Some(recorder) = &self.set.recorder {
            recorder.decision(
                self.input.request_id,
                entry.name(),
                entry.config.kind,
                &self.input.request,
                candidates,
                output(),
            );
        }
    }

    /// Keeps a stage for the explanation. Stages name every candidate, so they are only
    /// built when this request asked for one: at 64 candidates, building them anyway cost
    /// more than the plugin call itself.
    fn push_stage(&mut self, stage: impl FnOnce(&Self) -> Stage) {
        if self.input.explain {
            let stage = stage(self);
            self.stages.push(stage);
        }
    }

    /// Applies the failure policy; `Ok` means "skip this stage".
    fn fail(&mut self, entry: &PluginEntry, failure: PluginFailure) -> Result<(), ApiError> {
        let message = failure.to_string();
        self.push_stage(|_| Stage {
            error: Some(message.clone()),
            fell_back: entry.config.failure_policy == FailurePolicy::FailOpen,
            ..stage_of(entry)
        });
        match entry.config.failure_policy {
            FailurePolicy::FailOpen => {
                entry
                    .metrics
                    .fallbacks
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(plugin = entry.name(), %message, "plugin failed open");
                Ok(())
            }
            FailurePolicy::FailClosed => {
                entry
                    .metrics
                    .rejections
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Err(ApiError::unavailable(format!(
                    "Routing plugin `{}` failed and its failure policy is FailClosed: {message}",
                    entry.name()
                ))
                .with_code("plugin_failed"))
            }
        }
    }

    fn filter(&mut self, entry: &PluginEntry) -> Result<(), ApiError> {
        let sub = self.sub(None);
        match entry.call(|p| p.filter(&self.input.request, &sub)) {
            Ok(kept) => {
                self.record(entry, &sub, || DecisionOutput::Indices(kept.clone()));
                self.positions = kept
                    .iter()
                    .filter_map(|&k| self.positions.get(k).copied())
                    .collect();
                self.push_stage(|run| Stage {
                    kept: Some(run.positions.iter().map(|&p| run.name_of(p)).collect()),
                    ..stage_of(entry)
                });
                if self.positions.is_empty() {
                    return Err(ApiError::unavailable(format!(
                        "No instance of `{}` passed the filter plugin `{}`.",
                        self.input.model,
                        entry.name()
                    ))
                    .with_code("filtered_out"));
                }
                Ok(())
            }
            Err(failure) => self.fail(entry, failure),
        }
    }

    /// Weighted sum of every scorer that answered; `None` when none did.
    fn score(&mut self, table: &PluginTable) -> Result<Option<Vec<f64>>, ApiError> {
        let mut totals: Option<Vec<f64>> = None;
        for entry in table.active(PluginKind::Scorer, self.input.model) {
            let sub = self.sub(None);
            match entry.call(|p| p.score(&self.input.request, &sub)) {
                Ok(scores) => {
                    self.record(entry, &sub, || DecisionOutput::Scores(scores.clone()));
                    let t = totals.get_or_insert_with(|| vec![0.0; sub.len()]);
                    for (total, score) in t.iter_mut().zip(&scores) {
                        *total += entry.config.weight * score;
                    }
                    self.push_stage(|run| Stage {
                        scores: Some(
                            run.positions
                                .iter()
                                .zip(&scores)
                                .map(|(&p, &s)| (run.name_of(p), s))
                                .collect(),
                        ),
                        ..stage_of(entry)
                    });
                }
                Err(failure) => self.fail(entry, failure)?,
            }
        }
        Ok(totals)
    }

    /// The picker's ranking over candidates in `order`, as local positions; `None` on fallback.
    fn pick(
        &mut self,
        entry: &PluginEntry,
        order: &[usize],
    ) -> Result<Option<Vec<usize>>, ApiError> {
        let sub = self.sub(Some(order));
        match entry.call(|p| p.pick(&self.input.request, &sub)) {
            Ok(ranked) => {
                self.record(entry, &sub, || DecisionOutput::Indices(ranked.clone()));
                let local: Vec<usize> = ranked
                    .iter()
                    .filter_map(|&r| order.get(r).copied())
                    .collect();
                self.push_stage(|run| Stage {
                    ranked: Some(
                        local
                            .iter()
                            .map(|&l| run.name_of(run.positions[l]))
                            .collect(),
                    ),
                    ..stage_of(entry)
                });
                Ok(Some(local))
            }
            Err(failure) => self.fail(entry, failure).map(|()| None),
        }
    }

    /// Runs shadow plugins on the same snapshot after the decision, off the request path
    /// (see `shadow.rs`): filters on every candidate, scorers and pickers on those the
    /// active filters kept.
    fn shadow(&self, table: &PluginTable, ranked: &[usize]) {
        let Some(&first) = ranked.first() else { return };
        let active_pick = self.candidates[first].id;
        let mut eligible: Option<Vec<Candidate>> = None;
        for entry in table.shadows(self.input.model) {
            let candidates = match entry.config.kind {
                PluginKind::Filter => self.candidates.clone(),
                _ => eligible.get_or_insert_with(|| self.sub(None)).clone(),
            };
            let run = ShadowRun {
                entry: Arc::clone(entry),
                request_id: self.input.request_id.to_owned(),
                request: self.input.request,
                candidates,
                active_pick,
                recorder: self.set.recorder.clone(),
            };
            tokio::spawn(async move { run.run() });
        }
    }

    fn explain(&self, totals: Option<&[f64]>, ranked: &[usize]) {
        let explanation = Explanation {
            request_id: self.input.request_id.to_owned(),
            model: self.input.model.to_owned(),
            tenant: self.input.tenant.map(str::to_owned),
            candidates: explained(self.input.routable, &self.candidates),
            stages: self.stages.clone(),
            total_scores: totals.map(|t| {
                self.positions
                    .iter()
                    .zip(t)
                    .map(|(&p, &s)| (self.name_of(p), s))
                    .collect()
            }),
            pick: ranked.iter().map(|&p| self.name_of(p)).collect(),
        };
        self.set.explains.push(explanation);
    }
}

/// The explanation of a stage run by `entry`, before its outcome is filled in.
fn stage_of(entry: &PluginEntry) -> Stage {
    Stage {
        plugin: entry.name().to_owned(),
        kind: entry.config.kind.world(),
        sha256: Some(entry.plugin.sha256().to_owned()),
        ..Stage::default()
    }
}

/// The candidates with their instance names, for explanations.
pub fn explained(routable: &[&Arc<Instance>], candidates: &[Candidate]) -> Vec<ExplainedCandidate> {
    routable
        .iter()
        .zip(candidates)
        .map(|(i, c)| ExplainedCandidate {
            id: c.id,
            instance: i.id().to_owned(),
            in_flight: c.in_flight,
            queued: c.queued,
            kv_usage: c.kv_usage,
            cached_prefix_blocks: c.cached_prefix_blocks,
            weight: c.weight,
            ttft_ewma_ms: c.ttft_ewma_ms,
            itl_ewma_ms: c.itl_ewma_ms,
            health: match c.health {
                Health::Healthy => "healthy",
                Health::Degraded => "degraded",
                Health::Unhealthy => "unhealthy",
            },
            predicted_ttft_ms: None,
        })
        .collect()
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
