//! `random`: a uniformly random order.

use std::cell::RefCell;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{Policy, RouteContext};
use crate::live::Instance;

thread_local! {
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_entropy());
}

/// Runs `f` with this thread's fast RNG (policies run on the request path; no locking).
pub(super) fn with_rng<T>(f: impl FnOnce(&mut SmallRng) -> T) -> T {
    RNG.with(|rng| f(&mut rng.borrow_mut()))
}

#[derive(Debug, Default)]
pub struct Random;

impl Policy for Random {
    fn name(&self) -> &'static str {
        "random"
    }

    fn rank(&self, ctx: &RouteContext<'_>, candidates: &[&Arc<Instance>]) -> Vec<usize> {
        let n = candidates.len();
        if n == 0 {
            return Vec::new();
        }
        let want = ctx.want.clamp(1, n);
        with_rng(|rng| {
            if want == 1 {
                vec![rng.gen_range(0..n)]
            } else {
                rand::seq::index::sample(rng, n, want).into_vec()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::*;

    #[test]
    fn distribution_is_roughly_uniform() {
        let inst = instances(4);
        let c = refs(&inst);
        let ctx = RouteContext {
            want: 1,
            ..Default::default()
        };
        let counts = first_counts(&Random, &ctx, &c, 8000);
        // Expected 2000 each; 5 sigma is ~190.
        for count in counts {
            assert!((1700..2300).contains(&count), "{count}");
        }
    }
}
