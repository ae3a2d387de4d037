use super::*;

fn stored(blocks: &[BlockHash]) -> KvEvent {
    KvEvent::Stored {
        parent: None,
        blocks: blocks.to_vec(),
    }
}

#[test]
fn overlap_counts_leading_blocks_per_instance() {
    let mut idx = KvIndex::new();
    idx.apply("a", &stored(&[1, 2, 3]));
    idx.apply("b", &stored(&[1, 2]));
    idx.apply("c", &stored(&[9]));
    let o = idx.overlap(&[1, 2, 3, 4]);
    assert_eq!(o.get("a"), 3);
    assert_eq!(o.get("b"), 2);
    assert_eq!(o.get("c"), 0);
    assert_eq!(o.max(), 3);
}

#[test]
fn a_hole_in_the_chain_ends_the_match() {
    let mut idx = KvIndex::new();
    idx.apply("a", &stored(&[1, 3]));
    assert_eq!(idx.overlap(&[1, 2, 3]).get("a"), 1);
    assert!(idx.overlap(&[2, 3]).is_empty());
}

#[test]
fn removed_and_cleared_blocks_stop_matching() {
    let mut idx = KvIndex::new();
    idx.apply("a", &stored(&[1, 2, 3]));
    idx.apply("b", &stored(&[1, 2, 3]));
    idx.apply("a", &KvEvent::Removed { blocks: vec![2] });
    assert_eq!(idx.overlap(&[1, 2, 3]).get("a"), 1);
    assert_eq!(idx.overlap(&[1, 2, 3]).get("b"), 3);
    idx.apply("b", &KvEvent::Cleared);
    assert_eq!(idx.overlap(&[1, 2, 3]).get("b"), 0);
    assert_eq!(idx.len(), 2, "a still holds blocks 1 and 3");
}

#[test]
fn removing_an_instance_frees_its_blocks_and_slot() {
    let mut idx = KvIndex::new();
    idx.apply("a", &stored(&[1, 2]));
    idx.apply("b", &stored(&[1]));
    idx.remove_instance("a");
    assert_eq!(idx.len(), 1);
    assert_eq!(idx.instance_blocks("a"), 0);
    idx.apply("c", &stored(&[1, 2]));
    let o = idx.overlap(&[1, 2]);
    assert_eq!((o.get("a"), o.get("b"), o.get("c")), (0, 1, 2));
}

#[test]
fn reset_replaces_an_instances_blocks() {
    let mut idx = KvIndex::new();
    idx.apply("a", &stored(&[1, 2, 3]));
    idx.reset_instance("a", [7, 8]);
    assert_eq!(idx.overlap(&[1]).get("a"), 0);
    assert_eq!(idx.overlap(&[7, 8]).get("a"), 2);
    assert_eq!(idx.instance_blocks("a"), 2);
}

#[test]
fn duplicate_stores_and_unknown_removals_are_harmless() {
    let mut idx = KvIndex::new();
    idx.apply("a", &stored(&[1, 2]));
    idx.apply("a", &stored(&[1, 2]));
    idx.apply("a", &KvEvent::Removed { blocks: vec![5] });
    idx.apply("zz", &KvEvent::Removed { blocks: vec![1] });
    idx.apply("zz", &KvEvent::Cleared);
    assert_eq!(idx.instance_blocks("a"), 2);
    assert_eq!(idx.overlap(&[1, 2]).get("a"), 2);
}

#[test]
fn works_with_real_block_hashes() {
    let h = crate::BlockHasher::new(4);
    let shared: Vec<u32> = (0..16).collect();
    let mut longer = shared.clone();
    longer.extend(100..108);
    let mut idx = KvIndex::new();
    idx.apply("a", &stored(&h.hash_tokens(&longer)));
    assert_eq!(idx.overlap(&h.hash_tokens(&shared)).get("a"), 4);
    assert_eq!(idx.overlap(&h.hash_tokens(&longer)).get("a"), 6);
}

#[test]
fn shared_handle_sees_writes() {
    let idx = SharedKvIndex::new();
    let reader = idx.clone();
    idx.apply("a", &stored(&[1]));
    assert_eq!(reader.overlap(&[1]).get("a"), 1);
    idx.remove_instance("a");
    assert!(reader.is_empty());
}

#[test]
fn the_per_instance_cap_evicts_that_instances_oldest_blocks_only() {
    let mut idx = KvIndex::new();
    idx.set_max_blocks_per_instance(3);
    let stored = |blocks: Vec<BlockHash>| KvEvent::Stored {
        parent: None,
        blocks,
    };
    idx.apply("other", &stored(vec![1, 2]));
    idx.apply("flood", &stored(vec![1, 2, 3]));
    idx.apply("flood", &KvEvent::Removed { blocks: vec![2] });
    idx.apply("flood", &stored(vec![4, 5]));
    // flood held 1, 3 then stored 4, 5: its oldest (1) went; 3, 4, 5 stay.
    assert_eq!(idx.instance_blocks("flood"), 3);
    assert_eq!(idx.evicted(), 1);
    assert_eq!(idx.overlap(&[3]).get("flood"), 1);
    assert_eq!(idx.overlap(&[1]).get("flood"), 0);
    // The other instance's copy of block 1 is untouched.
    assert_eq!(idx.overlap(&[1, 2]).get("other"), 2);
    // A flood of distinct blocks stays bounded, stale queue entries included.
    for i in 0..10_000u64 {
        idx.apply("flood", &stored(vec![100 + i]));
        idx.apply(
            "flood",
            &KvEvent::Removed {
                blocks: vec![100 + i],
            },
        );
        idx.apply("flood", &stored(vec![1_000_000 + i]));
    }
    assert_eq!(idx.instance_blocks("flood"), 3);
    let flood = idx.slot_of("flood").unwrap() as usize;
    assert!(idx.held[flood].log_len() <= 2 * 3 + 64 + 1);
    assert_eq!(idx.instance_blocks("other"), 2);
}

#[test]
fn removing_unknown_blocks_never_grows_the_map() {
    let mut idx = KvIndex::new();
    // Fill the map up to its current capacity, so any reservation would have to grow it.
    let mut n = 0u64;
    loop {
        idx.apply("a", &stored(&[n]));
        n += 1;
        if idx.blocks.len() == idx.blocks.capacity() {
            break;
        }
    }
    let capacity = idx.blocks.capacity();
    let unknown: Vec<BlockHash> = (1_000_000..1_010_000).collect();
    idx.apply("a", &KvEvent::Removed { blocks: unknown });
    assert_eq!(idx.blocks.capacity(), capacity);
    assert_eq!(idx.instance_blocks("a"), n as usize);
}
