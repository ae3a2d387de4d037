//! `switchyard`: parse the command line, set up logging, run the subcommand.

use clap::Parser;
use switchyard::cli::{Cli, Command};
use switchyard::{demo, env_names, pipeline, serve, server};
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
                let listener = TcpListener::bind(config.http.listen).await?;
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
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let is_access = |m: &tracing::Metadata<'_>| m.target() == pipeline::access_log::TARGET;
    // The access log: bare JSON lines on stdout (written by `pipeline::access_writer`, off the
    // request path); everything else as text on stderr. This layer receives no events: it is
    // what makes the `switchyard::access` target count as enabled under the filter, so
    // `SWITCHYARD_LOG=…,switchyard::access=off` still turns the access log off.
    let access = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stdout)
        .without_time()
        .with_level(false)
        .with_target(false)
        .with_ansi(false)
        .with_filter(tracing_subscriber::filter::filter_fn(is_access));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(tracing_subscriber::filter::filter_fn(move |m| {
            !is_access(m)
        }));
    tracing_subscriber::registry()
        .with(filter)
        .with(access)
        .with(logs)
        .init();
}
