//! `round-robin`: each request starts one instance further along.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{fill_in_order, Policy, RouteContext};
use crate::live::Instance;

#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl Policy for RoundRobin {
    fn name(&self) -> &'static str {
        "round-robin"
    }

    fn rank(&self, ctx: &RouteContext<'_>, candidates: &[&Arc<Instance>]) -> Vec<usize> {
        let n = candidates.len();
        if n == 0 {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut ranked = Vec::with_capacity(ctx.want.min(n));
        fill_in_order(&mut ranked, n, ctx.want, start);
        ranked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::*;

    #[test]
    fn distribution_is_exactly_even() {
        let inst = instances(4);
        let c = refs(&inst);
        let ctx = RouteContext {
            want: 2,
            ..Default::default()
        };
        assert_eq!(
            first_counts(&RoundRobin::default(), &ctx, &c, 400),
            vec![100; 4]
        );
    }

    #[test]
    fn next_ranked_is_the_following_instance() {
        let inst = instances(3);
        let c = refs(&inst);
        let p = RoundRobin::default();
        let ctx = RouteContext {
            want: 3,
            ..Default::default()
        };
        assert_eq!(p.rank(&ctx, &c), vec![0, 1, 2]);
        assert_eq!(p.rank(&ctx, &c), vec![1, 2, 0]);
    }
}
