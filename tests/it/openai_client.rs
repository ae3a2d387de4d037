//! The official OpenAI Python client against the frontend: someone else's parser checks the
//! wire format (chat, streaming with usage, completions, embeddings, models, typed errors).

use std::process::Command;

use switchyard_tests::{frontend, mocker, worker_flags};

use crate::MODEL;

#[tokio::test]
async fn the_official_openai_python_client_works() {
    let check = Command::new("python3")
        .args(["-c", "import openai"])
        .output();
    let importable = check.as_ref().is_ok_and(|o| o.status.success());
    assert!(
        importable,
        "the `openai` Python package is missing: run `make test` (it installs tests/python/requirements.txt) or `pip install -r tests/python/requirements.txt`"
    );
    let m = mocker(&[]).await.unwrap();
    let fe = frontend(&worker_flags(MODEL, &[&m])).await.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/openai_client.py");
    let out = tokio::task::spawn_blocking({
        let url = format!("{}/v1", fe.url());
        move || Command::new("python3").args([script, &url, MODEL]).output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ALL OK"), "{stdout}");
}
