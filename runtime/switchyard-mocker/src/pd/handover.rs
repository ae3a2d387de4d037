//! The prefill side's table of KV held for a decode instance to pull: vLLM handles (keyed by
//! the prefill's request id, checked against the block ids it announced) and SGLang rooms
//! (keyed by `bootstrap_room`, which the decode side may ask for before the prefill is done).
//! Entries expire after the transfer window; the KV they pin is handed back to the caller to
//! release.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::kv_cache::Allocation;

/// KV pinned for a pull.
#[derive(Debug)]
pub struct Held {
    pub alloc: Allocation,
    pub block_ids: Vec<u64>,
    expires: Instant,
}

/// Why a pull found nothing to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullError {
    /// No such handle or room (never issued, already pulled, or expired).
    Unknown,
    /// The handle exists but the block ids differ from the ones it announced.
    BlockMismatch,
    /// The room's prefill did not finish within the transfer window.
    TimedOut,
}

impl PullError {
    pub fn message(&self) -> &'static str {
        match self {
            Self::Unknown => "no KV held under this handle (unknown, already pulled or expired)",
            Self::BlockMismatch => "the block ids do not match the ones this handle holds",
            Self::TimedOut => "the prefill of this bootstrap room did not finish in time",
        }
    }
}

#[derive(Debug)]
struct Room {
    held: Option<Held>,
    ready: watch::Sender<bool>,
    /// A room a decode waits for is forgotten after this, if no prefill ever filled it.
    expires: Instant,
}

#[derive(Debug)]
pub struct Handover {
    window: Duration,
    handles: Mutex<HashMap<String, Held>>,
    rooms: Mutex<HashMap<u64, Room>>,
    next_block_id: AtomicU64,
}

impl Handover {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            handles: Mutex::new(HashMap::new()),
            rooms: Mutex::new(HashMap::new()),
            next_block_id: AtomicU64::new(1),
        }
    }

    /// Holds `alloc` under `handle`; returns the block ids announced for it.
    pub fn hold_handle(&self, handle: String, alloc: Allocation) -> Vec<u64> {
        let n = alloc.total as u64;
        let first = self.next_block_id.fetch_add(n.max(1), Relaxed);
        let block_ids: Vec<u64> = (first..first + n).collect();
        let held = Held {
            alloc,
            block_ids: block_ids.clone(),
            expires: Instant::now() + self.window,
        };
        self.handles.lock().insert(handle, held);
        block_ids
    }

    /// Takes what `handle` holds, if `block_ids` are the ones it announced.
    pub fn take_handle(&self, handle: &str, block_ids: &[u64]) -> Result<Held, PullError> {
        let mut handles = self.handles.lock();
        let held = handles.get(handle).ok_or(PullError::Unknown)?;
        if held.expires <= Instant::now() {
            return Err(PullError::Unknown);
        }
        if held.block_ids != block_ids {
            return Err(PullError::BlockMismatch);
        }
        handles.remove(handle).ok_or(PullError::Unknown)
    }

    /// Holds `alloc` for the decode side of `room`, waking a decode already waiting.
    pub fn hold_room(&self, room: u64, alloc: Allocation) {
        let expires = Instant::now() + self.window;
        let mut rooms = self.rooms.lock();
        let entry = rooms.entry(room).or_insert_with(|| Room {
            held: None,
            ready: watch::channel(false).0,
            expires,
        });
        entry.held = Some(Held {
            block_ids: Vec::new(),
            alloc,
            expires,
        });
        entry.expires = expires;
        entry.ready.send_replace(true);
    }

    /// Waits (at most the transfer window) for `room`'s prefill and takes its KV.
    pub async fn take_room(&self, room: u64) -> Result<Held, PullError> {
        let mut ready = {
            let mut rooms = self.rooms.lock();
            let entry = rooms.entry(room).or_insert_with(|| Room {
                held: None,
                ready: watch::channel(false).0,
                expires: Instant::now() + self.window,
            });
            entry.ready.subscribe()
        };
        let filled = tokio::time::timeout(self.window, ready.wait_for(|r| *r)).await;
        if !matches!(filled, Ok(Ok(_))) {
            return Err(PullError::TimedOut);
        }
        let mut rooms = self.rooms.lock();
        let held = rooms
            .remove(&room)
            .and_then(|r| r.held)
            .ok_or(PullError::Unknown)?;
        Ok(held)
    }

    /// Drops entries whose window is over; returns the KV they pinned, to be released.
    pub fn expired(&self, now: Instant) -> Vec<Allocation> {
        let mut out = Vec::new();
        self.handles.lock().retain(|_, held| {
            let keep = held.expires > now;
            if !keep {
                out.push(std::mem::take(&mut held.alloc));
            }
            keep
        });
        self.rooms.lock().retain(|_, room| {
            let keep = room.expires > now;
            if !keep {
                if let Some(held) = room.held.as_mut() {
                    out.push(std::mem::take(&mut held.alloc));
                }
            }
            keep
        });
        out
    }

    /// Blocks currently held for pulls.
    pub fn held_blocks(&self) -> usize {
        let handles: usize = self.handles.lock().values().map(|h| h.alloc.total).sum();
        let rooms: usize = self
            .rooms
            .lock()
            .values()
            .filter_map(|r| r.held.as_ref())
            .map(|h| h.alloc.total)
            .sum();
        handles + rooms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv_cache::KvCache;

    fn alloc(cache: &mut KvCache, blocks: u64) -> Allocation {
        cache.allocate(&(1..=blocks).collect::<Vec<_>>())
    }

    #[test]
    fn a_handle_is_taken_once_and_only_with_its_block_ids() {
        let mut cache = KvCache::new(64, None);
        let h = Handover::new(Duration::from_secs(60));
        let ids = h.hold_handle("r1".into(), alloc(&mut cache, 3));
        assert_eq!(ids.len(), 3);
        assert_eq!(h.held_blocks(), 3);
        assert_eq!(
            h.take_handle("r1", &[ids[0]]).unwrap_err(),
            PullError::BlockMismatch
        );
        assert_eq!(h.take_handle("r2", &ids).unwrap_err(), PullError::Unknown);
        let held = h.take_handle("r1", &ids).unwrap();
        assert_eq!(held.alloc.total, 3);
        cache.release(held.alloc);
        assert_eq!(h.take_handle("r1", &ids).unwrap_err(), PullError::Unknown);
        assert_eq!(h.held_blocks(), 0);
    }

    #[test]
    fn expired_handles_are_refused_and_their_kv_returned() {
        let mut cache = KvCache::new(64, None);
        let h = Handover::new(Duration::from_millis(1));
        let ids = h.hold_handle("r1".into(), alloc(&mut cache, 2));
        let later = Instant::now() + Duration::from_millis(5);
        let freed = h.expired(later);
        assert_eq!(freed.iter().map(|a| a.total).sum::<usize>(), 2);
        for a in freed {
            cache.release(a);
        }
        assert_eq!(cache.pinned(), 0);
        assert_eq!(h.take_handle("r1", &ids).unwrap_err(), PullError::Unknown);
    }

    #[tokio::test]
    async fn a_decode_waiting_for_a_room_gets_it_when_the_prefill_fills_it() {
        let mut cache = KvCache::new(64, None);
        let h = std::sync::Arc::new(Handover::new(Duration::from_secs(60)));
        let waiter = {
            let h = h.clone();
            tokio::spawn(async move { h.take_room(7).await })
        };
        // The waiter registers the room first (or the prefill does): either order works.
        tokio::task::yield_now().await;
        h.hold_room(7, alloc(&mut cache, 4));
        let held = waiter.await.unwrap().unwrap();
        assert_eq!(held.alloc.total, 4);
        h.hold_room(8, alloc(&mut cache, 1));
        assert_eq!(h.take_room(8).await.unwrap().alloc.total, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_room_nobody_prefills_times_out() {
        let h = Handover::new(Duration::from_millis(50));
        assert_eq!(h.take_room(9).await.unwrap_err(), PullError::TimedOut);
    }
}
