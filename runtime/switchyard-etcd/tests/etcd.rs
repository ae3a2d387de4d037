//! Registration, discovery and the sidecar against a real etcd process.
// Test helpers outside `#[test]` fns: a failed setup step should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_etcd::{keys, run_sidecar, spawn_discovery, Registration, SidecarConfig};
use switchyard_runtime::lora::AdapterSpec;
use switchyard_runtime::{
    DiscoveryEvent, DiscoveryState, InstanceSpec, RejectReason as Reason, WorkerApi,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use support::Etcd;

/// Generous bound for distributed state to settle; never a performance assertion.
const SETTLE: Duration = Duration::from_secs(20);

/// Applies discovery events the way the frontend registry does, and keeps the log.
struct View {
    rx: UnboundedReceiver<DiscoveryEvent>,
    instances: BTreeMap<String, InstanceSpec>,
    state: Option<DiscoveryState>,
    rejected: Vec<Reason>,
    adapters: Vec<AdapterSpec>,
    log: Vec<DiscoveryEvent>,
}

impl View {
    fn new(rx: UnboundedReceiver<DiscoveryEvent>) -> Self {
        Self {
            rx,
            instances: BTreeMap::new(),
            state: None,
            rejected: Vec::new(),
            adapters: Vec::new(),
            log: Vec::new(),
        }
    }

    fn apply(&mut self, ev: DiscoveryEvent) {
        match &ev {
            DiscoveryEvent::Snapshot(all) => {
                self.instances = all.iter().map(|s| (s.id.clone(), s.clone())).collect()
            }
            DiscoveryEvent::Upsert(s) => {
                self.instances.insert(s.id.clone(), (**s).clone());
            }
            DiscoveryEvent::Remove { id } => {
                self.instances.remove(id);
            }
            DiscoveryEvent::State(s) => self.state = Some(*s),
            DiscoveryEvent::Rejected(r) => self.rejected.push(*r),
            // Declared models come from Kubernetes discovery only.
            DiscoveryEvent::Models(_) => {}
            DiscoveryEvent::Adapters(a) => self.adapters = a.clone(),
        }
        self.log.push(ev);
    }

    /// Applies events until `done` holds; panics with the log after `within`.
    async fn until(&mut self, within: Duration, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + within;
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(ev)) => self.apply(ev),
                Ok(None) => panic!("discovery ended while waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}; events: {:#?}", self.log),
            }
        }
    }

    /// Collects whatever arrives during `d`.
    async fn drain_for(&mut self, d: Duration) -> Vec<DiscoveryEvent> {
        let start = self.log.len();
        let deadline = Instant::now() + d;
        while let Ok(Some(ev)) = tokio::time::timeout_at(deadline.into(), self.rx.recv()).await {
            self.apply(ev);
        }
        self.log[start..].to_vec()
    }
}

fn spec(id: &str) -> InstanceSpec {
    InstanceSpec::new(id, "org/model", format!("http://127.0.0.1:9/{id}"))
}

fn discover(etcd: &Etcd) -> View {
    // `RUST_LOG=switchyard_etcd=debug` shows the backend's reasoning when a test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let (tx, rx) = unbounded_channel();
    spawn_discovery(support::config(etcd), tx);
    View::new(rx)
}

#[tokio::test]
async fn registration_appears_and_deregister_removes_it_at_once() {
    let etcd = Etcd::start().await.unwrap();
    let mut view = discover(&etcd);
    view.until(SETTLE, "initial sync", |v| {
        v.state == Some(DiscoveryState::Connected)
    })
    .await;

    // A long TTL: if the key vanishes quickly it was the revoke, not expiry.
    let mut reg =
        Registration::spawn(support::config(&etcd), spec("w1"), Duration::from_secs(60)).unwrap();
    reg.wait_registered(SETTLE).await.unwrap();
    view.until(SETTLE, "w1 upsert", |v| v.instances.contains_key("w1"))
        .await;
    assert_eq!(view.instances["w1"].model, "org/model");

    reg.deregister().await.unwrap();
    view.until(Duration::from_secs(10), "w1 removed by revoke", |v| {
        !v.instances.contains_key("w1")
    })
    .await;
    assert!(view
        .log
        .iter()
        .any(|e| matches!(e, DiscoveryEvent::Remove { id } if id == "w1")));
}

#[tokio::test]
async fn a_registrant_that_stops_renewing_expires_after_the_ttl() {
    let etcd = Etcd::start().await.unwrap();
    let mut view = discover(&etcd);
    let mut reg =
        Registration::spawn(support::config(&etcd), spec("w2"), Duration::from_secs(2)).unwrap();
    reg.wait_registered(SETTLE).await.unwrap();
    view.until(SETTLE, "w2 present", |v| v.instances.contains_key("w2"))
        .await;

    // Keep-alive runs on a TTL/3 period: after several TTLs it must still be there.
    let events = view.drain_for(Duration::from_secs(5)).await;
    assert!(
        view.instances.contains_key("w2"),
        "expired while renewed: {events:?}"
    );

    // Dropping the handle stops keep-alive without revoking: what a kill -9 leaves behind.
    drop(reg);
    view.until(SETTLE, "w2 expired", |v| !v.instances.contains_key("w2"))
        .await;
}

#[tokio::test]
async fn etcd_loss_is_fail_static_and_resyncs_on_return() {
    let mut etcd = Etcd::start().await.unwrap();
    // Written without a lease, so only discovery's behaviour is under test here.
    let mut client = etcd_client::Client::connect([etcd.url()], None)
        .await
        .unwrap();
    let key = keys::instance_key(keys::DEFAULT_PREFIX, "org/model", "static-1");
    client
        .put(key, serde_json::to_vec(&spec("static-1")).unwrap(), None)
        .await
        .unwrap();

    let mut view = discover(&etcd);
    view.until(SETTLE, "initial sync", |v| {
        v.state == Some(DiscoveryState::Connected) && v.instances.contains_key("static-1")
    })
    .await;

    etcd.kill();
    let mark = view.log.len();
    view.until(SETTLE, "Disconnected", |v| {
        v.state == Some(DiscoveryState::Disconnected)
    })
    .await;
    // While etcd is gone, nothing destructive may arrive.
    view.drain_for(Duration::from_secs(2)).await;
    let during: Vec<_> = view.log[mark..].to_vec();
    assert!(
        during
            .iter()
            .all(|e| matches!(e, DiscoveryEvent::State(DiscoveryState::Disconnected))),
        "only one Disconnected expected during the outage: {during:?}"
    );
    assert_eq!(during.len(), 1, "{during:?}");
    assert!(view.instances.contains_key("static-1"), "fail-static");

    etcd.restart().await.unwrap();
    let mark = view.log.len();
    view.until(SETTLE, "reconnect", |v| {
        v.state == Some(DiscoveryState::Connected)
    })
    .await;
    let after = &view.log[mark..];
    assert!(
        matches!(&after[0], DiscoveryEvent::Snapshot(s) if s.iter().any(|i| i.id == "static-1")),
        "resync must start with a full snapshot: {after:?}"
    );
}

#[tokio::test]
async fn registration_comes_back_after_etcd_loses_its_data() {
    let mut etcd = Etcd::start().await.unwrap();
    let mut reg =
        Registration::spawn(support::config(&etcd), spec("w3"), Duration::from_secs(3)).unwrap();
    reg.wait_registered(SETTLE).await.unwrap();

    etcd.restart_wiped().await.unwrap();
    let mut view = discover(&etcd);
    view.until(SETTLE, "w3 re-registered on the new etcd", |v| {
        v.instances.contains_key("w3")
    })
    .await;
    reg.deregister().await.unwrap();
    view.until(SETTLE, "w3 deregistered", |v| {
        !v.instances.contains_key("w3")
    })
    .await;
}

/// A health endpoint whose status the test sets.
async fn health_server(status: Arc<AtomicU16>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let status = status.load(Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = sock.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/health")
}

#[tokio::test]
async fn sidecar_follows_worker_health_and_deregisters_on_shutdown() {
    let etcd = Etcd::start().await.unwrap();
    let mut view = discover(&etcd);
    let status = Arc::new(AtomicU16::new(200));
    let health = health_server(status.clone()).await;

    let mut cfg = SidecarConfig::new(support::config(&etcd), spec("side-1"), health);
    cfg.interval = Duration::from_millis(200);
    cfg.unhealthy_after = 1;
    cfg.ttl = Duration::from_secs(60);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sidecar = tokio::spawn(run_sidecar(cfg, async {
        let _ = stopped.await;
    }));

    view.until(SETTLE, "registered while healthy", |v| {
        v.instances.contains_key("side-1")
    })
    .await;
    status.store(503, Ordering::SeqCst);
    view.until(SETTLE, "withdrawn while unhealthy", |v| {
        !v.instances.contains_key("side-1")
    })
    .await;
    status.store(200, Ordering::SeqCst);
    view.until(SETTLE, "back when healthy", |v| {
        v.instances.contains_key("side-1")
    })
    .await;

    stop.send(()).unwrap();
    tokio::time::timeout(SETTLE, sidecar)
        .await
        .expect("sidecar stops")
        .unwrap()
        .unwrap();
    view.until(Duration::from_secs(10), "deregistered on shutdown", |v| {
        !v.instances.contains_key("side-1")
    })
    .await;
}

/// Puts raw bytes under the instance prefix, as anyone with write access to etcd could.
async fn put_raw(etcd: &Etcd, id: &str, value: Vec<u8>) {
    let mut client = etcd_client::Client::connect([etcd.url()], None)
        .await
        .unwrap();
    let key = keys::instance_key(keys::DEFAULT_PREFIX, "org/model", id);
    client.put(key, value, None).await.unwrap();
}

fn path_template(id: &str) -> Vec<u8> {
    let mut bad = spec(id);
    bad.api = WorkerApi::Completions;
    bad.chat_template = Some("/proc/self/environ".into());
    serde_json::to_vec(&bad).unwrap()
}

#[tokio::test]
async fn bad_entries_are_rejected_beside_good_ones_in_the_list_and_the_watch() {
    let etcd = Etcd::start().await.unwrap();
    put_raw(
        &etcd,
        "good-1",
        serde_json::to_vec(&spec("good-1")).unwrap(),
    )
    .await;
    put_raw(&etcd, "tpl-1", path_template("tpl-1")).await;
    put_raw(&etcd, "junk-1", b"{not json".to_vec()).await;
    let mut view = discover(&etcd);
    view.until(SETTLE, "initial sync", |v| {
        v.state == Some(DiscoveryState::Connected)
    })
    .await;
    assert_eq!(view.instances.keys().collect::<Vec<_>>(), ["good-1"]);
    let mut listed = view.rejected.clone();
    listed.sort();
    assert_eq!(listed, [Reason::Parse, Reason::ChatTemplate]);

    // The same through the watch, and a good key turned bad stops being routed.
    let mut ftp = spec("ftp-1");
    ftp.url = "ftp://127.0.0.1/".into();
    put_raw(&etcd, "ftp-1", serde_json::to_vec(&ftp).unwrap()).await;
    put_raw(
        &etcd,
        "good-2",
        serde_json::to_vec(&spec("good-2")).unwrap(),
    )
    .await;
    put_raw(&etcd, "good-1", path_template("good-1")).await;
    view.until(SETTLE, "good-2 in, good-1 out", |v| {
        v.instances.contains_key("good-2") && !v.instances.contains_key("good-1")
    })
    .await;
    assert_eq!(view.instances.keys().collect::<Vec<_>>(), ["good-2"]);
    assert_eq!(
        view.rejected[2..],
        [Reason::Url, Reason::ChatTemplate],
        "{:?}",
        view.log
    );
}

fn adapter(name: &str, base: &str) -> AdapterSpec {
    AdapterSpec {
        name: name.into(),
        base_model: base.into(),
        source: format!("s3://adapters/{name}"),
        on_demand: false,
    }
}

/// Puts raw bytes under an adapter key of `base`.
async fn put_adapter(etcd: &Etcd, base: &str, name: &str, value: Vec<u8>) -> String {
    let mut client = etcd_client::Client::connect([etcd.url()], None)
        .await
        .unwrap();
    let key = keys::adapter_key(keys::DEFAULT_PREFIX, base, name);
    client.put(key.as_str(), value, None).await.unwrap();
    key
}

#[tokio::test]
async fn adapters_are_listed_watched_checked_and_removed_beside_instances() {
    let etcd = Etcd::start().await.unwrap();
    let json = |a: &AdapterSpec| serde_json::to_vec(a).unwrap();
    put_adapter(
        &etcd,
        "org/model",
        "sql",
        json(&adapter("sql", "org/model")),
    )
    .await;
    // A key that names another model's adapter than its value declares, and junk.
    put_adapter(&etcd, "org/model", "chat", json(&adapter("chat", "other"))).await;
    put_adapter(&etcd, "org/model", "junk", b"{\"name\":1}".to_vec()).await;
    put_raw(&etcd, "w1", serde_json::to_vec(&spec("w1")).unwrap()).await;
    let mut view = discover(&etcd);
    view.until(SETTLE, "initial sync", |v| {
        v.state == Some(DiscoveryState::Connected)
    })
    .await;
    assert_eq!(view.adapters, [adapter("sql", "org/model")]);
    assert_eq!(
        view.instances.keys().collect::<Vec<_>>(),
        ["w1"],
        "adapter keys are not instances"
    );
    let mut rejected = view.rejected.clone();
    rejected.sort();
    assert_eq!(rejected, [Reason::Parse, Reason::Adapter]);

    // Live: a new adapter appears, a control character in `source` is refused, and a delete
    // takes the adapter out.
    let mut code = adapter("code", "org/model");
    code.on_demand = true;
    let code_key = put_adapter(&etcd, "org/model", "code", json(&code)).await;
    view.until(SETTLE, "code added", |v| v.adapters.len() == 2)
        .await;
    assert_eq!(view.adapters, [code.clone(), adapter("sql", "org/model")]);
    let mut bad = adapter("sql", "org/model");
    bad.source = "s3://x\n".into();
    put_adapter(&etcd, "org/model", "sql", json(&bad)).await;
    view.until(SETTLE, "sql turned bad", |v| v.adapters.len() == 1)
        .await;
    assert_eq!(view.rejected.last(), Some(&Reason::Adapter));
    let mut client = etcd_client::Client::connect([etcd.url()], None)
        .await
        .unwrap();
    client.delete(code_key, None).await.unwrap();
    view.until(SETTLE, "code deleted", |v| v.adapters.is_empty())
        .await;
    assert_eq!(view.instances.keys().collect::<Vec<_>>(), ["w1"]);
}
