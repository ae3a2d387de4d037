//! TLS on the public listener (#12 item 4): a test CA made by openssl, HTTP/2 negotiated by
//! ALPN through a whole streamed request (httpx with `http2=True`), HTTP/1.1 alongside, and
//! a new certificate picked up from the files without a restart.

use std::process::Command;

use switchyard_tests::certs::Certs;
use switchyard_tests::{free_port, mocker, worker_flags, Proc};

use crate::MODEL;

async fn run_client(url: &str, ca: &std::path::Path, wait_s: &str) -> (bool, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/tls_http2.py");
    let args = [
        script.to_owned(),
        url.to_owned(),
        ca.display().to_string(),
        MODEL.to_owned(),
        wait_s.to_owned(),
    ];
    let out = tokio::task::spawn_blocking(move || Command::new("python3").args(args).output())
        .await
        .unwrap()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains("ALL OK"), text)
}

#[tokio::test]
async fn http2_by_alpn_through_a_stream_and_certificates_reload() {
    let first = Certs::generate().unwrap();
    let second = Certs::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::copy(&first.server_cert, &cert).unwrap();
    std::fs::copy(&first.server_key, &key).unwrap();
    let config = dir.path().join("switchyard.yaml");
    std::fs::write(
        &config,
        format!(
            "tls:\n  cert_file: {}\n  key_file: {}\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();

    let m = mocker(&[]).await.unwrap();
    let port = free_port();
    let mut args = vec![
        "serve".to_owned(),
        "--listen".to_owned(),
        "127.0.0.1:{port}".to_owned(),
        "--config".to_owned(),
        config.display().to_string(),
    ];
    args.extend(worker_flags(MODEL, &[&m]));
    let fe = Proc::spawn("frontend", &args, port).unwrap();
    let url = format!("https://127.0.0.1:{port}");

    let (ok, out) = run_client(&url, &first.ca, "30").await;
    assert!(ok, "TLS client failed:\n{out}\n{}", fe.log_text());

    // Plain HTTP on the TLS port is not served.
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/live")).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    // Rotate to a certificate from another CA: new handshakes get it, no restart.
    std::fs::copy(&second.server_key, &key).unwrap();
    std::fs::copy(&second.server_cert, &cert).unwrap();
    let (ok, out) = run_client(&url, &second.ca, "30").await;
    assert!(
        ok,
        "the new certificate was not served:\n{out}\n{}",
        fe.log_text()
    );
    assert!(fe.log_text().contains("TLS certificate changed: reloaded"));
}
