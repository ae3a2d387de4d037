//! A NATS link with TLS (private CA, verified client certificate) and a token, against a real
//! nats-server that requires all of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use switchyard_nats::{connect_with, NatsAuth, NatsTls};
use switchyard_tests::certs::Certs;

use support::{eventually, free_port, Nats};

const TOKEN: &str = "nats-t0ken-for-tests";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_client_certificate_and_a_token_connects() {
    let certs = Certs::generate().unwrap();
    let port = free_port();
    let path = |p: &std::path::Path| p.display().to_string();
    let (cert, key, ca) = (
        path(&certs.server_cert),
        path(&certs.server_key),
        path(&certs.ca),
    );
    let _nats = Nats::start_with_args(
        port,
        &[
            "--tlsverify",
            "--tlscert",
            &cert,
            "--tlskey",
            &key,
            "--tlscacert",
            &ca,
            "--auth",
            TOKEN,
        ],
    )
    .unwrap();
    let auth = NatsAuth {
        token_file: Some(certs.secret_file("token", TOKEN).unwrap()),
        tls: NatsTls {
            ca: Some(certs.ca.clone()),
            cert: Some(certs.client_cert.clone()),
            key: Some(certs.client_key.clone()),
            required: true,
        },
        ..NatsAuth::default()
    };
    let url = format!("tls://127.0.0.1:{port}");
    let conn = connect_with(&url, "secure", &auth).await.unwrap();
    eventually(Duration::from_secs(20), "TLS + token connection", || {
        conn.is_connected()
    })
    .await;
    // The link works: a request to ourselves round-trips.
    let mut sub = conn.client.subscribe("secure.echo").await.unwrap();
    conn.settle().await;
    conn.client
        .publish("secure.echo", "hi".into())
        .await
        .unwrap();
    let msg = tokio::time::timeout(
        Duration::from_secs(10),
        futures_util::StreamExt::next(&mut sub),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(&msg.payload[..], b"hi");
}
