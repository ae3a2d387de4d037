//! `switchyard`: parse the command line, set up logging, run the subcommand.

use clap::Parser;
use switchyard::cli::{Cli, Command};
use switchyard::telemetry::subscriber;
use switchyard::{demo, serve, server};
use tokio::net::TcpListener;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Plugin(command) = cli.command {
        subscriber::init(None)?;
        // Synchronous tools: no runtime needed.
        let code = switchyard::plugin_cli::run(command)?;
        std::process::exit(code);
    }
    // `serve` reads its config before logging starts: its `telemetry` section decides
    // whether spans are exported.
    let (command, config) = match cli.command {
        // Its deprecation warnings are logged while it loads, before the subscriber exists.
        Command::Serve(args) => (
            None,
            Some(subscriber::during_startup(|| args.into_config())?),
        ),
        other => (Some(other), None),
    };
    let mut warnings = Vec::new();
    let export = match &config {
        Some(config) => {
            config
                .telemetry
                .validate()
                .map_err(|(key, message)| anyhow::anyhow!("invalid `{key}`: {message}"))?;
            config
                .telemetry
                .resolve(|name| std::env::var(name).ok(), &mut warnings)
        }
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    {
        let _runtime = runtime.enter();
        subscriber::init(export.as_ref())?;
    }
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    runtime.block_on(async move {
        if let Some(config) = config {
            let listener = TcpListener::bind(config.http.listen).await?;
            return serve::run(config, listener, server::shutdown_signal()).await;
        }
        match command {
            Some(Command::Mocker(cmd)) => {
                switchyard::mocker_cmd::run(cmd, server::shutdown_signal()).await
            }
            Some(Command::Register(cmd)) => {
                switchyard::register_cmd::run(cmd, server::shutdown_signal()).await
            }
            Some(Command::KvBridge(cmd)) => {
                switchyard::kv_bridge_cmd::run(cmd, server::shutdown_signal()).await
            }
            Some(Command::Demo(args)) => demo::run(args, server::shutdown_signal()).await,
            Some(Command::Serve(_) | Command::Plugin(_)) | None => Ok(()),
        }
    })
}
