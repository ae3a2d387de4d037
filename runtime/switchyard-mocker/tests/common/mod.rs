//! A mocker on an ephemeral port and a tiny HTTP/1 client for the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test helpers: failing loudly is the point

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use switchyard_mocker::{LoadProbe, MockerArgs, MockerHooks};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Mocker {
    pub addr: SocketAddr,
    pub probe: LoadProbe,
    stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<switchyard_mocker::Result<()>>,
}

impl Mocker {
    pub async fn start(args: MockerArgs) -> Self {
        Self::start_with(args, MockerHooks::default()).await
    }

    pub async fn start_with(args: MockerArgs, hooks: MockerHooks) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let probe = hooks.load_probe();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(switchyard_mocker::run_with(args, listener, shutdown, hooks));
        Self {
            addr,
            probe,
            stop: Some(stop),
            task,
        }
    }

    /// Starts a graceful shutdown.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub async fn post(&self, path: &str, body: &str) -> (StatusCode, String) {
        let resp = self.send("POST", path, body).await;
        let status = resp.status();
        (status, read_all(resp).await)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let resp = self.send("GET", path, "").await;
        let status = resp.status();
        (status, read_all(resp).await)
    }

    /// Sends a request on a fresh connection and returns the response head (body unread).
    pub async fn send(&self, method: &str, path: &str, body: &str) -> http::Response<Incoming> {
        send_to(self.addr, method, path, body.to_owned()).await
    }

    /// Polls the mocker's /metrics until `name` reaches `value` (or fails after 5 s).
    pub async fn wait_metric(&self, name: &str, value: f64) {
        for _ in 0..500 {
            if self.metric(name).await == value {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!(
            "{name} never reached {value}: {}",
            self.get("/metrics").await.1
        );
    }

    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics").await.1;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(f64::NAN)
    }
}

/// Sends a request on a fresh connection and returns the response head (body unread).
pub async fn send_to(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: String,
) -> http::Response<Incoming> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "mocker")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    sender.send_request(req).await.unwrap()
}

pub async fn read_all(resp: http::Response<Incoming>) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The `data:` payloads of an SSE body.
pub fn sse_events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}
