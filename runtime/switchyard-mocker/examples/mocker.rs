//! Runs one mocker standalone (the frontend's `switchyard mocker` does the same):
//! `cargo run --release -p switchyard-mocker --example mocker -- --listen 127.0.0.1:8100`.

use clap::Parser;
use switchyard_mocker::MockerArgs;

#[derive(Parser)]
#[command(about = "A simulated GPU worker with an OpenAI-compatible API")]
struct Cli {
    #[command(flatten)]
    args: MockerArgs,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Cli::parse().args;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("mocker listening on http://{}", listener.local_addr()?);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    switchyard_mocker::run(args, listener, shutdown).await?;
    Ok(())
}
