//! The event stream every index is fed: sequences of chained block hashes stored on
//! instances round-robin and evicted oldest-first, as an LRU cache reports them.
//!
//! Each block carries Switchyard's chained hash. Dynamo's indexes want a per-block content
//! hash (`LocalBlockHash`, what queries walk) plus a sequence hash chained by Dynamo's own
//! rule (`ExternalSequenceBlockHash`, what its positional index re-derives during a query), so
//! each block also gets that: local = our hash (unique per prefix, so no ambiguity), external
//! = `dynamo_tokens::compute_next_sequence_hash` over the locals. Both are computed before the
//! clock starts.

/// One sequence: its instance and, per block, (our hash, Dynamo's sequence hash).
#[derive(Debug, Clone)]
pub struct Seq {
    pub instance: usize,
    pub blocks: Vec<(u64, u64)>,
}

/// How a sequence's stores and removals are cut into events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One `Stored` of the whole sequence, one `Removed` of it (a prefill's worth at once).
    Batched,
    /// One event per block: stores chained by parent, removals leaf first (decode-time
    /// growth and one-block LRU evictions, what engines emit most).
    Single,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Batched => "batched",
            Shape::Single => "single",
        }
    }

    /// (first, end) block ranges of the `Stored` events of a sequence of `len` blocks.
    pub fn store_ranges(self, len: usize) -> Vec<(usize, usize)> {
        match self {
            Shape::Batched => vec![(0, len)],
            Shape::Single => (0..len).map(|i| (i, i + 1)).collect(),
        }
    }

    /// Block ranges of its `Removed` events, in the order they are sent.
    pub fn remove_ranges(self, len: usize) -> Vec<(usize, usize)> {
        match self {
            Shape::Batched => vec![(0, len)],
            Shape::Single => (0..len).rev().map(|i| (i, i + 1)).collect(),
        }
    }
}

/// Sequence `id`'s blocks, a pure function of (salt, id), so the harness can re-create any
/// resident sequence for its eviction without keeping it in memory (which would distort the
/// memory-per-block figure).
#[derive(Debug, Clone, Copy)]
pub struct Generator {
    pub instances: usize,
    pub seq_blocks: usize,
    pub salt: u64,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Generator {
    /// Sequence `id`, on instance `id mod instances`.
    pub fn seq(&self, id: u64) -> Seq {
        Seq {
            instance: (id % self.instances as u64) as usize,
            blocks: self.chain(id, self.seq_blocks),
        }
    }

    /// The chain of sequence `id`, `len` blocks long.
    pub fn chain(&self, id: u64, len: usize) -> Vec<(u64, u64)> {
        let mut ours = splitmix(self.salt ^ splitmix(id));
        let mut ext = 0;
        (0..len as u64)
            .map(|i| {
                ours = splitmix(ours ^ i.wrapping_mul(0x2545_F491_4F6C_DD1D));
                ext = if i == 0 {
                    ours
                } else {
                    dynamo_tokens::compute_next_sequence_hash(ext, ours)
                };
                (ours, ext)
            })
            .collect()
    }
}
