//! Admin uploads answer at once (202) and compile in the background; compiled components
//! are kept in the compile cache so a restarted frontend does not compile them again.

use std::time::Duration;

use serde_json::Value;
use switchyard_tests::{frontend, Proc};

use crate::distributed::eventually;
use crate::plugins::{admin, args_with, mockers, plugins_view, wasm, TOKEN};

/// PUTs `bytes` as plugin `name` without `wait`, returning the status, `Location` and body.
async fn put_async(fe: &Proc, name: &str, bytes: Vec<u8>, query: &str) -> (u16, String, Value) {
    use sha2::Digest as _;
    let sha: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let response = reqwest::Client::new()
        .put(format!(
            "{}/admin/plugins/{name}?sha256={sha}&{query}",
            fe.admin_url()
        ))
        .bearer_auth(TOKEN)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (
        status,
        location,
        response.json().await.unwrap_or(Value::Null),
    )
}

/// Polls the upload's status URL until it is no longer loading.
async fn load_outcome(fe: &Proc, location: &str) -> Value {
    eventually(Duration::from_secs(60), "the upload to finish", || async {
        let view: Value = admin(fe, location).send().await.ok()?.json().await.ok()?;
        (view["state"] != "loading").then_some(view)
    })
    .await
}

#[tokio::test]
async fn an_upload_answers_202_and_its_status_url_reports_the_outcome() {
    let m = mockers(2, &[]).await;
    let fe = frontend(&args_with(&m, &[])).await.unwrap();
    let rr = std::fs::read(wasm("round-robin")).unwrap();

    let (status, location, body) = put_async(&fe, "rr", rr, "kind=picker").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(location, "/admin/plugins/rr/load");
    assert_eq!(body["status_url"], location.as_str(), "{body}");
    let outcome = load_outcome(&fe, &location).await;
    assert_eq!(outcome["state"], "loaded", "{outcome}");
    assert_eq!(outcome["sha256"], body["sha256"], "{outcome}");
    let sha = plugins_view(&fe).await["rr"]["sha256"].clone();
    assert_eq!(sha, body["sha256"]);

    // Bytes that are not a component: accepted for loading (the sha256 matches), reported
    // failed at the status URL, and the running version stays.
    let (status, location, body) =
        put_async(&fe, "rr", b"not a component".to_vec(), "kind=picker").await;
    assert_eq!(status, 202, "{body}");
    let outcome = load_outcome(&fe, &location).await;
    assert_eq!(outcome["state"], "failed", "{outcome}");
    let error = outcome["error"].as_str().unwrap_or_default();
    assert!(error.contains("was not loaded"), "{outcome}");
    assert_eq!(plugins_view(&fe).await["rr"]["sha256"], sha);

    // `wait` takes true or false, nothing else; an unknown name has no upload.
    let (status, _, body) = put_async(&fe, "rr", vec![0], "kind=picker&wait=maybe").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "wait", "{body}");
    let unknown = admin(&fe, "/admin/plugins/nobody/load")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
}

#[tokio::test]
async fn a_restarted_frontend_loads_its_plugin_from_the_compile_cache() {
    let m = mockers(1, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let args = args_with(
        &m,
        &[
            "--plugin".to_owned(),
            format!("picker={}", wasm("round-robin")),
            "--plugin-cache-dir".to_owned(),
            cache.display().to_string(),
        ],
    );
    let first = frontend(&args).await.unwrap();
    let log = first.log_text();
    assert!(log.contains("plugin compiled (cache: no entry)"), "{log}");
    assert!(!log.contains("from the compile cache"), "{log}");
    drop(first);

    let second = frontend(&args).await.unwrap();
    let log = second.log_text();
    assert!(
        log.contains("plugin loaded from the compile cache"),
        "{log}"
    );
    assert!(!log.contains("plugin compiled"), "{log}");
    // ... and it routes.
    crate::spread(&second, 2, None).await;
    assert!(plugins_view(&second)
        .await
        .values()
        .any(|p| p["calls"].as_u64() >= Some(2)));
}
