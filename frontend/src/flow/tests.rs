//! The gate's unit tests: band order, fairness, deadlines and reservations, in paused time.

use super::*;
use futures_util::FutureExt;
use std::sync::atomic::AtomicBool;

fn flow() -> FlowControl {
    FlowControl::new(&FlowConfig {
        enabled: true,
        max_queue_per_band: 2,
        ..FlowConfig::default()
    })
}

fn ticket(band: Priority, tenant: &str, ms: u64) -> Ticket<'_> {
    Ticket {
        model: "m",
        band,
        tenant,
        weight: 1,
        deadline: Duration::from_millis(ms),
    }
}

fn shed(m: &str) -> ApiError {
    ApiError::overloaded(503, m, Duration::from_secs(1))
}

#[tokio::test(start_paused = true)]
async fn waiters_leave_in_band_order_as_requests_end() {
    let f = flow();
    let full = AtomicBool::new(true);
    let room = |_| !full.load(Ordering::Relaxed);
    let mut low = Box::pin(f.wait_for_room(ticket(Priority::Low, "a", 10_000), room, shed));
    let mut high = Box::pin(f.wait_for_room(ticket(Priority::High, "b", 10_000), room, shed));
    assert!(low.as_mut().now_or_never().is_none());
    assert!(high.as_mut().now_or_never().is_none());
    assert_eq!(f.depth[0].load(Ordering::Relaxed), 1);
    assert_eq!(f.depth[2].load(Ordering::Relaxed), 1);
    // A newcomer queues behind them even though it could not tell there is no room.
    full.store(false, Ordering::Relaxed);
    let mut late = Box::pin(f.wait_for_room(ticket(Priority::High, "c", 10_000), room, shed));
    assert!(
        late.as_mut().now_or_never().is_none(),
        "no overtaking the line"
    );
    // One request ends: the high-priority waiter that came first goes.
    f.request_ended();
    assert!(high.as_mut().now_or_never().unwrap().is_ok());
    assert!(low.as_mut().now_or_never().is_none());
    f.request_ended();
    assert!(late.as_mut().now_or_never().unwrap().is_ok());
    f.request_ended();
    assert!(low.as_mut().now_or_never().unwrap().is_ok());
    assert_eq!(f.waiting.load(Ordering::Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn a_woken_waiter_without_room_keeps_its_place() {
    let f = flow();
    let room = |_| false;
    let mut first = Box::pin(f.wait_for_room(ticket(Priority::Normal, "a", 10_000), room, shed));
    assert!(first.as_mut().now_or_never().is_none());
    let mut second = Box::pin(f.wait_for_room(ticket(Priority::Normal, "a", 10_000), room, shed));
    assert!(second.as_mut().now_or_never().is_none());
    f.request_ended();
    assert!(
        first.as_mut().now_or_never().is_none(),
        "no room: back in line"
    );
    assert_eq!(f.waiting.load(Ordering::Relaxed), 2);
    // The next turn is the first waiter's again, not the second's: it went back to the
    // head of the line, not the tail.
    f.request_ended();
    assert!(first.as_mut().now_or_never().is_none());
    assert!(second.as_mut().now_or_never().is_none());
    let popped = f
        .queues
        .lock()
        .get_mut("m")
        .and_then(|q| q.pop())
        .map(|(s, _)| s.id);
    assert_eq!(
        popped,
        Some(0),
        "the first waiter (id 0) is still first in line"
    );
}

#[tokio::test(start_paused = true)]
async fn the_deadline_sheds_and_a_full_band_refuses_at_once() {
    let f = flow();
    let room = |_| false;
    let waiting = f.wait_for_room(ticket(Priority::Normal, "a", 200), room, shed);
    let _other = Box::pin(f.wait_for_room(ticket(Priority::Normal, "a", 10_000), room, shed))
        .as_mut()
        .now_or_never();
    let started = tokio::time::Instant::now();
    let e = waiting.await.unwrap_err();
    assert_eq!(e.status, 503);
    assert_eq!(started.elapsed(), Duration::from_millis(200));
    assert_eq!(f.timeouts[1].load(Ordering::Relaxed), 1);
    assert_eq!(f.waiting.load(Ordering::Relaxed), 0, "it left the queue");

    let mut a = Box::pin(f.wait_for_room(ticket(Priority::Low, "a", 10_000), room, shed));
    let mut b = Box::pin(f.wait_for_room(ticket(Priority::Low, "b", 10_000), room, shed));
    assert!(a.as_mut().now_or_never().is_none() && b.as_mut().now_or_never().is_none());
    let e = f
        .wait_for_room(ticket(Priority::Low, "c", 10_000), room, shed)
        .now_or_never()
        .unwrap()
        .unwrap_err();
    assert!(e.message.contains("queue for this model is full"), "{e}");
    assert_eq!(f.rejected[2].load(Ordering::Relaxed), 1);
    drop(a);
    assert_eq!(
        f.depth[2].load(Ordering::Relaxed),
        1,
        "a dropped waiter leaves"
    );
}

#[tokio::test(start_paused = true)]
async fn one_free_slot_lets_one_request_through_until_its_reservation_ends() {
    let f = Arc::new(flow());
    // One instance with one free slot: room beyond `reserved` while fewer are held.
    let free = AtomicUsize::new(1);
    let room = |reserved: usize| free.load(Ordering::Relaxed) > reserved;
    let first = f
        .wait_for_room(ticket(Priority::Normal, "a", 10_000), room, shed)
        .now_or_never()
        .unwrap()
        .unwrap();
    assert!(!first.waited);
    let first = Reservation::new(&f, first);
    // The slot is not taken yet (no in-flight count moved), but it is reserved: a second
    // request waits instead of passing for the same slot.
    let mut second = Box::pin(f.wait_for_room(ticket(Priority::Normal, "b", 10_000), room, shed));
    assert!(second.as_mut().now_or_never().is_none());
    // A request ending elsewhere wakes it, but the reservation still holds the slot.
    f.request_ended();
    assert!(
        second.as_mut().now_or_never().is_none(),
        "it passed for a reserved slot"
    );
    // The first request fails before taking its slot: its reservation hands the room on.
    drop(first);
    let second = second.as_mut().now_or_never().unwrap().unwrap();
    assert!(second.waited);
    // Taking the slot releases the reservation without waking anyone: the instance's
    // in-flight count carries it now.
    let second = Reservation::new(&f, second);
    free.store(0, Ordering::Relaxed);
    assert!(second.release());
    assert!(!second.release(), "released once");
    assert_eq!(f.reserved_for("m").load(Ordering::Relaxed), 0);
}

#[test]
fn the_header_lowers_the_band_but_never_raises_it() {
    let overload = OverloadConfig::default();
    let mut h = HeaderMap::new();
    h.insert(
        "x-switchyard-priority",
        http::HeaderValue::from_static("high"),
    );
    assert_eq!(
        FlowControl::band(&overload, &h, Priority::Normal),
        Priority::Normal
    );
    h.insert(
        "x-switchyard-priority",
        http::HeaderValue::from_static("low"),
    );
    assert_eq!(
        FlowControl::band(&overload, &h, Priority::High),
        Priority::Low
    );
    assert_eq!(
        FlowControl::band(&overload, &HeaderMap::new(), Priority::High),
        Priority::High
    );
}

#[test]
fn deadlines_come_from_the_header_the_tenant_or_the_config() {
    let f = flow();
    let mut h = HeaderMap::new();
    assert_eq!(f.deadline(&h, None), Duration::from_secs(5));
    assert_eq!(f.deadline(&h, Some(700)), Duration::from_millis(700));
    h.insert(DEADLINE_HEADER, http::HeaderValue::from_static("250"));
    assert_eq!(f.deadline(&h, Some(700)), Duration::from_millis(250));
    h.insert(DEADLINE_HEADER, http::HeaderValue::from_static("999999"));
    assert_eq!(f.deadline(&h, None), Duration::from_secs(5), "capped");
}
