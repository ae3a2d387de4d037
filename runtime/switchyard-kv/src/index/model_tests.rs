//! The index against a reference model on random event streams: a plain map of instance →
//! set of blocks, with the overlap computed the obvious way. Small hash and instance spaces
//! make shared blocks, duplicate stores, removals of blocks never stored, clears, instance
//! removal and slot reuse all frequent.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;

/// The reference: what each instance holds.
#[derive(Default)]
struct Model {
    held: BTreeMap<String, BTreeSet<BlockHash>>,
}

impl Model {
    fn apply(&mut self, instance: &str, event: &KvEvent) {
        match event {
            KvEvent::Stored { blocks, .. } => {
                self.held
                    .entry(instance.to_owned())
                    .or_default()
                    .extend(blocks.iter().copied());
            }
            KvEvent::Removed { blocks } => {
                if let Some(set) = self.held.get_mut(instance) {
                    for b in blocks {
                        set.remove(b);
                    }
                }
            }
            KvEvent::Cleared => {
                if let Some(set) = self.held.get_mut(instance) {
                    set.clear();
                }
            }
        }
    }

    fn overlap(&self, prompt: &[BlockHash]) -> BTreeMap<String, usize> {
        self.held
            .iter()
            .map(|(name, set)| {
                let n = prompt.iter().take_while(|b| set.contains(b)).count();
                (name.clone(), n)
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    fn distinct(&self) -> usize {
        self.held.values().flatten().collect::<BTreeSet<_>>().len()
    }
}

/// Chains drawn from a few "documents" so prompts share prefixes with what was stored.
fn chain(rng: &mut SmallRng) -> Vec<BlockHash> {
    let doc = rng.gen_range(0..6u64);
    let len = rng.gen_range(1..20usize);
    (0..len as u64).map(|i| doc * 100 + i).collect()
}

fn random_event(rng: &mut SmallRng) -> KvEvent {
    match rng.gen_range(0..100) {
        0..=54 => {
            let c = chain(rng);
            let from = rng.gen_range(0..c.len());
            KvEvent::Stored {
                parent: None,
                blocks: c[from..].to_vec(),
            }
        }
        55..=94 => {
            let c = chain(rng);
            let mut blocks: Vec<BlockHash> = c.into_iter().filter(|_| rng.gen_bool(0.4)).collect();
            // Removals of blocks nobody stored.
            if rng.gen_bool(0.1) {
                blocks.push(rng.gen_range(10_000..10_010));
            }
            KvEvent::Removed { blocks }
        }
        _ => KvEvent::Cleared,
    }
}

fn as_map(o: &Overlap) -> BTreeMap<String, usize> {
    o.iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn check(idx: &KvIndex, model: &Model, rng: &mut SmallRng, step: usize) {
    for _ in 0..4 {
        let prompt = chain(rng);
        assert_eq!(
            as_map(&idx.overlap(&prompt)),
            model.overlap(&prompt),
            "overlap of {prompt:?} after step {step}"
        );
    }
    assert_eq!(
        idx.len(),
        model.distinct(),
        "distinct blocks after step {step}"
    );
    for (name, set) in &model.held {
        assert_eq!(
            idx.instance_blocks(name),
            set.len(),
            "{name} after step {step}"
        );
    }
}

#[test]
fn random_streams_answer_like_the_reference_model() {
    for seed in 0..40 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut idx = KvIndex::new();
        let mut model = Model::default();
        for step in 0..400 {
            let instance = format!("w{}", rng.gen_range(0..5));
            match rng.gen_range(0..100) {
                // The instance left discovery: its slot is freed and may be reused.
                0..=2 => {
                    idx.remove_instance(&instance);
                    model.held.remove(&instance);
                }
                // A resync from a dump.
                3..=5 => {
                    let blocks = chain(&mut rng);
                    idx.reset_instance(&instance, blocks.iter().copied());
                    model.held.insert(instance, blocks.into_iter().collect());
                }
                // A message of several events, applied in one call.
                6..=15 => {
                    let events: Vec<KvEvent> = (0..rng.gen_range(1..4))
                        .map(|_| random_event(&mut rng))
                        .collect();
                    idx.apply_all(&instance, &events);
                    for event in &events {
                        model.apply(&instance, event);
                    }
                }
                _ => {
                    let event = random_event(&mut rng);
                    idx.apply(&instance, &event);
                    model.apply(&instance, &event);
                }
            }
            check(&idx, &model, &mut rng, step);
        }
    }
}

#[test]
fn under_the_cap_the_index_holds_a_bounded_subset_of_the_model() {
    const CAP: usize = 7;
    for seed in 0..20 {
        let mut rng = SmallRng::seed_from_u64(1000 + seed);
        let mut idx = KvIndex::new();
        idx.set_max_blocks_per_instance(CAP);
        let mut model = Model::default();
        for step in 0..400 {
            let instance = format!("w{}", rng.gen_range(0..3));
            let event = random_event(&mut rng);
            idx.apply(&instance, &event);
            model.apply(&instance, &event);
            for (name, set) in &model.held {
                let n = idx.instance_blocks(name);
                assert!(n <= CAP, "{name} holds {n} > {CAP} after step {step}");
                let slot = idx.slot_of(name).unwrap_or_default();
                assert!(idx.held[slot as usize].log_len() <= 2 * CAP + 64 + 1);
                // Everything the index reports is really held (the cap only forgets).
                for &b in set.iter().chain(&[10_000, 10_001]) {
                    if idx.overlap(&[b]).get(name) == 1 {
                        assert!(set.contains(&b), "{name} reports {b} after step {step}");
                    }
                }
                if set.len() <= CAP && idx.evicted() == 0 {
                    assert_eq!(n, set.len());
                }
            }
        }
    }
}
