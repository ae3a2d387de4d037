//! Where settings come from: the YAML file, `SWITCHYARD_*` environment variables over it, and
//! flags over both; invalid values name the key.

use std::time::Duration;

use switchyard_tests::http::post_json;
use switchyard_tests::{free_port, Proc};

use crate::{chat, MODEL};

async fn admin_status(fe: &Proc, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/admin/instances", fe.admin_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A chat request whose JSON body is exactly `len` bytes.
fn body_of(len: usize) -> Vec<u8> {
    let base = serde_json::to_vec(&chat("", 1, false)).unwrap();
    let pad = len - base.len();
    serde_json::to_vec(&chat(&"x".repeat(pad), 1, false)).unwrap()
}

async fn post_len(fe: &Proc, len: usize) -> u16 {
    let body = body_of(len);
    assert_eq!(body.len(), len);
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", fe.url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn env_overrides_the_file_and_flags_override_env() {
    let (a, b) = (
        switchyard_tests::mocker(&[]).await.unwrap(),
        switchyard_tests::mocker(&[]).await.unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("switchyard.yaml");
    std::fs::write(
        &file,
        format!(
            "admin_token: file-token\nworkers:\n  - {{ model: {MODEL}, url: \"{}\" }}\nlimits: {{ max_body_bytes: 100000 }}\n",
            a.url()
        ),
    )
    .unwrap();
    let port = free_port();
    let args: Vec<String> = [
        "serve",
        "--listen",
        "127.0.0.1:{port}",
        "--config",
        &file.display().to_string(),
        "--max-body-bytes",
        "3000",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let worker_b = format!("{MODEL}={}", b.url());
    let admin_port = free_port();
    let admin_listen = format!("127.0.0.1:{admin_port}");
    let env = [
        ("SWITCHYARD_ADMIN_LISTEN", admin_listen.as_str()),
        ("SWITCHYARD_ADMIN_TOKEN", "env-token"),
        ("SWITCHYARD_MAX_BODY_BYTES", "2000"),
        ("SWITCHYARD_WORKERS", worker_b.as_str()),
    ];
    let mut fe = Proc::spawn_with_env("frontend", &args, port, &env).unwrap();
    fe.admin_port = admin_port;
    fe.wait_ready("/health").await.unwrap();

    // The file is in the flat layout of the previous release: read, with one warning per old
    // key naming its new place (logged while the config loads, before the listener is up).
    let log = fe.log_text();
    for (old, new) in [
        ("admin_token", "http.admin_token"),
        ("limits", "http.limits"),
    ] {
        assert!(
            log.contains(&format!("config key `{old}` is deprecated"))
                && log.contains(&format!("write `{new}`")),
            "{old}: {log}"
        );
    }

    // Env over file.
    assert_eq!(admin_status(&fe, "env-token").await, 200);
    assert_eq!(admin_status(&fe, "file-token").await, 401);
    // Flag (3000) over env (2000) over file (100000).
    assert_eq!(post_len(&fe, 2500).await, 200);
    assert_eq!(post_len(&fe, 3500).await, 413);
    // Workers from env are added to the file's.
    let instances: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/admin/instances", fe.admin_url()))
        .bearer_auth("env-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut urls: Vec<String> = instances["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["url"].as_str().unwrap().to_owned())
        .collect();
    urls.sort();
    let mut want = vec![a.url(), b.url()];
    want.sort();
    assert_eq!(urls, want);
    let (status, _, _) = post_json(
        &format!("{}/v1/chat/completions", fe.url()),
        &chat("hi", 2, false),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_invalid_env_value_stops_startup_and_names_the_key() {
    let port = free_port();
    let args: Vec<String> = ["serve", "--listen", "127.0.0.1:{port}"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let mut fe =
        Proc::spawn_with_env("frontend", &args, port, &[("SWITCHYARD_POLICY", "fastest")]).unwrap();
    assert!(fe.wait_exit(Duration::from_secs(10)).await.unwrap());
    assert!(!fe.exit_status().unwrap().unwrap().success());
    let log = fe.log_text();
    assert!(
        log.contains("routing.policy") && log.contains("fastest"),
        "{log}"
    );
}

#[tokio::test]
async fn the_plugin_host_section_bounds_every_plugins_memory() {
    let wasm = format!(
        "{}/../plugins/target/wasm/round-robin.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    let dir = tempfile::tempdir().unwrap();
    let start = |memory: &str| {
        let config = dir.path().join(format!("host-{memory}.yaml"));
        std::fs::write(
            &config,
            format!(
                "workers:\n  - {{ model: {MODEL}, url: \"http://127.0.0.1:9\" }}\nplugins:\n  host: {{ max_memory_bytes: 33554432 }}\n  modules:\n    - {{ name: rr, kind: picker, path: \"{wasm}\", limits: {{ memoryBytes: {memory} }} }}\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let args: Vec<String> = vec![
            "serve".into(),
            "--listen".into(),
            "127.0.0.1:{port}".into(),
            "--config".into(),
            config.display().to_string(),
        ];
        Proc::spawn("frontend", &args, port).unwrap()
    };
    // The plugin's default 64 MiB cap is over the host's 32 MiB: refused at startup, by name.
    let mut over = start("67108864");
    assert!(over.wait_exit(Duration::from_secs(20)).await.unwrap());
    assert!(!over.exit_status().unwrap().unwrap().success());
    let log = over.log_text();
    assert!(
        log.contains("`rr`") && log.contains("max_memory_bytes 33554432"),
        "{log}"
    );
    // Within the host's bound it loads and listens. (`/live`, not `/health`: the worker at
    // port 9 refuses connections, so whether `/health` is still 200 when first polled depends
    // on how soon its probes fail — on a loaded machine they had already ejected it.)
    let mut within = start("16777216");
    within.wait_ready("/live").await.unwrap();
}

/// Starts `serve` on `yaml` (with `--listen` on a free port) and returns the process.
fn serve_file(dir: &tempfile::TempDir, name: &str, yaml: &str) -> Proc {
    let file = dir.path().join(name);
    std::fs::write(&file, yaml).unwrap();
    let port = free_port();
    let args: Vec<String> = vec![
        "serve".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--config".into(),
        file.display().to_string(),
    ];
    Proc::spawn("frontend", &args, port).unwrap()
}

#[tokio::test]
async fn a_sectioned_file_is_read_without_warnings() {
    let worker = switchyard_tests::mocker(&[]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut fe = serve_file(
        &dir,
        "new.yaml",
        &format!(
            "http:\n  limits: {{ max_body_bytes: 3000, body_timeout: 30s }}\nreliability:\n  upstream: {{ first_byte_timeout: 2m, max_retries: 1 }}\n  migration_limit: 1\nrouting:\n  policy: round-robin\nworkers:\n  - {{ model: {MODEL}, url: \"{}\" }}\n",
            worker.url()
        ),
    );
    fe.wait_ready("/health").await.unwrap();
    assert_eq!(post_len(&fe, 2500).await, 200);
    assert_eq!(
        post_len(&fe, 3500).await,
        413,
        "http.limits.max_body_bytes applies"
    );
    let log = fe.log_text();
    assert!(!log.contains("deprecated"), "{log}");
}

#[tokio::test]
async fn old_and_new_spelling_together_or_a_bare_duration_stop_startup_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let workers = format!("workers:\n  - {{ model: {MODEL}, url: \"http://127.0.0.1:9\" }}\n");
    for (name, yaml, named) in [
        (
            "both.yaml",
            format!("{workers}migration_limit: 1\nreliability: {{ migration_limit: 2 }}\n"),
            ["`migration_limit`", "`reliability.migration_limit`"],
        ),
        (
            "bare.yaml",
            format!("{workers}reliability:\n  upstream: {{ stall_timeout: 60 }}\n"),
            ["reliability.upstream.stall_timeout", "has no unit"],
        ),
        (
            "unknown.yaml",
            format!("{workers}reliability:\n  upstream: {{ bogus: 1 }}\n"),
            [
                "unknown key `reliability.upstream.bogus`",
                "reliability.upstream.bogus",
            ],
        ),
    ] {
        let mut fe = serve_file(&dir, name, &yaml);
        assert!(
            fe.wait_exit(Duration::from_secs(20)).await.unwrap(),
            "{name}"
        );
        assert!(!fe.exit_status().unwrap().unwrap().success(), "{name}");
        let log = fe.log_text();
        for text in named {
            assert!(log.contains(text), "{name}: {text}: {log}");
        }
    }
}
