//! `switchyard demo`: the frontend plus in-process mockers, no external services.

use std::future::Future;

use switchyard_mocker::MockerArgs;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::DemoArgs;
use crate::config::{parse_worker_flag, ServeConfig};
use crate::serve;

pub const DEMO_MODEL: &str = "mock-model";

/// Runs until `shutdown` resolves, then stops the frontend and every mocker.
pub async fn run(args: DemoArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let mut config = ServeConfig::default();
    config.routing.default.policy = args.policy;
    config.http.listen = args.listen;
    let mut mockers = Vec::new();
    for _ in 0..args.workers.max(1) {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let mocker = MockerArgs {
            listen: addr,
            model: DEMO_MODEL.to_owned(),
            // Realistic-looking pacing so streaming is visible in a terminal.
            ttft_ms: 20.0,
            itl_ms: 15.0,
            ..MockerArgs::default()
        };
        let mut rx = stopped.clone();
        mockers.push(tokio::spawn(switchyard_mocker::run(
            mocker,
            listener,
            async move {
                let _ = rx.changed().await;
            },
        )));
        config.workers.push(
            parse_worker_flag(&format!("{DEMO_MODEL}=http://{addr}"))
                .map_err(anyhow::Error::msg)?,
        );
    }
    for flag in &args.plugins {
        config
            .plugins
            .modules
            .push(crate::plugins::parse_plugin_flag(flag).map_err(anyhow::Error::msg)?);
    }
    // The console needs the admin API: the given token (env), else a fresh one for this run.
    let token = match std::env::var(crate::env_names::ADMIN_TOKEN) {
        Ok(t) if !t.is_empty() => t,
        _ => format!("{:032x}", rand::random::<u128>()),
    };
    config.http.admin_token = Some(token.clone());
    config.http.admin.listen = args.admin_listen;
    config.validate()?;
    let listener = TcpListener::bind(config.http.listen).await?;
    let url = format!("http://{}", listener.local_addr()?);
    println!(
        "Switchyard demo: {} mocker workers serving `{DEMO_MODEL}`, policy {}",
        mockers.len(),
        args.policy
    );
    println!("  OpenAI base URL: {url}/v1");
    println!(
        "  try: curl -N {url}/v1/chat/completions -H 'Content-Type: application/json' \\\n         -d '{{\"model\":\"{DEMO_MODEL}\",\"stream\":true,\"messages\":[{{\"role\":\"user\",\"content\":\"Hello!\"}}]}}'"
    );
    for plugin in &args.plugins {
        println!("  plugin: {plugin}");
    }
    // The token goes in the fragment, which browsers never send to the server.
    println!(
        "  routing console: http://{}/console#token={token}",
        args.admin_listen
    );
    println!("  metrics: {url}/metrics   (Ctrl-C stops everything)");
    let result = serve::run(config, listener, shutdown).await;
    let _ = stop.send(true);
    for mocker in mockers {
        let _ = mocker.await;
    }
    result
}
