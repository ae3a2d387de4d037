//! Switchyard inside another program: the embedder's own axum router serves its own route
//! (`GET /hello`) and hands everything under `/v1` to the Switchyard frontend, built
//! in-process from a YAML config with static workers.
//!
//! ```text
//! cargo run --example embed -- PORT MODEL=URL [MODEL=URL…]
//! cargo run --example embed -- 3000 mock-model=http://127.0.0.1:8000
//! curl localhost:3000/hello
//! curl localhost:3000/v1/chat/completions -H 'content-type: application/json' \
//!   -d '{"model":"mock-model","messages":[{"role":"user","content":"Hi"}]}'
//! ```
//!
//! Switchyard routes on the full path (`/v1/chat/completions`), so it is mounted with
//! `route_service` on a wildcard, which keeps the path, not with `nest_service`, which
//! strips the prefix. Its `/health` and `/metrics` can be mounted the same way.

use anyhow::{bail, Context};
use axum::routing::get;
use axum::Router;
use switchyard::embed::Embedded;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .context("usage: embed PORT MODEL=URL [MODEL=URL…]")?
        .parse()
        .context("PORT must be a number")?;
    let mut yaml = String::from("workers:\n");
    for worker in args {
        let Some((model, url)) = worker.split_once('=') else {
            bail!("workers are MODEL=URL, got `{worker}`");
        };
        yaml.push_str(&format!("  - {{ model: \"{model}\", url: \"{url}\" }}\n"));
    }
    switchyard::telemetry::subscriber::init(None)?;

    // The frontend and its background tasks (health probes, discovery, plugins) run in this
    // process; keep `switchyard` alive while serving.
    let switchyard = Embedded::from_yaml(&yaml).await?;
    let app = Router::new()
        .route("/hello", get(|| async { "hello from the embedding app\n" }))
        .route_service("/v1/{*path}", switchyard.service());

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("serving on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(switchyard::server::shutdown_signal())
        .await?;
    switchyard.shutdown().await;
    Ok(())
}
