//! Two frontends in one process keep apart: each has its own metrics registry, `kv` router
//! and NATS slot (no process globals; issue 10 item 9).

use std::net::SocketAddr;

use switchyard_mocker::MockerArgs;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::config::{parse_worker_flag, ServeConfig};

/// One HTTP/1.1 exchange on a fresh connection; the whole response as text.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

async fn frontend(worker: SocketAddr) -> (SocketAddr, oneshot::Sender<()>) {
    let mut config = ServeConfig::default();
    config.routing.default.policy = switchyard_runtime::PolicyName::Kv;
    config
        .workers
        .push(parse_worker_flag(&format!("m=http://{worker}")).unwrap());
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(crate::serve::run(config, listener, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// Polls `/health` until the frontend answers 200 (it serves once its worker is routable).
async fn ready(addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if TcpStream::connect(addr).await.is_ok()
            && http(addr, "GET", "/health", "")
                .await
                .starts_with("HTTP/1.1 200")
        {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{addr} never ready");
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_frontends_in_one_process_count_only_their_own_requests() {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let worker = listener.local_addr().unwrap();
    let mocker = MockerArgs {
        listen: worker,
        model: "m".into(),
        ..MockerArgs::default()
    };
    let (stop_worker, worker_stopped) = oneshot::channel::<()>();
    tokio::spawn(switchyard_mocker::run(mocker, listener, async move {
        let _ = worker_stopped.await;
    }));
    let (a, stop_a) = frontend(worker).await;
    let (b, stop_b) = frontend(worker).await;
    ready(a).await;
    ready(b).await;

    let body = r#"{"model":"m","messages":[{"role":"user","content":"hello"}],"max_tokens":3}"#;
    let answer = http(a, "POST", "/v1/chat/completions", body).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let series = r#"switchyard_requests_total{model="m",route="chat_completions",status="200"} 1"#;
    let metrics_a = http(a, "GET", "/metrics", "").await;
    let metrics_b = http(b, "GET", "/metrics", "").await;
    assert!(metrics_a.contains(series), "{metrics_a}");
    assert!(
        !metrics_b.contains("switchyard_requests_total"),
        "{metrics_b}"
    );
    // Each still reports its own (identical) view of the shared worker.
    for text in [&metrics_a, &metrics_b] {
        assert!(
            text.contains("switchyard_instance_healthy{worker="),
            "{text}"
        );
    }
    for stop in [stop_a, stop_b, stop_worker] {
        let _ = stop.send(());
    }
}

fn app() -> std::sync::Arc<crate::app::App> {
    let registry = std::sync::Arc::new(switchyard_runtime::Registry::default());
    let plugins = crate::plugins::PluginSet::new(Default::default(), Default::default(), None);
    crate::app::App::new(
        ServeConfig::default(),
        registry,
        std::sync::Arc::new(plugins),
    )
    .unwrap()
}

#[tokio::test]
async fn each_app_routes_on_its_own_kv_view() {
    let (a, b) = (app(), app());
    let _events_a = crate::events::start(&a).await.unwrap();
    let _events_b = crate::events::start(&b).await.unwrap();
    let blocks: Vec<switchyard_kv::BlockHash> = (1..=4).collect();
    // Frontend A routed this prefix to w0; only A's approximate index may know it.
    a.kv.current().source.routed("w0", &blocks);
    assert_eq!(a.kv.current().source.overlap(&blocks).get("w0"), 4);
    assert_eq!(b.kv.current().source.overlap(&blocks).get("w0"), 0);
    assert_eq!(b.bus.replicas(), 1, "no NATS: this frontend alone");
}
