//! `session`: requests carrying the same session key go to the same instance, by rendezvous
//! (highest-random-weight) hashing. When an instance leaves, only its sessions move; when one
//! joins, it takes ~1/n of them. Requests without a key use the fallback policy.

use std::sync::Arc;

use super::{best_by, Policy, RouteContext};
use crate::live::Instance;

#[derive(Debug)]
pub struct Session {
    fallback: Arc<dyn Policy>,
}

impl Session {
    pub fn new(fallback: Arc<dyn Policy>) -> Self {
        Self { fallback }
    }
}

/// A cheap, well-mixed combination of the key hash and an instance hash (splitmix64 finalizer).
fn mix(key: u64, instance: u64) -> u64 {
    let mut z = key ^ instance.rotate_left(29);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Policy for Session {
    fn name(&self) -> &'static str {
        "session"
    }

    fn rank(&self, ctx: &RouteContext<'_>, candidates: &[&Arc<Instance>]) -> Vec<usize> {
        let Some(key) = ctx.session_key else {
            return self.fallback.rank(ctx, candidates);
        };
        let key = xxhash_rust::xxh3::xxh3_64(key.as_bytes());
        // Highest score wins: rank by the score's complement.
        best_by(candidates.len(), ctx.want, 0, |i| {
            u64::MAX - mix(key, candidates[i].id_hash)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::*;
    use crate::policy::RoundRobin;

    fn policy() -> Session {
        Session::new(Arc::new(RoundRobin::default()))
    }

    #[test]
    fn a_session_sticks() {
        let inst = instances(8);
        let c = refs(&inst);
        let p = policy();
        for s in 0..50 {
            let key = format!("session-{s}");
            let ctx = RouteContext {
                session_key: Some(&key),
                want: 1,
                ..Default::default()
            };
            let first = p.rank(&ctx, &c)[0];
            for _ in 0..5 {
                assert_eq!(p.rank(&ctx, &c)[0], first);
            }
        }
    }

    #[test]
    fn sessions_spread_and_only_a_removed_instances_sessions_move() {
        let inst = instances(4);
        let c = refs(&inst);
        let p = policy();
        let keys: Vec<String> = (0..2000).map(|s| format!("user-{s}")).collect();
        let pick = |c: &[&Arc<Instance>], k: &str| {
            let ctx = RouteContext {
                session_key: Some(k),
                want: 1,
                ..Default::default()
            };
            c[p.rank(&ctx, c)[0]].id().to_owned()
        };
        let before: Vec<String> = keys.iter().map(|k| pick(&c, k)).collect();
        for i in 0..4 {
            let share = before.iter().filter(|id| **id == format!("i{i}")).count();
            assert!((380..620).contains(&share), "i{i} got {share}");
        }
        let without_i2: Vec<&Arc<Instance>> =
            c.iter().copied().filter(|x| x.id() != "i2").collect();
        for (k, old) in keys.iter().zip(&before) {
            let new = pick(&without_i2, k);
            if old != "i2" {
                assert_eq!(&new, old, "session {k} moved although its instance stayed");
            }
        }
    }

    #[test]
    fn no_key_uses_the_fallback() {
        let inst = instances(3);
        let c = refs(&inst);
        let p = policy();
        let ctx = RouteContext {
            want: 1,
            ..Default::default()
        };
        assert_eq!(first_counts(&p, &ctx, &c, 30), vec![10; 3]);
    }
}
