//! `least-loaded`: the instance with the fewest in-flight requests (per unit of weight).
//! Ties rotate so that a fleet of idle instances is shared rather than the first one hammered.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{best_by, weighted_load, Policy, RouteContext};
use crate::live::Instance;

#[derive(Debug, Default)]
pub struct LeastLoaded {
    rotate: AtomicUsize,
}

impl Policy for LeastLoaded {
    fn name(&self) -> &'static str {
        "least-loaded"
    }

    fn rank(&self, ctx: &RouteContext<'_>, candidates: &[&Arc<Instance>]) -> Vec<usize> {
        let start = self.rotate.fetch_add(1, Ordering::Relaxed);
        best_by(candidates.len(), ctx.want, start, |i| {
            weighted_load(candidates[i])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::*;

    #[test]
    fn picks_the_least_loaded_and_ranks_by_load() {
        let inst = instances(3);
        let _g0: Vec<_> = (0..2).map(|_| inst[0].start_request()).collect();
        let _g2: Vec<_> = (0..1).map(|_| inst[2].start_request()).collect();
        let c = refs(&inst);
        let ctx = RouteContext {
            want: 3,
            ..Default::default()
        };
        assert_eq!(LeastLoaded::default().rank(&ctx, &c), vec![1, 2, 0]);
    }

    #[test]
    fn a_queue_the_engine_reports_counts_though_this_frontend_sent_nothing() {
        use crate::live::{EngineReport, ReportSource};
        let inst = instances(3);
        // Another client built a standing queue of 10 on instance 0.
        let report = EngineReport {
            running: Some(4.0),
            waiting: Some(10.0),
            ..EngineReport::default()
        };
        inst[0].load.record_report(ReportSource::Scrape, &report, 1);
        let _g1 = inst[1].start_request();
        let c = refs(&inst);
        let ctx = RouteContext {
            want: 3,
            ..Default::default()
        };
        for _ in 0..8 {
            assert_eq!(LeastLoaded::default().rank(&ctx, &c), vec![2, 1, 0]);
        }
    }

    #[test]
    fn idle_ties_are_spread_evenly() {
        let inst = instances(4);
        let c = refs(&inst);
        let ctx = RouteContext {
            want: 1,
            ..Default::default()
        };
        assert_eq!(
            first_counts(&LeastLoaded::default(), &ctx, &c, 400),
            vec![100; 4]
        );
    }

    #[test]
    fn weight_scales_load() {
        let mut inst = instances(2);
        Arc::get_mut(&mut inst[0]).unwrap().spec.weight = 4.0;
        let _g: Vec<_> = (0..3).map(|_| inst[0].start_request()).collect();
        let _h: Vec<_> = (0..1).map(|_| inst[1].start_request()).collect();
        let c = refs(&inst);
        // 3/4 < 1/1: the heavier instance still wins.
        let ctx = RouteContext {
            want: 1,
            ..Default::default()
        };
        assert_eq!(LeastLoaded::default().rank(&ctx, &c), vec![0]);
    }
}
