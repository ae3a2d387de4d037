//! Typed views of the candidate frame: its columns as slices (`frame.kv_usage[i]`), the
//! candidate count, one candidate as a struct, and an iterator over them.

/// Health of a candidate (the `health` column: 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Serving normally.
    Healthy,
    /// Serving, but recent errors or slow probes suggest trouble; prefer others.
    Degraded,
    /// Failing (only seen when every instance is unhealthy).
    Unhealthy,
}

impl Health {
    /// The column's code; anything unknown reads as unhealthy (the safe side).
    pub fn from_code(code: u8) -> Self {
        match code {
            0 => Health::Healthy,
            1 => Health::Degraded,
            _ => Health::Unhealthy,
        }
    }
}

/// The candidates of one decision, one slice per WIT `frame` column; element `i` of every
/// column is candidate `i`, and positions returned by filters and pickers index them.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub id: &'a [u32],
    pub in_flight: &'a [u32],
    pub running: &'a [u32],
    pub queued: &'a [u32],
    pub kv_usage: &'a [f32],
    pub cached_prefix_blocks: &'a [u32],
    pub ttft_ewma_ms: &'a [f32],
    pub itl_ewma_ms: &'a [f32],
    /// 0 healthy, 1 degraded, 2 unhealthy; see [`Health::from_code`].
    pub health: &'a [u8],
    pub weight: &'a [f32],
    /// 1 when the request's LoRA adapter is loaded on the candidate.
    pub adapter_resident: &'a [u8],
}

/// One candidate, read out of the frame's columns (see the WIT for each field).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub id: u32,
    pub in_flight: u32,
    pub running: u32,
    pub queued: u32,
    pub kv_usage: f32,
    pub cached_prefix_blocks: u32,
    pub ttft_ewma_ms: f32,
    pub itl_ewma_ms: f32,
    pub health: Health,
    pub weight: f32,
    pub adapter_resident: bool,
}

impl Frame<'_> {
    /// The candidate count. Every column has this length (the host guarantees it; a
    /// shorter column would shorten the frame rather than panic).
    pub fn len(&self) -> usize {
        [
            self.id.len(),
            self.in_flight.len(),
            self.running.len(),
            self.queued.len(),
            self.kv_usage.len(),
            self.cached_prefix_blocks.len(),
            self.ttft_ewma_ms.len(),
            self.itl_ewma_ms.len(),
            self.health.len(),
            self.weight.len(),
            self.adapter_resident.len(),
        ]
        .into_iter()
        .min()
        .unwrap_or(0)
    }

    /// Whether there are no candidates.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Candidate `i`, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<Candidate> {
        (i < self.len()).then(|| self.at(i))
    }

    /// Every candidate, in frame order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Candidate> + '_ {
        (0..self.len()).map(|i| self.at(i))
    }

    fn at(&self, i: usize) -> Candidate {
        Candidate {
            id: self.id[i],
            in_flight: self.in_flight[i],
            running: self.running[i],
            queued: self.queued[i],
            kv_usage: self.kv_usage[i],
            cached_prefix_blocks: self.cached_prefix_blocks[i],
            ttft_ewma_ms: self.ttft_ewma_ms[i],
            itl_ewma_ms: self.itl_ewma_ms[i],
            health: Health::from_code(self.health[i]),
            weight: self.weight[i],
            adapter_resident: self.adapter_resident[i] != 0,
        }
    }
}
