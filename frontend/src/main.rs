//! `switchyard`: parse the command line, set up logging, run the subcommand.

use clap::Parser;
use switchyard::cli::{Cli, Command};
use switchyard::{demo, env_names, serve, server};
use tokio::net::TcpListener;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    if let Command::Plugin(command) = cli.command {
        // Synchronous tools: no runtime needed.
        let code = switchyard::plugin_cli::run(command)?;
        std::process::exit(code);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                let config = args.into_config()?;
                let listener = TcpListener::bind(config.listen).await?;
                serve::run(config, listener, server::shutdown_signal()).await
            }
            Command::Mocker(cmd) => {
                switchyard::mocker_cmd::run(cmd, server::shutdown_signal()).await
            }
            Command::Register(cmd) => {
                switchyard::register_cmd::run(cmd, server::shutdown_signal()).await
            }
            Command::KvBridge(cmd) => {
                switchyard::kv_bridge_cmd::run(cmd, server::shutdown_signal()).await
            }
            Command::Demo(args) => demo::run(args, server::shutdown_signal()).await,
            Command::Plugin(_) => Ok(()),
        }
    })
}

fn init_tracing() {
    // SWITCHYARD_LOG wins; RUST_LOG is honoured too (the chart sets it).
    let filter = tracing_subscriber::EnvFilter::try_from_env(env_names::LOG)
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
