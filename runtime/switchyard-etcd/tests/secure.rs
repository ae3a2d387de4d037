//! Discovery and registration over TLS with a client certificate and etcd user/password
//! auth, against a real etcd started with `--client-cert-auth` and auth enabled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use switchyard_etcd::{spawn_discovery, EtcdAuth, EtcdConfig, Registration};
use switchyard_runtime::{DiscoveryEvent, DiscoveryState, InstanceSpec};
use switchyard_tests::certs::Certs;
use switchyard_tests::services::Etcd;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

const SETTLE: Duration = Duration::from_secs(20);
const PASSWORD: &str = "etcd-Passw0rd";

fn tls(certs: &Certs) -> TlsOptions {
    let read = |p: &std::path::Path| std::fs::read(p).unwrap();
    TlsOptions::new()
        .ca_certificate(Certificate::from_pem(read(&certs.ca)))
        .identity(Identity::from_pem(
            read(&certs.client_cert),
            read(&certs.client_key),
        ))
}

/// Creates `root` with [`PASSWORD`] and turns auth on: from then on every request needs the
/// password (the client certificate's CN names no etcd user).
async fn enable_auth(etcd: &Etcd, certs: &Certs) {
    let opts = ConnectOptions::new().with_tls(tls(certs));
    let mut root = Client::connect([etcd.url()], Some(opts)).await.unwrap();
    root.user_add("root", PASSWORD, None).await.unwrap();
    root.user_grant_role("root", "root").await.unwrap();
    root.auth_enable().await.unwrap();
}

fn config(etcd: &Etcd, certs: &Certs, password: &str) -> EtcdConfig {
    let mut cfg = EtcdConfig::new(&etcd.url());
    cfg.connect_timeout = Duration::from_secs(2);
    cfg.request_timeout = Duration::from_secs(3);
    cfg.auth = EtcdAuth {
        user: Some("root".into()),
        password_file: Some(
            certs
                .secret_file(&format!("pw-{password}"), password)
                .unwrap(),
        ),
        ca: Some(certs.ca.clone()),
        cert: Some(certs.client_cert.clone()),
        key: Some(certs.client_key.clone()),
    };
    cfg
}

async fn next_state(rx: &mut UnboundedReceiver<DiscoveryEvent>) -> (DiscoveryState, Vec<String>) {
    let deadline = Instant::now() + SETTLE;
    let mut ids = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(DiscoveryEvent::Snapshot(specs))) => {
                ids = specs.into_iter().map(|s| s.id).collect()
            }
            Ok(Some(DiscoveryEvent::State(state))) => return (state, ids),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("no discovery state within {SETTLE:?}"),
        }
    }
}

#[tokio::test]
async fn tls_client_certificates_and_passwords_are_used_and_required() {
    let certs = Certs::generate().unwrap();
    let etcd = Etcd::start_tls(&certs).await.unwrap();
    enable_auth(&etcd, &certs).await;

    let good = config(&etcd, &certs, PASSWORD);
    let spec = InstanceSpec::new("secure-1", "org/model", "http://127.0.0.1:9");
    let mut reg = Registration::spawn(good.clone(), spec, Duration::from_secs(30)).unwrap();
    reg.wait_registered(SETTLE).await.unwrap();
    let (tx, mut rx) = unbounded_channel();
    spawn_discovery(good, tx);
    assert_eq!(
        next_state(&mut rx).await,
        (DiscoveryState::Connected, vec!["secure-1".to_owned()])
    );

    // The wrong password, or no CA (the server's certificate is then untrusted), never
    // connects: discovery reports Disconnected and lists nothing.
    let (tx, mut rx) = unbounded_channel();
    spawn_discovery(config(&etcd, &certs, "wrong"), tx);
    assert_eq!(
        next_state(&mut rx).await,
        (DiscoveryState::Disconnected, vec![])
    );
    let mut no_ca = config(&etcd, &certs, PASSWORD);
    no_ca.auth.ca = None;
    no_ca.auth.cert = None;
    no_ca.auth.key = None;
    no_ca.endpoints = vec![etcd.url()];
    let (tx, mut rx) = unbounded_channel();
    spawn_discovery(no_ca, tx);
    assert_eq!(
        next_state(&mut rx).await,
        (DiscoveryState::Disconnected, vec![])
    );
    reg.deregister().await.unwrap();
}
