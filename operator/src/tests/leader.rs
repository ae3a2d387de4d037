//! Leader election on a fake Lease API with paused tokio time: the fake keeps one Lease with
//! a real `resourceVersion` (stale writes get 409), can fail or hang every call, and serves
//! any number of electors, so the loops run as they would against an API server.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use kube::Client;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::fixtures::*;
use crate::leader::{LeaderElector, LeaseConfig};
use crate::Error;

const LEASE: Duration = Duration::from_secs(15);
const RETRY: Duration = Duration::from_secs(2);

/// How the fake answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Serve,
    /// Every call gets 500.
    Fail,
    /// No call is ever answered.
    Hang,
}

struct Store {
    lease: Option<Value>,
    version: u64,
    mode: Mode,
    /// When the last write was accepted.
    last_write: Option<Instant>,
    /// Unanswered calls in `Hang` mode (kept so the client keeps waiting).
    hung: Vec<tower_test::mock::SendResponse<Response<Body>>>,
}

#[derive(Clone)]
struct FakeLeases(Arc<Mutex<Store>>);

impl FakeLeases {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(Store {
            lease: None,
            version: 0,
            mode: Mode::Serve,
            last_write: None,
            hung: Vec::new(),
        })))
    }

    /// A client whose requests this fake answers.
    fn client(&self) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let store = self.0.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let method = request.method().clone();
                let path = request.uri().path().to_string();
                let bytes = request.into_body().collect_bytes().await.expect("body");
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let mut s = store.lock();
                let (code, reply) = match s.mode {
                    Mode::Hang => {
                        s.hung.push(respond);
                        continue;
                    }
                    Mode::Fail => (500, status(500, "InternalError")),
                    Mode::Serve => s.answer(&method, &path, body),
                };
                let response = Response::builder()
                    .status(StatusCode::from_u16(code).expect("status"))
                    .body(Body::from(serde_json::to_vec(&reply).expect("json")))
                    .expect("response");
                respond.send_response(response);
            }
        });
        Client::new(service, NS)
    }

    fn set_mode(&self, mode: Mode) {
        self.0.lock().mode = mode;
    }

    fn spec(&self) -> Value {
        let s = self.0.lock();
        s.lease
            .as_ref()
            .map(|l| l["spec"].clone())
            .unwrap_or_default()
    }

    fn holder(&self) -> Option<String> {
        self.spec()["holderIdentity"].as_str().map(str::to_string)
    }

    fn version(&self) -> u64 {
        self.0.lock().version
    }

    fn last_write(&self) -> Instant {
        self.0.lock().last_write.expect("a write")
    }

    /// Writes the lease as another replica would.
    fn put(&self, spec: Value) {
        let mut s = self.0.lock();
        s.version += 1;
        s.last_write = Some(Instant::now());
        s.lease = Some(
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "switchyard-operator", "namespace": NS,
                         "resourceVersion": s.version.to_string()},
            "spec": spec}),
        );
    }
}

impl Store {
    fn answer(&mut self, method: &Method, path: &str, mut body: Value) -> (u16, Value) {
        let named = path.ends_with("/leases/switchyard-operator");
        match (method.as_str(), named, &self.lease) {
            ("GET", true, Some(lease)) => (200, lease.clone()),
            ("GET", true, None) => (404, status(404, "NotFound")),
            ("POST", false, Some(_)) => (409, status(409, "AlreadyExists")),
            ("POST", false, None) => self.store(body),
            ("PUT", true, Some(lease)) => {
                if body["metadata"]["resourceVersion"] != lease["metadata"]["resourceVersion"] {
                    return (409, status(409, "Conflict"));
                }
                body["metadata"]["resourceVersion"] = Value::Null;
                self.store(body)
            }
            _ => panic!("unexpected {method} {path}"),
        }
    }

    fn store(&mut self, mut lease: Value) -> (u16, Value) {
        self.version += 1;
        lease["metadata"]["resourceVersion"] = json!(self.version.to_string());
        self.lease = Some(lease.clone());
        self.last_write = Some(Instant::now());
        (200, lease)
    }
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": reason, "reason": reason, "code": code})
}

fn elector(fake: &FakeLeases, identity: &str) -> LeaderElector {
    let config = LeaseConfig {
        identity: identity.to_string(),
        namespace: NS.to_string(),
        ..LeaseConfig::default()
    };
    config.validate().expect("valid config");
    LeaderElector::new(fake.client(), config)
}

/// A lease held by `holder` as another replica (with its own clock) would write it.
fn foreign(holder: &str, renewed: &str) -> Value {
    json!({"holderIdentity": holder, "leaseDurationSeconds": 15, "acquireTime": renewed,
           "renewTime": renewed, "leaseTransitions": 3})
}

/// Waits (in paused time, so instantly) for a task that must finish within `limit`.
async fn within<T>(limit: Duration, task: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(limit, task)
        .await
        .expect("did not finish in time")
        .expect("task panicked")
}

#[test]
fn the_config_must_order_retry_deadline_and_duration() {
    assert!(LeaseConfig::default().validate().is_ok());
    let bad = LeaseConfig {
        renew_deadline: LEASE,
        ..LeaseConfig::default()
    };
    assert!(
        bad.validate().is_err(),
        "deadline must be shorter than the lease"
    );
    let bad = LeaseConfig {
        retry_period: Duration::from_secs(10),
        ..LeaseConfig::default()
    };
    assert!(
        bad.validate().is_err(),
        "retry must be shorter than the deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn acquires_a_free_lease_and_keeps_renewing_it() {
    let fake = FakeLeases::new();
    let a = Arc::new(elector(&fake, "op-a"));
    let since = a.acquire().await;
    assert_eq!(fake.holder().as_deref(), Some("op-a"));
    assert_eq!(fake.spec()["leaseTransitions"], 0);
    assert_eq!(fake.spec()["leaseDurationSeconds"], 15);
    let version = fake.version();
    let renewing = tokio::spawn({
        let a = a.clone();
        async move { a.keep_renewing(since).await }
    });
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!renewing.is_finished(), "a healthy leader keeps the lease");
    assert_eq!(fake.holder().as_deref(), Some("op-a"));
    assert!(
        fake.version() >= version + 20,
        "renewed every retry period: {} writes",
        fake.version() - version
    );
    assert_eq!(
        fake.spec()["leaseTransitions"],
        0,
        "renewal is no transition"
    );
    renewing.abort();
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_lease_was_taken_stops() {
    let fake = FakeLeases::new();
    let a = Arc::new(elector(&fake, "op-a"));
    let since = a.acquire().await;
    let renewing = tokio::spawn({
        let a = a.clone();
        async move { a.keep_renewing(since).await }
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    fake.put(foreign("op-x", "2026-01-01T00:00:00Z"));
    let err = within(LEASE, renewing).await;
    assert!(matches!(err, Error::LostLease(_)), "{err}");
    assert_eq!(
        fake.holder().as_deref(),
        Some("op-x"),
        "no write after losing"
    );
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_cannot_renew_steps_down_before_the_lease_expires() {
    for mode in [Mode::Fail, Mode::Hang] {
        let fake = FakeLeases::new();
        let a = Arc::new(elector(&fake, "op-a"));
        let since = a.acquire().await;
        let renewing = tokio::spawn({
            let a = a.clone();
            async move { a.keep_renewing(since).await }
        });
        tokio::time::sleep(Duration::from_secs(7)).await;
        fake.set_mode(mode);
        let err = within(Duration::from_secs(60), renewing).await;
        assert!(matches!(err, Error::RenewDeadline(_)), "{mode:?}: {err}");
        // The safety property, on the paused (deterministic) clock: the leader stopped before
        // a standby could have seen the lease unchanged for a whole lease duration.
        let quiet = Instant::now() - fake.last_write();
        assert!(
            quiet < LEASE,
            "{mode:?}: stopped {quiet:?} after its last renewal"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn release_on_shutdown_hands_the_lease_to_a_standby_at_once() {
    let fake = FakeLeases::new();
    let a = elector(&fake, "op-a");
    a.acquire().await;
    let b = Arc::new(elector(&fake, "op-b"));
    let standby = tokio::spawn({
        let b = b.clone();
        async move { b.acquire().await }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!standby.is_finished(), "the lease is live");
    a.release().await.expect("release");
    let released = Instant::now();
    within(LEASE, standby).await;
    assert_eq!(fake.holder().as_deref(), Some("op-b"));
    assert_eq!(fake.spec()["leaseTransitions"], 1);
    assert!(
        Instant::now() - released <= RETRY,
        "taken at the standby's next retry, not after expiry"
    );
}

#[tokio::test(start_paused = true)]
async fn a_standby_judges_expiry_by_its_own_clock_not_the_holders_timestamps() {
    // The holder's clock is years behind: its renewTime looks long expired, but it keeps
    // changing, so the lease is live.
    let fake = FakeLeases::new();
    fake.put(foreign("op-a", "2001-01-01T00:00:00Z"));
    let b = Arc::new(elector(&fake, "op-b"));
    let standby = tokio::spawn({
        let b = b.clone();
        async move { b.acquire().await }
    });
    let renewer = tokio::spawn({
        let fake = fake.clone();
        async move {
            for i in 1.. {
                tokio::time::sleep(RETRY).await;
                fake.put(foreign(
                    "op-a",
                    &format!("2001-01-01T00:{:02}:{:02}Z", i / 60 % 60, i % 60),
                ));
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(
        !standby.is_finished(),
        "a renewed lease is never taken over"
    );
    assert_eq!(fake.holder().as_deref(), Some("op-a"));

    // The holder dies without releasing: the lease stops changing.
    renewer.abort();
    let last_renewal = fake.last_write();
    within(Duration::from_secs(60), standby).await;
    assert_eq!(fake.holder().as_deref(), Some("op-b"));
    assert_eq!(fake.spec()["leaseTransitions"], 4);
    assert!(
        Instant::now() - last_renewal >= LEASE,
        "taken over only after a whole lease duration without change"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lease_stamped_in_the_future_still_expires() {
    // The dead holder's clock was ahead; comparing its renewTime with ours would wait forever.
    let fake = FakeLeases::new();
    fake.put(foreign("op-a", "2099-01-01T00:00:00Z"));
    let b = Arc::new(elector(&fake, "op-b"));
    let started = Instant::now();
    let standby = tokio::spawn({
        let b = b.clone();
        async move { b.acquire().await }
    });
    within(Duration::from_secs(60), standby).await;
    assert_eq!(fake.holder().as_deref(), Some("op-b"));
    assert!(Instant::now() - started >= LEASE);
}

#[tokio::test(start_paused = true)]
async fn two_standbys_racing_for_an_expired_lease_elect_one() {
    let fake = FakeLeases::new();
    fake.put(foreign("op-a", "2026-01-01T00:00:00Z"));
    let b = Arc::new(elector(&fake, "op-b"));
    let c = Arc::new(elector(&fake, "op-c"));
    // Both have watched the lease sit unchanged for longer than its duration.
    assert!(!b.try_acquire_or_renew(Timestamp::now()).await.unwrap());
    assert!(!c.try_acquire_or_renew(Timestamp::now()).await.unwrap());
    tokio::time::sleep(LEASE + Duration::from_secs(1)).await;
    let (won_b, won_c) = tokio::join!(
        b.try_acquire_or_renew(Timestamp::now()),
        c.try_acquire_or_renew(Timestamp::now())
    );
    let (won_b, won_c) = (won_b.unwrap(), won_c.unwrap());
    assert!(won_b ^ won_c, "exactly one wins: b={won_b} c={won_c}");
    let winner = if won_b { "op-b" } else { "op-c" };
    assert_eq!(fake.holder().as_deref(), Some(winner));
}

#[tokio::test]
async fn creates_a_missing_lease_with_a_scripted_api() {
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let e = LeaderElector::new(
        ctx.client.clone(),
        LeaseConfig {
            identity: "op-a".to_string(),
            ..LeaseConfig::default()
        },
    );
    let handle = api.run(vec![Call::GetLease(None), Call::CreateLease]);
    assert!(e.try_acquire_or_renew(Timestamp::now()).await.unwrap());
    let calls = finish(handle).await;
    assert_eq!(calls[1].body["spec"]["holderIdentity"], "op-a");
    assert_eq!(calls[1].body["spec"]["leaseTransitions"], 0);
}
