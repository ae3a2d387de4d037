//! TLS to workers (#12 item 4, last clause): an `https://` worker (a mocker serving TLS with
//! a certificate from a test CA made at test time) is reached over TLS when `upstream.tls.ca`
//! trusts it, and is unhealthy with a clear `last_error` when nothing does — never reached in
//! plain text.

use std::time::Duration;

use serde_json::Value;
use switchyard_tests::certs::Certs;
use switchyard_tests::http::post_json;
use switchyard_tests::{free_port, frontend_with_config, Proc};

use crate::distributed::eventually;
use crate::{chat, MODEL};

const ADMIN: &str = "worker-tls-admin-token";

fn config(worker: &str, ca: Option<&std::path::Path>) -> String {
    let mut yaml = format!(
        "admin_token: {ADMIN}\nprobe:\n  interval_ms: 100\nworkers:\n  - {{model: {MODEL}, url: \"{worker}\"}}\n"
    );
    if let Some(ca) = ca {
        yaml.push_str(&format!("upstream:\n  tls:\n    ca: {}\n", ca.display()));
    }
    yaml
}

async fn instance(fe: &Proc) -> Value {
    let v = fe.admin_json("/admin/instances", ADMIN).await;
    v["instances"][0].clone()
}

#[tokio::test]
async fn https_workers_are_verified_against_the_configured_ca() {
    let certs = Certs::generate().unwrap();
    let port = free_port();
    let args: Vec<String> = [
        "mocker",
        "--listen",
        "127.0.0.1:{port}",
        "--model",
        MODEL,
        "--tls-cert",
        certs.server_cert.to_str().unwrap(),
        "--tls-key",
        certs.server_key.to_str().unwrap(),
    ]
    .map(str::to_owned)
    .to_vec();
    let m = Proc::spawn("mocker", &args, port).unwrap();
    let worker = format!("https://127.0.0.1:{port}");
    // The mocker listens before the frontend starts: a probe refused while it was still
    // starting would stay in `last_error`, which this test reads for TLS errors.
    eventually(
        Duration::from_secs(20),
        "the TLS mocker listens",
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
        },
    )
    .await;

    // Trusted through upstream.tls.ca: requests and probes go over TLS.
    let (fe, _dir) = frontend_with_config(&config(&worker, Some(&certs.ca)), &[])
        .await
        .unwrap();
    let url = format!("{}/v1/chat/completions", fe.url());
    let body = chat("hello over tls", 4, false);
    eventually(
        Duration::from_secs(20),
        "a chat through the https worker",
        || async {
            let (status, _, v) = post_json(&url, &body, &[]).await.ok()?;
            (status == 200).then_some(v)
        },
    )
    .await;
    let (status, _, v) = post_json(&url, &chat("stream too", 4, true), &[])
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    let trusted = instance(&fe).await;
    assert!(trusted["last_error"].is_null(), "{trusted}");
    assert_eq!(trusted["health"], "healthy", "{trusted}");

    // Without the CA (the public roots do not know the test CA): the worker is unhealthy
    // and says why; requests are not sent in plain text instead.
    let (untrusting, _dir2) = frontend_with_config(&config(&worker, None), &[])
        .await
        .unwrap();
    let refused = eventually(
        Duration::from_secs(20),
        "the untrusted worker's last_error names the certificate",
        || async {
            let i = instance(&untrusting).await;
            let named = i["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("certificate"));
            (named && i["health"] != "healthy").then_some(i)
        },
    )
    .await;
    let error = refused["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    eprintln!("untrusted worker: last_error = {error}");
    assert!(error.contains("UnknownIssuer"), "{refused}");
    let url = format!("{}/v1/chat/completions", untrusting.url());
    let (status, _, v) = post_json(&url, &body, &[]).await.unwrap();
    assert!(status >= 500, "{status}: {v}");
    drop(m);
}

#[tokio::test]
async fn an_https_url_to_a_plain_http_worker_is_never_used_in_plain_text() {
    let plain = switchyard_tests::mocker(&["--model", MODEL]).await.unwrap();
    let worker = plain.url().replace("http://", "https://");
    let (fe, _dir) = frontend_with_config(&config(&worker, None), &[])
        .await
        .unwrap();
    let failed = eventually(
        Duration::from_secs(20),
        "the worker is unhealthy with a TLS error",
        || async {
            let i = instance(&fe).await;
            (i["last_error"].is_string() && i["health"] != "healthy").then_some(i)
        },
    )
    .await;
    eprintln!(
        "plain worker behind an https URL: last_error = {}",
        failed["last_error"]
    );
    let url = format!("{}/v1/chat/completions", fe.url());
    let (status, _, v) = post_json(&url, &chat("plain?", 2, false), &[])
        .await
        .unwrap();
    assert!(status >= 500, "{status}: {v}");
    let metrics = reqwest::get(format!("{}/metrics", plain.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "switchyard_mocker_requests_total 0"),
        "the worker got a request in plain text:\n{metrics}"
    );
}
