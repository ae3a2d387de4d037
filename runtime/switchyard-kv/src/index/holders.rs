//! Who holds a block, packed into the index map's value.
//!
//! Under KV-aware routing almost every block lives on exactly one instance, so the map value
//! is one `u32`: the holder's slot, or (top bit set) the number of a sorted holder list kept in
//! an [`Arena`] beside the map. A map entry is then 16 bytes (hash + value, padded) where an
//! inline `enum { One(u32), Many(Vec<u32>) }` made it 32: half the memory the fresh-block
//! inserts and the overlap walk pull through the cache, which is what bounds both at
//! millions of blocks.

/// Interned instance id; an index into the index's name table.
pub(crate) type Slot = u32;

/// Marks a [`Holder`] that names an arena list rather than a slot.
const MANY: u32 = 1 << 31;

/// Most slots an index hands out: the top bit of a [`Holder`] is the list marker.
pub(crate) const MAX_SLOTS: usize = MANY as usize;

/// The instances holding one block: one slot inline, or an arena list of two or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Holder(u32);

impl Holder {
    pub(crate) fn one(slot: Slot) -> Self {
        debug_assert!(slot < MANY, "slot {slot} collides with the list marker");
        Self(slot)
    }

    fn list(self) -> Option<usize> {
        (self.0 & MANY != 0).then_some((self.0 & !MANY) as usize)
    }
}

/// What [`Arena::remove`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removed {
    /// The slot did not hold the block.
    NotHeld,
    /// Removed; other holders remain.
    Kept,
    /// Removed; nobody holds the block any more (drop the map entry).
    Empty,
}

/// Holder lists of blocks with two or more holders. Freed lists are reused, so the arena is
/// as large as the most multiply-held blocks at any one time, not the history of them.
#[derive(Debug, Default)]
pub(crate) struct Arena {
    lists: Vec<Vec<Slot>>,
    free: Vec<u32>,
}

impl Arena {
    pub(crate) fn contains(&self, h: Holder, slot: Slot) -> bool {
        match h.list() {
            None => h.0 == slot,
            Some(i) => self.lists[i].binary_search(&slot).is_ok(),
        }
    }

    /// Whether every slot of `sorted` (ascending) holds the block: one merge walk rather than
    /// a binary search per slot, since a shared prefix is usually held by the same set.
    pub(crate) fn contains_all(&self, h: Holder, sorted: &[Slot]) -> bool {
        let list = match h.list() {
            None => return sorted.iter().all(|&s| s == h.0),
            Some(i) => &self.lists[i],
        };
        let mut held = list.iter();
        sorted
            .iter()
            .all(|&s| held.by_ref().find(|&&x| x >= s) == Some(&s))
    }

    /// Adds `slot` to the block's holders; returns whether it was new.
    pub(crate) fn insert(&mut self, h: &mut Holder, slot: Slot) -> bool {
        match h.list() {
            None if h.0 == slot => false,
            None => {
                let pair = if h.0 < slot { [h.0, slot] } else { [slot, h.0] };
                *h = self.alloc(&pair);
                true
            }
            Some(i) => match self.lists[i].binary_search(&slot) {
                Ok(_) => false,
                Err(at) => {
                    self.lists[i].insert(at, slot);
                    true
                }
            },
        }
    }

    /// Removes `slot` from the block's holders.
    pub(crate) fn remove(&mut self, h: &mut Holder, slot: Slot) -> Removed {
        let Some(i) = h.list() else {
            return if h.0 == slot {
                Removed::Empty
            } else {
                Removed::NotHeld
            };
        };
        let list = &mut self.lists[i];
        let Ok(at) = list.binary_search(&slot) else {
            return Removed::NotHeld;
        };
        list.remove(at);
        if let [only] = list.as_slice() {
            *h = Holder::one(*only);
            list.clear();
            self.free.push(i as u32);
        }
        Removed::Kept
    }

    pub(crate) fn for_each(&self, h: Holder, mut f: impl FnMut(Slot)) {
        match h.list() {
            None => f(h.0),
            Some(i) => self.lists[i].iter().copied().for_each(f),
        }
    }

    /// Lists in use (blocks held by two or more instances).
    #[cfg(test)]
    pub(crate) fn in_use(&self) -> usize {
        self.lists.len() - self.free.len()
    }

    fn alloc(&mut self, slots: &[Slot]) -> Holder {
        let i = match self.free.pop() {
            Some(i) => {
                self.lists[i as usize].extend_from_slice(slots);
                i
            }
            None => {
                self.lists.push(slots.to_vec());
                (self.lists.len() - 1) as u32
            }
        };
        Holder(MANY | i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_moves_the_block_to_a_list_and_back() {
        let mut arena = Arena::default();
        let mut h = Holder::one(7);
        assert!(arena.insert(&mut h, 3));
        assert!(!arena.insert(&mut h, 7), "already held");
        assert!(arena.contains(h, 3) && arena.contains(h, 7) && !arena.contains(h, 5));
        assert_eq!(arena.in_use(), 1);
        assert_eq!(arena.remove(&mut h, 5), Removed::NotHeld);
        assert_eq!(arena.remove(&mut h, 3), Removed::Kept);
        assert_eq!(h, Holder::one(7), "one holder is stored inline again");
        assert_eq!(arena.in_use(), 0);
        assert_eq!(arena.remove(&mut h, 7), Removed::Empty);
    }

    #[test]
    fn contains_all_is_a_subset_test() {
        let mut arena = Arena::default();
        let mut h = Holder::one(2);
        for s in [9, 4, 7] {
            arena.insert(&mut h, s);
        }
        assert!(arena.contains_all(h, &[2, 4, 7, 9]));
        assert!(arena.contains_all(h, &[4, 9]));
        assert!(arena.contains_all(h, &[]));
        assert!(!arena.contains_all(h, &[3]));
        assert!(!arena.contains_all(h, &[2, 4, 8]));
        assert!(!arena.contains_all(h, &[9, 10]));
        assert!(arena.contains_all(Holder::one(5), &[5]));
        assert!(!arena.contains_all(Holder::one(5), &[5, 6]));
    }

    #[test]
    fn freed_lists_are_reused() {
        let mut arena = Arena::default();
        for round in 0..100 {
            let mut h = Holder::one(round);
            arena.insert(&mut h, round + 1);
            arena.insert(&mut h, round + 2);
            let mut seen = Vec::new();
            arena.for_each(h, |s| seen.push(s));
            assert_eq!(seen, vec![round, round + 1, round + 2]);
            arena.remove(&mut h, round);
            arena.remove(&mut h, round + 1);
        }
        assert_eq!(arena.lists.len(), 1);
    }
}
