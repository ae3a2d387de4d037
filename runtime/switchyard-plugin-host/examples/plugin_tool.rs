//! A minimal stand-in for `switchyard plugin check|bench|replay`, for plugin authors working on
//! the host before the frontend CLI exists:
//!
//! ```sh
//! cargo run --release -p switchyard-plugin-host --example plugin_tool -- check FILE [CONFIG_JSON]
//! cargo run --release -p switchyard-plugin-host --example plugin_tool -- bench FILE [CONFIG_JSON]
//! cargo run --release -p switchyard-plugin-host --example plugin_tool -- replay FILE TRACE.jsonl [CONFIG_JSON]
//! ```

use std::io::BufReader;

use anyhow::{bail, Context};
use switchyard_plugin_host::{bench, check, replay, PluginLimits};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, file) = match (args.first(), args.get(1)) {
        (Some(c), Some(f)) => (c.as_str(), f.as_str()),
        _ => bail!("usage: plugin_tool check|bench FILE [CONFIG] | replay FILE TRACE [CONFIG]"),
    };
    let bytes = std::fs::read(file).with_context(|| format!("reading {file}"))?;
    match command {
        "check" => {
            let limits = PluginLimits {
                memory_bytes: 256 << 20,
                ..PluginLimits::default()
            };
            let report = check(&bytes, args.get(2).map_or("{}", String::as_str), limits);
            println!("{report}");
            if !report.ok {
                std::process::exit(1);
            }
        }
        "bench" => println!(
            "{}",
            bench(&bytes, args.get(2).map_or("{}", String::as_str))?
        ),
        "replay" => {
            let trace = args.get(2).context("replay needs a trace file")?;
            let reader = BufReader::new(
                std::fs::File::open(trace).with_context(|| format!("opening {trace}"))?,
            );
            let report = replay(&bytes, args.get(3).map_or("{}", String::as_str), reader)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        other => bail!("unknown command {other:?}"),
    }
    Ok(())
}
