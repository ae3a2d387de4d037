//! Flow control: when every candidate of a model is saturated (the `overload` thresholds:
//! in-flight per instance, KV usage), requests wait here instead of piling onto engines or
//! being shed at once. They leave in priority-band order, fairly across tenants within a
//! band ([`queue`]), when an instance has room: a request ending wakes the next waiter, and
//! a short tick re-checks for room that appears otherwise (KV usage scraped down, another
//! client's load gone). The waiter then goes on to select an instance with fresh load.
//!
//! Passing the gate reserves room ([`Reservation`]): until the request takes its in-flight
//! slot on an instance (or ends without one), the gate counts that room as taken, so a woken
//! waiter and a newcomer — or two waiters — cannot both pass for the one free slot.
//!
//! A request waits at most its deadline (`x-switchyard-deadline-ms`, else its tenant's
//! `queue_deadline_ms`, else `flow_control.max_wait_ms`) and is then answered like a shed
//! request: 429 for low priority, else 503, with `Retry-After`. A full band refuses at once.
//! Off unless `flow_control.enabled`; then the old behaviour (shed at once) applies.

pub mod queue;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use switchyard_runtime::Instance;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::admission::{has_room_beyond, OverloadConfig};
use crate::error::ApiError;
use crate::tenants::Priority;
use queue::{band_index, band_label, FairQueue, Slot};

/// Request header: how long this request may wait in the queue, milliseconds.
pub const DEADLINE_HEADER: &str = "x-switchyard-deadline-ms";

/// `flow_control:` in the YAML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowConfig {
    pub enabled: bool,
    /// Requests that may wait in each band (per model); beyond it the band refuses at once.
    pub max_queue_per_band: usize,
    /// Longest wait when neither the request nor its tenant says otherwise, milliseconds.
    #[serde(rename = "max_wait", with = "switchyard_protocol::duration::millis")]
    pub max_wait_ms: u64,
    /// How often waiters are re-checked for room that no request ending announced.
    #[serde(rename = "tick", with = "switchyard_protocol::duration::millis")]
    pub tick_ms: u64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_queue_per_band: 1024,
            max_wait_ms: 5_000,
            tick_ms: 10,
        }
    }
}

impl FlowConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.tick_ms == 0 {
            return Err("flow_control.tick: must be at least 1".into());
        }
        Ok(())
    }
}

/// Who is asking to wait, and how.
#[derive(Debug, Clone)]
pub struct Ticket<'a> {
    pub model: &'a str,
    pub band: Priority,
    pub tenant: &'a str,
    pub weight: u32,
    pub deadline: Duration,
}

type Waker = oneshot::Sender<Slot>;

#[derive(Debug, Default)]
pub struct FlowControl {
    config: FlowConfig,
    queues: Mutex<HashMap<String, FairQueue<Waker>>>,
    /// Per model: requests let through that have not taken their in-flight slot yet.
    reserved: Mutex<HashMap<String, Arc<AtomicUsize>>>,
    /// Waiting requests over every model: the fast "nobody waits" check.
    waiting: AtomicUsize,
    depth: [AtomicUsize; 3],
    timeouts: [AtomicU64; 3],
    rejected: [AtomicU64; 3],
}

impl FlowControl {
    pub fn new(config: &FlowConfig) -> Self {
        Self {
            config: config.clone(),
            ..Self::default()
        }
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// The band a request waits in: the header (`x-switchyard-priority`) may lower the
    /// caller's band (its tenant's, else normal), never raise it.
    pub fn band(overload: &OverloadConfig, headers: &HeaderMap, cap: Priority) -> Priority {
        let asked = headers
            .get(overload.priority_header.as_str())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| match v.to_ascii_lowercase().as_str() {
                "high" => Some(Priority::High),
                "normal" => Some(Priority::Normal),
                "low" => Some(Priority::Low),
                _ => None,
            });
        asked.map_or(cap, |p| p.min(cap))
    }

    /// The deadline: the request's header, else the tenant's default, else
    /// `max_wait_ms`; a header cannot ask for more than the larger of the two defaults.
    pub fn deadline(&self, headers: &HeaderMap, tenant_default: Option<u64>) -> Duration {
        let ceiling = self.config.max_wait_ms.max(tenant_default.unwrap_or(0));
        let asked = headers
            .get(DEADLINE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let ms = asked.or(tenant_default).unwrap_or(self.config.max_wait_ms);
        Duration::from_millis(ms.min(ceiling))
    }

    /// Returns once `room(reserved)` says an instance can take the request beyond the
    /// `reserved` requests already let through — at once (`waited: false`) when nobody waits
    /// for this model and there is room, else after waiting — or `shed`'s error when the
    /// deadline passes or the band is full. The grant counts in the model's reservations until
    /// released. A request dropped while waiting leaves the queue.
    pub async fn wait_for_room(
        &self,
        ticket: Ticket<'_>,
        room: impl Fn(usize) -> bool,
        shed: impl Fn(&str) -> ApiError,
    ) -> Result<Granted, ApiError> {
        let held = self.reserved_for(ticket.model);
        let granted = |waited| Granted {
            held: Arc::clone(&held),
            waited,
        };
        if self.waiting.load(Ordering::Acquire) == 0 && try_reserve(&held, &room) {
            return Ok(granted(false));
        }
        let band = band_index(ticket.band);
        let expires = tokio::time::Instant::now() + ticket.deadline;
        let (mut rx, mut guard) = {
            let mut queues = self.queues.lock();
            let q = queues.entry(ticket.model.to_owned()).or_default();
            if q.is_empty() && try_reserve(&held, &room) {
                return Ok(granted(false));
            }
            if q.band_len(band) >= self.config.max_queue_per_band {
                self.rejected[band].fetch_add(1, Ordering::Relaxed);
                return Err(shed("The wait queue for this model is full; retry later."));
            }
            let (tx, rx) = oneshot::channel();
            let id = q.push(band, ticket.tenant, ticket.weight, tx);
            self.entered(band);
            let guard = Waiting {
                flow: self,
                model: ticket.model,
                band,
                tenant: ticket.tenant,
                id,
                done: false,
            };
            (rx, guard)
        };
        loop {
            match tokio::time::timeout_at(expires, &mut rx).await {
                Ok(Ok(slot)) => {
                    // Our turn: go if there is room, else back to our place in line.
                    if try_reserve(&held, &room) {
                        guard.done = true;
                        return Ok(granted(true));
                    }
                    let (tx, new_rx) = oneshot::channel();
                    self.queues
                        .lock()
                        .entry(ticket.model.to_owned())
                        .or_default()
                        .push_front(slot, tx);
                    self.entered(band);
                    rx = new_rx;
                }
                // The deadline passed (a dropped waker cannot happen while queued; treat it
                // the same): leave and shed.
                Ok(Err(_)) | Err(_) => {
                    drop(guard);
                    self.timeouts[band].fetch_add(1, Ordering::Relaxed);
                    return Err(shed(&format!(
                        "No instance of the model had room within {} ms; retry later.",
                        ticket.deadline.as_millis()
                    )));
                }
            }
        }
    }

    /// The count of `model`'s requests let through that hold no in-flight slot yet.
    fn reserved_for(&self, model: &str) -> Arc<AtomicUsize> {
        let mut reserved = self.reserved.lock();
        if let Some(held) = reserved.get(model) {
            return Arc::clone(held);
        }
        let held = Arc::new(AtomicUsize::new(0));
        reserved.insert(model.to_owned(), Arc::clone(&held));
        held
    }

    /// A request ended, so an instance may have room: give the next waiter of each model
    /// its turn. Costs one atomic load when nobody waits.
    pub fn request_ended(&self) {
        if self.waiting.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut queues = self.queues.lock();
        for q in queues.values_mut() {
            self.wake_next(q);
        }
        queues.retain(|_, q| !q.is_empty());
    }

    /// Pops waiters until one takes the turn (a waiter gone meanwhile does not).
    fn wake_next(&self, q: &mut FairQueue<Waker>) {
        while let Some((slot, tx)) = q.pop() {
            self.left(slot.band);
            if tx.send(slot).is_ok() {
                return;
            }
        }
    }

    fn entered(&self, band: usize) {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        self.depth[band].fetch_add(1, Ordering::Relaxed);
    }

    fn left(&self, band: usize) {
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        self.depth[band].fetch_sub(1, Ordering::Relaxed);
    }

    /// Re-checks waiters every `tick_ms` for room that no request ending announced.
    pub fn spawn_ticker(self: &Arc<Self>) -> Option<JoinHandle<()>> {
        if !self.config.enabled {
            return None;
        }
        let flow = Arc::clone(self);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(flow.config.tick_ms));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                flow.request_ended();
            }
        }))
    }

    /// `switchyard_flow_*` series, for the scrape-time collector (only when flow control
    /// is on).
    pub fn collect_metrics(&self, s: &mut switchyard_runtime::exposition::Scrape) {
        if !self.config.enabled {
            return;
        }
        use crate::metrics::names;
        let mut depth = s.family(&names::FLOW_QUEUE_DEPTH);
        for (i, n) in self.depth.iter().enumerate() {
            depth.value(&[("band", band_label(i))], n.load(Ordering::Relaxed) as f64);
        }
        for (family, values) in [
            (&names::FLOW_QUEUE_TIMEOUTS, &self.timeouts),
            (&names::FLOW_QUEUE_REJECTED, &self.rejected),
        ] {
            let mut samples = s.family(family);
            for (i, n) in values.iter().enumerate() {
                samples.value(&[("band", band_label(i))], n.load(Ordering::Relaxed) as f64);
            }
        }
    }
}

/// Takes one of `held`'s reservations if `room` says there is room beyond those already
/// held; a compare-and-swap, so concurrent callers each see the others' grants.
fn try_reserve(held: &AtomicUsize, room: &impl Fn(usize) -> bool) -> bool {
    let mut now = held.load(Ordering::Acquire);
    loop {
        if !room(now) {
            return false;
        }
        match held.compare_exchange_weak(now, now + 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(seen) => now = seen,
        }
    }
}

/// What the gate gave a request: one reservation in `held`, and whether it had to wait.
#[derive(Debug)]
pub struct Granted {
    held: Arc<AtomicUsize>,
    pub waited: bool,
}

/// A request's claim on the room it was let through for. Released when the request takes
/// its in-flight slot on an instance (from then on the instance's in-flight count shows it);
/// dropped unreleased — the request failed or was cancelled first — it hands the room to the
/// next waiter.
#[derive(Debug)]
pub struct Reservation {
    held: Arc<AtomicUsize>,
    released: AtomicBool,
    flow: Arc<FlowControl>,
}

impl Reservation {
    pub fn new(flow: &Arc<FlowControl>, granted: Granted) -> Self {
        Self {
            held: granted.held,
            released: AtomicBool::new(false),
            flow: Arc::clone(flow),
        }
    }

    /// The request holds an in-flight slot now; idempotent (each attempt of a retried
    /// request calls it).
    pub fn release(&self) -> bool {
        let first = !self.released.swap(true, Ordering::AcqRel);
        if first {
            self.held.fetch_sub(1, Ordering::AcqRel);
        }
        first
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.release() {
            self.flow.request_ended();
        }
    }
}

/// A request's place in line; leaving (deadline, client gone) takes it out, and a turn it
/// was given but will not use passes to the next waiter.
struct Waiting<'a> {
    flow: &'a FlowControl,
    model: &'a str,
    band: usize,
    tenant: &'a str,
    id: u64,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut queues = self.flow.queues.lock();
        let Some(q) = queues.get_mut(self.model) else {
            return;
        };
        if q.remove(self.band, self.tenant, self.id) {
            self.flow.left(self.band);
        } else if !self.done {
            // Popped for a turn we will not take: hand it on.
            self.flow.wake_next(q);
        }
    }
}

/// The flow-control stage of the request path: with flow control on, waits until some
/// routable instance has room (see the module docs) and returns the request's reservation;
/// otherwise returns at once and the capacity check at dispatch sheds as before.
pub async fn admit(
    app: &crate::app::App,
    request: &crate::pipeline::parse::ParsedRequest,
    routable: &[&Arc<Instance>],
    tenant: Option<&crate::tenants::Tenant>,
) -> Result<Option<Reservation>, ApiError> {
    let flow = &app.flow;
    if !flow.enabled() {
        return Ok(None);
    }
    let overload = &app.config.reliability.overload;
    let headers = &request.headers;
    let ticket = Ticket {
        model: request.model(),
        band: FlowControl::band(
            overload,
            headers,
            tenant.map_or(Priority::Normal, |t| t.priority),
        ),
        tenant: tenant.map_or("", |t| t.id.as_str()),
        weight: tenant.map_or(1, |t| t.weight),
        deadline: flow.deadline(headers, tenant.and_then(|t| t.queue_deadline_ms)),
    };
    let low = ticket.band == Priority::Low;
    let started = tokio::time::Instant::now();
    let waited = flow
        .wait_for_room(
            ticket,
            |reserved| has_room_beyond(overload, routable, reserved),
            |message| {
                let status = if low {
                    overload.low_priority_status
                } else {
                    503
                };
                ApiError::overloaded(
                    status,
                    message,
                    Duration::from_secs(overload.retry_after_s.max(1)),
                )
            },
        )
        .await;
    let granted = waited?;
    if let (true, Some(t)) = (granted.waited, tenant) {
        t.metrics.count_queue_wait(started.elapsed());
    }
    Ok(Some(Reservation::new(flow, granted)))
}

#[cfg(test)]
mod tests;
