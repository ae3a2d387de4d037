//! Prefix hashing over token ids: frontend and mockers load the same locally built
//! `tokenizer.json` (`--tokenizer`), and KV-aware routing works on the token-block hashes the
//! mockers publish. A tokenizer that cannot be loaded stops either process at startup.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use switchyard_tests::http::{metric, post_json};
use switchyard_tests::services::Nats;
use switchyard_tests::{free_port, frontend, worker_flags, Proc};
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{SplitDelimiterBehavior, Tokenizer};

use crate::distributed::{eventually, health, prefixes_stick, static_mockers, Learns};
use crate::MODEL;

/// A tiny Hugging Face tokenizer built here (nothing is downloaded): one token per ASCII
/// character, id = its code, saved as `dir/tokenizer.json` for `--tokenizer`.
pub fn write_char_tokenizer(dir: &Path) -> anyhow::Result<PathBuf> {
    let mut vocab: ahash::AHashMap<String, u32> = (1u8..128)
        .map(|b| ((b as char).to_string(), u32::from(b)))
        .collect();
    vocab.insert("[UNK]".into(), 0);
    let model = WordLevel::builder()
        .vocab(vocab)
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tokenizer = Tokenizer::new(model);
    // `(?s).`: every character, newlines included, is its own piece.
    let split = Split::new(
        SplitPattern::Regex("(?s).".into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    tokenizer.with_pre_tokenizer(Some(split));
    let path = dir.join("tokenizer.json");
    tokenizer
        .save(&path, false)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(path)
}

#[tokio::test]
async fn kv_routing_with_a_tokenizer_sends_repeated_prefixes_to_the_holder() {
    let nats = Nats::start().unwrap();
    let url = nats.url();
    let dir = tempfile::tempdir().unwrap();
    let tokenizer = write_char_tokenizer(dir.path()).unwrap();
    let tokenizer = tokenizer.to_str().unwrap();
    let m = static_mockers(3, &["--nats", &url, "--tokenizer", tokenizer]).await;

    // The mockers really tokenize: one token per character of a completion prompt (byte
    // mode would count 4 bytes per token).
    let body = json!({"model": MODEL, "prompt": "0123456789abcdefghij", "max_tokens": 1});
    let (status, _, resp) = post_json(&format!("{}/v1/completions", m[0].url()), &body, &[])
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(resp["usage"]["prompt_tokens"], json!(20), "{resp}");

    let refs: Vec<&Proc> = m.iter().collect();
    let mut args = worker_flags(MODEL, &refs);
    args.extend(["--policy", "kv", "--nats", &url, "--tokenizer", tokenizer].map(String::from));
    let fe = frontend(&args).await.unwrap();
    eventually(Duration::from_secs(10), "event bus connected", || async {
        (health(&fe).await["events"]["connected"] == json!(true)).then_some(())
    })
    .await;
    // Stickiness needs the frontend's prompt hashes to equal the token-block hashes in the
    // mockers' events: with different hashing every turn is a random tie among idle mockers.
    let holders = prefixes_stick(&fe, Learns::FromEvents).await;
    assert_eq!(holders.len(), 4);
    assert!(metric(&fe.url(), "switchyard_kv_event_messages_total").await > 0.0);
}

/// Starts `switchyard <args>` expecting it to exit at startup; returns its log.
async fn startup_failure(args: &[String]) -> String {
    let mut p = Proc::spawn("bad-tokenizer", args, free_port()).unwrap();
    assert!(
        p.wait_exit(Duration::from_secs(20)).await.unwrap(),
        "started despite a bad tokenizer:\n{}",
        p.log_text()
    );
    p.log_text()
}

#[tokio::test]
async fn an_unloadable_tokenizer_is_a_startup_error_naming_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("tokenizer.json");
    std::fs::write(&garbage, "{\"not\": \"a tokenizer\"}").unwrap();
    let garbage = garbage.display().to_string();

    let log = startup_failure(
        &[
            "serve",
            "--listen",
            "127.0.0.1:{port}",
            "--worker",
            "m=http://127.0.0.1:9",
            "--tokenizer",
            &garbage,
        ]
        .map(String::from),
    )
    .await;
    assert!(
        log.contains("`routing.tokenizer`") && log.contains(&garbage),
        "{log}"
    );

    let yaml = dir.path().join("switchyard.yaml");
    std::fs::write(
        &yaml,
        "workers:\n  - model: m\n    url: http://127.0.0.1:9\ntokenizers:\n  m: /no/such/tokenizer.json\n",
    )
    .unwrap();
    let log = startup_failure(
        &[
            "serve",
            "--listen",
            "127.0.0.1:{port}",
            "--config",
            &yaml.display().to_string(),
        ]
        .map(String::from),
    )
    .await;
    assert!(
        log.contains("tokenizers.m") && log.contains("/no/such/tokenizer.json"),
        "{log}"
    );

    let log = startup_failure(
        &[
            "mocker",
            "--listen",
            "127.0.0.1:{port}",
            "--tokenizer",
            &garbage,
        ]
        .map(String::from),
    )
    .await;
    assert!(
        log.contains("--tokenizer") && log.contains(&garbage),
        "{log}"
    );
}
