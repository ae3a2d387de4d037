//! The commands a new user and a plugin author run first: `switchyard demo` and
//! `switchyard plugin check | bench`, as processes with their output and exit codes.

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;
use switchyard_tests::{free_port, switchyard_bin, Proc};

use crate::{chat, MODEL};

fn wasm(name: &str) -> String {
    format!(
        "{}/../plugins/target/wasm/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[tokio::test]
async fn demo_serves_the_openai_api_on_three_workers_and_stops_on_ctrl_c() {
    let port = free_port();
    let args: Vec<String> = [
        "demo",
        "--listen",
        "127.0.0.1:{port}",
        "--plugin",
        &format!("scorer={}", wasm("least-loaded")),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut demo = Proc::spawn("demo", &args, port).unwrap();
    demo.wait_ready("/health").await.unwrap();
    let printed = demo.log_text();
    assert!(
        printed.contains(&format!("http://127.0.0.1:{port}/v1")) && printed.contains("curl"),
        "the demo must print its URL and a curl line:\n{printed}"
    );

    let client = reqwest::Client::new();
    let models: Value = client
        .get(format!("{}/v1/models", demo.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], MODEL, "{models}");
    let mut instances = std::collections::HashSet::new();
    for i in 0..9 {
        let r = client
            .post(format!("{}/v1/chat/completions", demo.url()))
            .json(&chat(&format!("hello {i}"), 3, i % 2 == 0))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        instances.insert(
            r.headers()["x-switchyard-instance"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
        let body = r.text().await.unwrap();
        assert!(!body.contains("\"error\""), "{body}");
    }
    assert_eq!(
        instances.len(),
        3,
        "three workers serve the demo: {instances:?}"
    );

    demo.signal(Signal::SIGINT).unwrap();
    assert!(
        demo.wait_exit(Duration::from_secs(20)).await.unwrap(),
        "Ctrl-C did not stop the demo:\n{}",
        demo.log_text()
    );
    let status = demo.exit_status().unwrap().unwrap();
    assert!(status.success(), "{status}:\n{}", demo.log_text());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the demo's port is still open"
    );
}

fn plugin_cmd(args: &[&str]) -> (i32, String) {
    let out = Command::new(switchyard_bin())
        .arg("plugin")
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn plugin_check_names_the_world_and_explains_failures_in_its_exit_code() {
    let (code, out) = plugin_cmd(&["check", &wasm("round-robin")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("picker"), "{out}");

    let (code, out) = plugin_cmd(&["check", &wasm("testing-nan-scores")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("non-finite"), "{out}");

    let not_a_component = format!("{}/Cargo.toml", env!("CARGO_MANIFEST_DIR"));
    let (code, out) = plugin_cmd(&["check", &not_a_component]);
    assert_ne!(code, 0, "{out}");
    assert!(!out.contains("panicked"), "{out}");

    let (code, out) = plugin_cmd(&["check", "/no/such/plugin.wasm"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("cannot read /no/such/plugin.wasm"), "{out}");
}

#[test]
fn plugin_bench_reports_every_candidate_count() {
    let (code, out) = plugin_cmd(&["bench", &wasm("least-loaded"), "--json"]);
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let sizes: Vec<u64> = report["points"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"))
        .iter()
        .map(|p| p["candidates"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [8, 64, 512], "{report}");
}
