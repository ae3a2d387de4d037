//! The waiting room's order, as a plain data structure (no time, no I/O): strict priority
//! across bands, weighted fair queuing across tenants within a band, FIFO within a tenant.
//!
//! Fairness is start-time fair queuing with a cost of one per request: a request's tag is
//! `max(band clock, its tenant's last tag) + 1 / weight`, the band serves the smallest tag
//! among the tenants' heads and moves its clock to it. A tenant that floods the queue only
//! pushes its own tags forward, so a tenant sending a little is served within one round of
//! arriving, and backlogged tenants share service in proportion to their weights.

use std::collections::{HashMap, VecDeque};

use crate::tenants::Priority;

/// Bands from the highest: the order they are served in.
pub const BANDS: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

pub fn band_index(p: Priority) -> usize {
    match p {
        Priority::High => 0,
        Priority::Normal => 1,
        Priority::Low => 2,
    }
}

pub fn band_label(i: usize) -> &'static str {
    ["high", "normal", "low"][i.min(2)]
}

/// One waiting request: its id (for removal) and the payload the caller keeps (a waker).
#[derive(Debug)]
struct Entry<T> {
    id: u64,
    tag: f64,
    item: T,
}

#[derive(Debug)]
struct Flow<T> {
    last_tag: f64,
    waiting: VecDeque<Entry<T>>,
}

#[derive(Debug)]
struct Band<T> {
    clock: f64,
    flows: HashMap<String, Flow<T>>,
    len: usize,
}

impl<T> Default for Band<T> {
    fn default() -> Self {
        Self {
            clock: 0.0,
            flows: HashMap::new(),
            len: 0,
        }
    }
}

/// Where a popped request came from, so it can be put back in its place.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub band: usize,
    pub tenant: String,
    pub id: u64,
    tag: f64,
}

#[derive(Debug)]
pub struct FairQueue<T> {
    bands: [Band<T>; 3],
    next_id: u64,
}

impl<T> Default for FairQueue<T> {
    fn default() -> Self {
        Self {
            bands: Default::default(),
            next_id: 0,
        }
    }
}

impl<T> FairQueue<T> {
    pub fn len(&self) -> usize {
        self.bands.iter().map(|b| b.len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn band_len(&self, band: usize) -> usize {
        self.bands[band].len
    }

    /// Queues `item` for `tenant` (weight ≥ 1) in `band`; returns its id.
    pub fn push(&mut self, band: usize, tenant: &str, weight: u32, item: T) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let b = &mut self.bands[band];
        let flow = b.flows.entry(tenant.to_owned()).or_insert_with(|| Flow {
            last_tag: 0.0,
            waiting: VecDeque::new(),
        });
        let tag = b.clock.max(flow.last_tag) + 1.0 / f64::from(weight.max(1));
        flow.last_tag = tag;
        flow.waiting.push_back(Entry { id, tag, item });
        b.len += 1;
        id
    }

    /// Takes the next request to serve: the highest non-empty band, the smallest tag there.
    pub fn pop(&mut self) -> Option<(Slot, T)> {
        let (band_i, b) = self.bands.iter_mut().enumerate().find(|(_, b)| b.len > 0)?;
        let tenant = b
            .flows
            .iter()
            .filter_map(|(t, f)| f.waiting.front().map(|e| (t, e.tag)))
            .min_by(|x, y| x.1.total_cmp(&y.1).then_with(|| x.0.cmp(y.0)))
            .map(|(t, _)| t.clone())?;
        let flow = b.flows.get_mut(&tenant)?;
        let entry = flow.waiting.pop_front()?;
        if flow.waiting.is_empty() {
            b.flows.remove(&tenant);
        }
        b.len -= 1;
        b.clock = b.clock.max(entry.tag);
        let slot = Slot {
            band: band_i,
            tenant,
            id: entry.id,
            tag: entry.tag,
        };
        Some((slot, entry.item))
    }

    /// Puts a popped request back at the head of its tenant's line (it was woken but found
    /// no room), keeping its tag and so its place.
    pub fn push_front(&mut self, slot: Slot, item: T) {
        let b = &mut self.bands[slot.band];
        let flow = b.flows.entry(slot.tenant).or_insert_with(|| Flow {
            last_tag: slot.tag,
            waiting: VecDeque::new(),
        });
        flow.waiting.push_front(Entry {
            id: slot.id,
            tag: slot.tag,
            item,
        });
        b.len += 1;
    }

    /// Removes a request that gave up (deadline or client gone); false if it was not queued.
    pub fn remove(&mut self, band: usize, tenant: &str, id: u64) -> bool {
        let b = &mut self.bands[band];
        let Some(flow) = b.flows.get_mut(tenant) else {
            return false;
        };
        let Some(pos) = flow.waiting.iter().position(|e| e.id == id) else {
            return false;
        };
        flow.waiting.remove(pos);
        b.len -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(q: &mut FairQueue<&'static str>) -> Vec<&'static str> {
        std::iter::from_fn(|| q.pop().map(|(_, item)| item)).collect()
    }

    #[test]
    fn higher_bands_are_served_first_whatever_the_arrival_order() {
        let mut q = FairQueue::default();
        q.push(band_index(Priority::Low), "a", 1, "low");
        q.push(band_index(Priority::Normal), "a", 1, "normal");
        q.push(band_index(Priority::High), "a", 1, "high");
        assert_eq!(order(&mut q), ["high", "normal", "low"]);
    }

    #[test]
    fn a_flooding_tenant_gets_its_share_not_the_queue() {
        let mut q = FairQueue::default();
        for _ in 0..6 {
            q.push(1, "flood", 1, "A");
        }
        q.push(1, "light", 1, "B");
        q.push(1, "light", 1, "B");
        // B arrived behind six of A's and is served within one round.
        assert_eq!(order(&mut q), ["A", "B", "A", "B", "A", "A", "A", "A"]);
    }

    #[test]
    fn backlogged_tenants_share_by_weight() {
        let mut q = FairQueue::default();
        for _ in 0..9 {
            q.push(1, "heavy", 2, "2");
            q.push(1, "light", 1, "1");
        }
        let first_nine = &order(&mut q)[..9];
        let heavy = first_nine.iter().filter(|s| **s == "2").count();
        assert_eq!(heavy, 6, "weight 2 gets two of every three: {first_nine:?}");
    }

    #[test]
    fn fifo_within_a_tenant_and_put_back_keeps_the_place() {
        let mut q = FairQueue::default();
        q.push(1, "a", 1, "a1");
        q.push(1, "a", 1, "a2");
        q.push(1, "b", 1, "b1");
        let (slot, item) = q.pop().unwrap();
        assert_eq!(item, "a1");
        q.push_front(slot, item);
        assert_eq!(order(&mut q), ["a1", "b1", "a2"]);
    }

    #[test]
    fn removal_and_lengths() {
        let mut q = FairQueue::default();
        let id = q.push(2, "a", 1, "x");
        q.push(2, "a", 1, "y");
        assert_eq!((q.len(), q.band_len(2)), (2, 2));
        assert!(q.remove(2, "a", id));
        assert!(!q.remove(2, "a", id));
        assert_eq!(order(&mut q), ["y"]);
        assert!(q.is_empty());
    }
}
