//! `p2c`: power of two choices on in-flight requests — sample two instances at random and
//! prefer the less loaded. Nearly as good as least-loaded without herding every request onto
//! the one instance that looked idlest a microsecond ago.

use std::sync::Arc;

use rand::Rng;

use super::random::with_rng;
use super::{fill_in_order, weighted_load, Policy, RouteContext};
use crate::live::Instance;

#[derive(Debug, Default)]
pub struct PowerOfTwo;

impl Policy for PowerOfTwo {
    fn name(&self) -> &'static str {
        "p2c"
    }

    fn rank(&self, ctx: &RouteContext<'_>, candidates: &[&Arc<Instance>]) -> Vec<usize> {
        let n = candidates.len();
        match n {
            0 => return Vec::new(),
            1 => return vec![0],
            _ => {}
        }
        let (a, b) = with_rng(|rng| {
            let a = rng.gen_range(0..n);
            let b = (a + rng.gen_range(1..n)) % n;
            (a, b)
        });
        let (first, second) = if weighted_load(candidates[b]) < weighted_load(candidates[a]) {
            (b, a)
        } else {
            (a, b)
        };
        let mut ranked = vec![first, second];
        ranked.truncate(ctx.want.max(1));
        fill_in_order(&mut ranked, n, ctx.want, second);
        ranked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::*;

    #[test]
    fn a_loaded_instance_is_picked_only_when_paired_with_itself_never() {
        let inst = instances(2);
        let _busy: Vec<_> = (0..5).map(|_| inst[0].start_request()).collect();
        let c = refs(&inst);
        let ctx = RouteContext {
            want: 2,
            ..Default::default()
        };
        // With two instances the pair is always {0, 1}: the idle one always wins.
        assert_eq!(first_counts(&PowerOfTwo, &ctx, &c, 200), vec![0, 200]);
    }

    #[test]
    fn loaded_instances_get_less_traffic() {
        let inst = instances(4);
        let _busy: Vec<_> = (0..3).map(|_| inst[3].start_request()).collect();
        let c = refs(&inst);
        let ctx = RouteContext {
            want: 1,
            ..Default::default()
        };
        let counts = first_counts(&PowerOfTwo, &ctx, &c, 4000);
        // Instance 3 only wins when... never: any pair with it has an idle partner.
        assert_eq!(counts[3], 0, "{counts:?}");
        for &count in &counts[..3] {
            assert!((1000..1700).contains(&count), "{counts:?}");
        }
    }
}
