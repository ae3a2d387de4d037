//! `switchyard register`, the etcd sidecar, as a real process: it registers a worker that
//! cannot register itself while the worker's `/health` answers, withdraws it when health
//! fails, registers it again when health returns, and deregisters at once on SIGTERM.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use switchyard_tests::services::Etcd;
use switchyard_tests::{mocker, Proc};

use crate::distributed::{ask, etcd_frontend, eventually, instance_count};
use crate::MODEL;

/// The sidecar for `worker` under `id`: checks every 200 ms, one failure withdraws, and a
/// 30 s lease so that anything quicker than 30 s was the sidecar acting, not expiry.
fn sidecar(etcd: &Etcd, id: &str, worker: &Proc) -> Proc {
    let args: Vec<String> = [
        "register",
        "--etcd",
        &etcd.url(),
        "--id",
        id,
        "--model",
        MODEL,
        "--url",
        &worker.url(),
        "--engine",
        "mocker",
        "--interval",
        "200ms",
        "--ttl",
        "30s",
        "--unhealthy-after",
        "1",
    ]
    .map(String::from)
    .to_vec();
    Proc::spawn("register", &args, 0).unwrap()
}

#[tokio::test]
async fn register_sidecar_follows_worker_health_and_deregisters_on_sigterm() {
    let etcd = Etcd::start().await.unwrap();
    // A plain mocker: no `--etcd`, only the sidecar registers it.
    let worker = mocker(&[]).await.unwrap();
    let fe = etcd_frontend(&etcd, &[]).await;
    let mut side = sidecar(&etcd, "side-1", &worker);

    eventually(
        Duration::from_secs(20),
        "sidecar registered the worker",
        || async { (ask(&fe, "hello").await == (200, Some("side-1".to_owned()))).then_some(()) },
    )
    .await;

    // A frozen worker stops answering /health: the sidecar withdraws the registration long
    // before the 30 s lease could expire.
    let t0 = Instant::now();
    worker.signal(Signal::SIGSTOP).unwrap();
    eventually(
        Duration::from_secs(15),
        "withdrawn while unhealthy",
        || async { (instance_count(&fe).await == 0).then_some(()) },
    )
    .await;
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());

    worker.signal(Signal::SIGCONT).unwrap();
    eventually(
        Duration::from_secs(20),
        "registered again when healthy",
        || async { (ask(&fe, "back").await == (200, Some("side-1".to_owned()))).then_some(()) },
    )
    .await;

    // SIGTERM: the sidecar revokes its lease and exits; the worker itself keeps running.
    let t0 = Instant::now();
    side.signal(Signal::SIGTERM).unwrap();
    assert!(
        side.wait_exit(Duration::from_secs(10)).await.unwrap(),
        "sidecar did not exit on SIGTERM:\n{}",
        side.log_text()
    );
    eventually(
        Duration::from_secs(10),
        "deregistered on SIGTERM",
        || async { (instance_count(&fe).await == 0).then_some(()) },
    )
    .await;
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "removal took {:?}: the lease expired instead of being revoked",
        t0.elapsed()
    );
    let direct = reqwest::get(format!("{}/health", worker.url()))
        .await
        .unwrap();
    assert_eq!(direct.status(), 200, "the worker outlives its sidecar");
}
