//! A minimal TCP load balancer for the rolling-restart test, standing in for kube-proxy plus an
//! endpoint controller: it health-checks each backend's `/ready` every 50 ms (as a Service's
//! readiness-gated endpoints would) and sends each new connection to the next ready backend.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// A running balancer.
pub struct Balancer {
    pub addr: SocketAddr,
    backends: Arc<Vec<Backend>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

struct Backend {
    addr: SocketAddr,
    ready: AtomicBool,
}

impl Balancer {
    pub async fn start(backends: &[u16]) -> Balancer {
        let backends: Arc<Vec<Backend>> = Arc::new(
            backends
                .iter()
                .map(|port| Backend {
                    addr: SocketAddr::from(([127, 0, 0, 1], *port)),
                    ready: AtomicBool::new(false),
                })
                .collect(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let checker = {
            let backends = Arc::clone(&backends);
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_millis(500))
                    .build()
                    .unwrap();
                let mut tick = tokio::time::interval(Duration::from_millis(50));
                loop {
                    tick.tick().await;
                    for b in backends.iter() {
                        let ok = client
                            .get(format!("http://{}/ready", b.addr))
                            .send()
                            .await
                            .is_ok_and(|r| r.status().is_success());
                        b.ready.store(ok, Ordering::SeqCst);
                    }
                }
            })
        };
        let next = Arc::new(AtomicUsize::new(0));
        let shared = Arc::clone(&backends);
        let acceptor = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let n = next.fetch_add(1, Ordering::SeqCst);
                let ready: Vec<SocketAddr> = backends
                    .iter()
                    .filter(|b| b.ready.load(Ordering::SeqCst))
                    .map(|b| b.addr)
                    .collect();
                let Some(target) = (!ready.is_empty()).then(|| ready[n % ready.len()]) else {
                    continue; // no ready backend: the connection is dropped, the client sees it
                };
                tokio::spawn(async move {
                    if let Ok(mut upstream) = TcpStream::connect(target).await {
                        let mut client = client;
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        Balancer {
            addr,
            backends: shared,
            tasks: vec![checker, acceptor],
        }
    }

    /// Backends the last health check found ready.
    pub fn ready_backends(&self) -> usize {
        self.backends
            .iter()
            .filter(|b| b.ready.load(Ordering::SeqCst))
            .count()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.tasks.iter().for_each(tokio::task::JoinHandle::abort);
    }
}
