//! etcd entries are untrusted input: a hostile or broken registration is skipped, logged and
//! counted, and never makes the frontend read a file or stop serving the good instances.

use std::time::Duration;

use serde_json::json;
use switchyard_tests::http::metric;
use switchyard_tests::services::Etcd;
use switchyard_tests::{mocker, mocker_with_key};

use super::{ask, etcd_frontend, eventually, ids, instance_ids, registered_mocker, TOKEN};
use crate::MODEL;

/// Writes `value` under the default instance prefix, as anyone with etcd write access could.
async fn put_raw(etcd: &Etcd, id: &str, value: String) {
    let mut client = etcd_client::Client::connect([etcd.url()], None)
        .await
        .unwrap();
    // The key layout of docs/discovery.md: `<prefix><model>/<id>`.
    let key = format!("/switchyard/instances/{MODEL}/{id}");
    client.put(key, value, None).await.unwrap();
}

fn rejected(reason: &str) -> String {
    format!("switchyard_discovery_rejected_total{{source=\"etcd\",reason=\"{reason}\"}}")
}

#[tokio::test]
async fn an_etcd_entry_naming_a_file_as_its_template_is_rejected_and_the_file_never_read() {
    let etcd = Etcd::start().await.unwrap();
    let good = registered_mocker(&etcd, "good", "30", &[]).await;
    // The entry's worker: it must never see a request (today it receives the file's bytes as
    // the rendered prompt).
    let bait = mocker(&[]).await.unwrap();
    let hostile = json!({
        "id": "bait", "model": MODEL, "url": bait.url(),
        "api": "completions", "chat_template": "/proc/self/environ",
    });
    put_raw(&etcd, "bait", hostile.to_string()).await;
    let ftp = json!({"id": "ftp", "model": MODEL, "url": "ftp://127.0.0.1:21/"});
    put_raw(&etcd, "ftp", ftp.to_string()).await;
    put_raw(&etcd, "junk", "{\"id\": 3".into()).await;

    let fe = etcd_frontend(&etcd, &["--admin-token", TOKEN]).await;
    eventually(
        Duration::from_secs(15),
        "the good instance routed",
        || async { (instance_ids(&fe).await == ids(&["good"])).then_some(()) },
    )
    .await;
    let base = fe.url();
    assert_eq!(metric(&base, &rejected("chat_template")).await, 1.0);
    assert_eq!(metric(&base, &rejected("url")).await, 1.0);
    assert_eq!(metric(&base, &rejected("parse")).await, 1.0);
    for i in 0..6 {
        assert_eq!(ask(&fe, &format!("q{i}")).await, (200, Some("good".into())));
    }
    assert_eq!(
        metric(&bait.url(), "switchyard_mocker_requests_total").await,
        0.0,
        "the rejected entry's worker was sent a request"
    );
    // A later put of the same kind, through the watch rather than the list.
    put_raw(
        &etcd,
        "bait2",
        hostile.to_string().replace("\"bait\"", "\"bait2\""),
    )
    .await;
    eventually(
        Duration::from_secs(15),
        "the watched entry rejected",
        || async { (metric(&base, &rejected("chat_template")).await == 2.0).then_some(()) },
    )
    .await;
    assert_eq!(instance_ids(&fe).await, ids(&["good"]));
    drop(good);
}

/// A keyed worker found through etcd names its key; the frontend sends the key it holds under
/// that name, and an entry naming a key the frontend lacks gets no traffic.
#[tokio::test]
async fn an_etcd_entry_names_its_worker_key_and_the_frontend_sends_it() {
    let etcd = Etcd::start().await.unwrap();
    let keyed = mocker_with_key("k-123", &[]).await.unwrap();
    let entry = |id: &str, key: &str| {
        json!({"id": id, "model": MODEL, "url": keyed.url(), "api_key_name": key}).to_string()
    };
    put_raw(&etcd, "keyed", entry("keyed", "llama")).await;
    put_raw(&etcd, "unknown-key", entry("unknown-key", "other")).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("llama"), "k-123\n").unwrap();
    let keys = dir.path().display().to_string();
    let fe = etcd_frontend(
        &etcd,
        &[
            "--admin-token",
            TOKEN,
            "--worker-api-keys-dir",
            keys.as_str(),
        ],
    )
    .await;
    eventually(
        Duration::from_secs(15),
        "the keyed instance routed",
        || async { (instance_ids(&fe).await == ids(&["keyed"])).then_some(()) },
    )
    .await;
    // Without the key the mocker answers 401, as vLLM started with --api-key does.
    for i in 0..4 {
        assert_eq!(
            ask(&fe, &format!("k{i}")).await,
            (200, Some("keyed".into()))
        );
    }
    assert_eq!(metric(&fe.url(), &rejected("api_key")).await, 1.0);
}
