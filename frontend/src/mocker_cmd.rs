//! `switchyard mocker`: the simulated worker, optionally registered in etcd and publishing its
//! KV-cache events and load snapshots on NATS (see `docs/discovery.md`, `docs/events.md`).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use parking_lot::Mutex;
use switchyard_kv::{BlockHash, KvEvent};
use switchyard_mocker::{EngineDialect, MockerArgs, MockerHooks};
use switchyard_runtime::{Engine, InstanceSpec};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// How often the mocker publishes a load snapshot (frontends forget one after ~5 s).
const LOAD_INTERVAL: Duration = Duration::from_millis(500);
/// Upper bound on deregistration at shutdown: an unreachable etcd must not block exit (the
/// lease then expires on its own).
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(3);

/// Flags of `switchyard mocker`: the simulated worker plus its distributed-runtime wiring.
#[derive(Debug, Clone, Args)]
pub struct MockerCmd {
    #[command(flatten)]
    pub mocker: MockerArgs,

    /// Register in etcd (`http://host:port`, comma-separated for several endpoints) under a
    /// lease that is kept alive while the mocker runs and revoked on SIGTERM.
    #[arg(long, env = "SWITCHYARD_MOCKER_ETCD", value_name = "URL")]
    pub etcd: Option<String>,

    /// etcd key prefix to register under (must start and end with `/`; the frontend's
    /// `--etcd-prefix`).
    #[arg(long = "etcd-prefix", default_value = switchyard_etcd::keys::DEFAULT_PREFIX, value_name = "PREFIX")]
    pub etcd_prefix: String,

    /// etcd lease TTL in seconds: a killed mocker disappears from discovery after this long.
    #[arg(long = "etcd-ttl", default_value_t = 10, value_name = "SECS")]
    pub etcd_ttl: u64,

    /// Publish KV-cache events and load snapshots to this NATS server (`nats://host:port`).
    #[arg(long, env = "SWITCHYARD_MOCKER_NATS", value_name = "URL")]
    pub nats: Option<String>,

    /// Instance id used in etcd, on NATS subjects and in `x-switchyard-instance`
    /// [default: the listen address, host:port].
    #[arg(long = "instance-id", value_name = "ID")]
    pub instance_id: Option<String>,

    /// Base URL frontends use to reach this mocker [default: http://<listen address>].
    #[arg(long = "advertise-url", value_name = "URL")]
    pub advertise_url: Option<String>,
}

impl MockerCmd {
    fn spec(&self, listen: std::net::SocketAddr) -> InstanceSpec {
        let id = self
            .instance_id
            .clone()
            .unwrap_or_else(|| listen.to_string());
        let url = self
            .advertise_url
            .clone()
            .unwrap_or_else(|| format!("http://{listen}"));
        let mut spec = InstanceSpec::new(id, self.mocker.model.clone(), url);
        spec.apis = self.mocker.native.names();
        // A mocker speaking an engine's dialect registers as that engine, so frontends
        // scrape it the way they would scrape the real one.
        spec.engine = match self.mocker.engine {
            EngineDialect::Mocker => Engine::Mocker,
            EngineDialect::Vllm => Engine::Vllm,
            EngineDialect::Sglang => Engine::Sglang,
            EngineDialect::Trtllm => Engine::Trtllm,
            EngineDialect::Llamacpp => Engine::Llamacpp,
        };
        // Its disaggregation role too; an SGLang-protocol prefill is pulled from on its own
        // listener, which is therefore its bootstrap port.
        use switchyard_mocker::pd::args::Role as MockerRole;
        (spec.role, spec.bootstrap_port) = match self.mocker.pd.role {
            MockerRole::Both => (switchyard_runtime::Role::Both, None),
            MockerRole::Prefill => (switchyard_runtime::Role::Prefill, Some(listen.port())),
            MockerRole::Decode => (switchyard_runtime::Role::Decode, None),
        };
        spec
    }
}

/// Runs the mocker until `shutdown` resolves. With `--etcd` it deregisters first (frontends
/// stop routing to it at once), then lets in-flight requests finish.
pub async fn run(cmd: MockerCmd, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    cmd.mocker.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = TcpListener::bind(cmd.mocker.listen).await?;
    // With port 0 the real port is only known now; the id and URL must use it.
    let spec = cmd.spec(listener.local_addr()?);

    let mut hooks = MockerHooks::default();
    let mut forwarder = None;
    let mut load_task = None;
    let mut publisher_guard = None;
    if let Some(url) = &cmd.nats {
        let conn = switchyard_nats::connect(url, &format!("mocker {}", spec.id))
            .await
            .map_err(|e| anyhow::anyhow!("--nats {}: {e}", switchyard_nats::redact_url(url)))?;
        // The publisher answers dump requests from a mirror of the cache's block set. The
        // mirror is updated *before* the event is handed to the publisher, so a dump taken at
        // seq N contains every event up to N (and maybe later ones, which are idempotent).
        let mirror: Arc<Mutex<HashSet<BlockHash>>> = Arc::default();
        let dump = {
            let mirror = Arc::clone(&mirror);
            Arc::new(move || mirror.lock().iter().copied().collect::<Vec<_>>())
        };
        let publisher = Arc::new(
            switchyard_nats::Publisher::start(&conn, spec.id.clone(), dump)
                .await
                .map_err(|e| anyhow::anyhow!("NATS publisher: {e}"))?,
        );
        let (tx, rx) = mpsc::unbounded_channel();
        hooks = MockerHooks::with_kv_events(tx);
        let probe = hooks.load_probe();
        load_task = Some(publisher.publish_load_every(LOAD_INTERVAL, move || {
            let s = probe.snapshot();
            switchyard_nats::LoadSnapshot {
                running: u32::try_from(s.running).unwrap_or(u32::MAX),
                waiting: u32::try_from(s.waiting).unwrap_or(u32::MAX),
                kv_usage: s.kv_usage as f32,
            }
        }));
        forwarder = Some(tokio::spawn(forward_events(
            rx,
            mirror,
            Arc::clone(&publisher),
        )));
        publisher_guard = Some((publisher, conn));
    }

    let registration = match &cmd.etcd {
        Some(url) => {
            let mut cfg = switchyard_etcd::EtcdConfig::new(url);
            cfg.prefix.clone_from(&cmd.etcd_prefix);
            let ttl = Duration::from_secs(cmd.etcd_ttl.max(2));
            let registration = switchyard_etcd::Registration::spawn(cfg, spec.clone(), ttl)
                .map_err(|e| anyhow::anyhow!("--etcd {url}: {e}"))?;
            tracing::info!(id = %spec.id, key = registration.key(), "registering in etcd");
            Some(registration)
        }
        None => None,
    };

    // The mocker's own shutdown fires only after deregistration, so no frontend routes a new
    // request to a mocker that has stopped accepting.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mocker = tokio::spawn(switchyard_mocker::run_with(
        cmd.mocker.clone(),
        listener,
        async move {
            let _ = stop_rx.await;
        },
        hooks,
    ));
    tokio::pin!(mocker);
    let early = tokio::select! {
        () = shutdown => None,
        r = &mut mocker => Some(r),
    };
    if let Some(registration) = registration {
        match tokio::time::timeout(DEREGISTER_TIMEOUT, registration.deregister()).await {
            Ok(Ok(())) => tracing::info!(id = %spec.id, "deregistered from etcd"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "deregistration failed; the lease expires on its own")
            }
            Err(_) => tracing::warn!("deregistration timed out; the lease expires on its own"),
        }
    }
    let result = match early {
        Some(r) => r,
        None => {
            let _ = stop_tx.send(());
            mocker.await
        }
    };
    if let Some(t) = load_task {
        t.abort();
    }
    if let Some(t) = forwarder {
        t.abort();
    }
    drop(publisher_guard);
    result
        .map_err(|e| anyhow::anyhow!("mocker task: {e}"))?
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Mocker KV events → mirror set → NATS, batching whatever is queued.
async fn forward_events(
    mut rx: mpsc::UnboundedReceiver<KvEvent>,
    mirror: Arc<Mutex<HashSet<BlockHash>>>,
    publisher: Arc<switchyard_nats::Publisher>,
) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 512).await > 0 {
        {
            let mut set = mirror.lock();
            for event in &batch {
                match event {
                    KvEvent::Stored { blocks, .. } => set.extend(blocks.iter().copied()),
                    KvEvent::Removed { blocks } => blocks.iter().for_each(|b| {
                        set.remove(b);
                    }),
                    KvEvent::Cleared => set.clear(),
                }
            }
        }
        publisher.publish_kv_batch(std::mem::take(&mut batch));
    }
}
