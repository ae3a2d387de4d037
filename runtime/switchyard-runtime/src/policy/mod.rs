//! Native routing policies: one trait, one file per policy, and a registry by name.
//!
//! A policy *ranks* candidates best-first instead of picking one, so "retry on the next
//! instance" is just the next entry. Candidates have already passed the health filter.

pub mod kv;
mod kv_affinity;
mod least_loaded;
mod name;
mod p2c;
mod random;
mod round_robin;
mod session;
pub mod ttft;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchyard_kv::BlockHash;

use crate::live::Instance;

pub use kv::Kv;
pub use least_loaded::LeastLoaded;
pub use name::PolicyName;
pub use p2c::PowerOfTwo;
pub use random::Random;
pub use round_robin::RoundRobin;
pub use session::Session;

/// What a policy may know about the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteContext<'a> {
    /// Value of the session header, when present.
    pub session_key: Option<&'a str>,
    /// Prefix block hashes of the prompt (for cache-aware policies).
    pub block_hashes: &'a [BlockHash],
    /// How many ranked entries the caller can use (1 + retries); at least 1.
    pub want: usize,
    /// The request's TTFT target, ms (per model, tenant or header), for policies that
    /// predict TTFT.
    pub ttft_slo_ms: Option<f64>,
    /// Where a predicting policy leaves its per-candidate predictions for dispatch.
    pub decision: Option<&'a ttft::DecisionSlot>,
}

/// A native routing policy.
pub trait Policy: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;

    /// Indices into `candidates`, best first, at most `ctx.want` of them (and at least one
    /// when `candidates` is not empty).
    fn rank(&self, ctx: &RouteContext<'_>, candidates: &[&Arc<Instance>]) -> Vec<usize>;
}

/// Per-model routing settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// `round-robin`, `random`, `p2c`, `least-loaded`, `kv` or `session`.
    pub policy: PolicyName,
    /// Header whose value pins a session to an instance (`session` policy).
    pub session_header: String,
    /// Policy used by `session` for requests without the header.
    pub session_fallback: PolicyName,
    /// TTFT target, ms, for policies that predict TTFT (`kv`); a tenant's target or the
    /// `x-switchyard-ttft-slo-ms` header overrides it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_slo_ms: Option<f64>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            // Cache- and load-aware by predicted TTFT: what most users should run.
            policy: PolicyName::Kv,
            session_header: "x-session-id".to_owned(),
            session_fallback: PolicyName::LeastLoaded,
            ttft_slo_ms: None,
        }
    }
}

/// The native policies, for `--help`, benches and tests.
pub const POLICY_NAMES: &[PolicyName] = PolicyName::ALL;

/// Builds a policy by name (a `kv` policy gets a slot of its own).
pub fn build(config: &PolicyConfig) -> Result<Arc<dyn Policy>, String> {
    build_with_kv(config, &kv::KvSlot::default())
}

/// Builds a policy by name; a `kv` policy reads `kv` (its frontend's slot).
pub fn build_with_kv(config: &PolicyConfig, kv: &kv::KvSlot) -> Result<Arc<dyn Policy>, String> {
    if let Some(ms) = config.ttft_slo_ms {
        ttft::check_slo_ms(ms).map_err(|e| format!("ttft_slo_ms: {e}"))?;
    }
    build_named(config.policy, config, kv)
}

fn build_named(
    name: PolicyName,
    config: &PolicyConfig,
    kv: &kv::KvSlot,
) -> Result<Arc<dyn Policy>, String> {
    Ok(match name {
        PolicyName::RoundRobin => Arc::new(RoundRobin::default()),
        PolicyName::Random => Arc::new(Random),
        PolicyName::P2c => Arc::new(PowerOfTwo),
        PolicyName::LeastLoaded => Arc::new(LeastLoaded::default()),
        // Reads its settings and overlap source from the frontend's slot (set at start-up).
        PolicyName::Kv => Arc::new(Kv::new(kv.clone())),
        PolicyName::Session => {
            if config.session_fallback == PolicyName::Session {
                return Err("session_fallback cannot be `session`".into());
            }
            Arc::new(Session::new(build_named(
                config.session_fallback,
                config,
                kv,
            )?))
        }
    })
}

/// Load key used by load-aware policies: requests outstanding at the instance (see
/// [`crate::live::Load::outstanding`]) divided by weight.
fn weighted_load(instance: &Instance) -> f32 {
    let weight = if instance.spec.weight > 0.0 {
        instance.spec.weight
    } else {
        1.0
    };
    // Requests outstanding at the engine (its own report, when it has one, so a queue other
    // clients built counts), not only what this frontend sent.
    instance.load.outstanding() as f32 / weight
}

/// The `want` indices with the smallest `key`, ascending, in one pass over the candidates.
/// The scan starts at `start`, and a tie keeps the earlier-scanned index, so rotating `start`
/// spreads ties instead of herding them onto index 0.
fn best_by<K: PartialOrd + Copy>(
    n: usize,
    want: usize,
    start: usize,
    key: impl Fn(usize) -> K,
) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let want = want.clamp(1, n);
    let start = start % n;
    let mut best: Vec<(K, usize)> = Vec::with_capacity(want + 1);
    let mut visit = |i: usize| {
        let k = key(i);
        if best.len() == want {
            match best.last() {
                Some((worst, _)) if k < *worst => {
                    best.pop();
                }
                _ => return,
            }
        }
        let pos = best.iter().position(|(b, _)| k < *b).unwrap_or(best.len());
        best.insert(pos, (k, i));
    };
    (start..n).chain(0..start).for_each(&mut visit);
    best.into_iter().map(|(_, i)| i).collect()
}

/// Extends `ranked` up to `want` with the remaining indices in order from `start`.
fn fill_in_order(ranked: &mut Vec<usize>, n: usize, want: usize, start: usize) {
    let want = want.max(1).min(n);
    for k in 0..n {
        if ranked.len() >= want {
            break;
        }
        let i = (start + k) % n;
        if !ranked.contains(&i) {
            ranked.push(i);
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::InstanceSpec;

    pub fn instances(n: usize) -> Vec<Arc<Instance>> {
        (0..n)
            .map(|i| {
                Arc::new(Instance::new(
                    InstanceSpec::new(
                        format!("i{i}"),
                        "m",
                        format!("http://127.0.0.1:{}", 9000 + i),
                    ),
                    None,
                ))
            })
            .collect()
    }

    pub fn refs(v: &[Arc<Instance>]) -> Vec<&Arc<Instance>> {
        v.iter().collect()
    }

    /// How often each index is ranked first over `rounds` calls.
    pub fn first_counts(
        policy: &dyn Policy,
        ctx: &RouteContext<'_>,
        c: &[&Arc<Instance>],
        rounds: usize,
    ) -> Vec<usize> {
        let mut counts = vec![0; c.len()];
        for _ in 0..rounds {
            let ranked = policy.rank(ctx, c);
            counts[ranked[0]] += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_builds_every_named_policy_and_rejects_a_session_fallback_loop() {
        for name in POLICY_NAMES {
            let cfg = PolicyConfig {
                policy: *name,
                ..PolicyConfig::default()
            };
            assert_eq!(build(&cfg).unwrap().name(), name.as_str());
        }
        let err = build(&PolicyConfig {
            policy: PolicyName::Session,
            session_fallback: PolicyName::Session,
            ..PolicyConfig::default()
        })
        .unwrap_err();
        assert!(err.contains("session_fallback"), "{err}");
        let err = serde_json::from_str::<PolicyConfig>(r#"{"policy":"fastest"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("fastest") && err.contains("p2c"), "{err}");
    }

    #[test]
    fn every_policy_ranks_distinct_indices_up_to_want() {
        let inst = testing::instances(5);
        let c = testing::refs(&inst);
        for name in POLICY_NAMES {
            let p = build(&PolicyConfig {
                policy: *name,
                ..PolicyConfig::default()
            })
            .unwrap();
            for want in [1, 3, 5, 9] {
                let ctx = RouteContext {
                    session_key: Some("s"),
                    want,
                    ..Default::default()
                };
                let r = p.rank(&ctx, &c);
                assert_eq!(r.len(), want.min(5), "{name} want={want}");
                let mut d = r.clone();
                d.sort_unstable();
                d.dedup();
                assert_eq!(d.len(), r.len(), "{name} ranked duplicates: {r:?}");
                assert!(r.iter().all(|&i| i < 5));
            }
            assert!(p
                .rank(
                    &RouteContext {
                        want: 1,
                        ..Default::default()
                    },
                    &[]
                )
                .is_empty());
        }
    }
}
