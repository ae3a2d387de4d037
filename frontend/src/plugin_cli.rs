//! `switchyard plugin check | bench | replay`: tools for plugin authors.

use std::io::BufReader;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use switchyard_plugin_host::PluginLimits;

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Say which worlds a component implements and run it once on sample input.
    Check(CheckArgs),
    /// Per-decision latency at 8, 64 and 512 candidates, and instantiation cost.
    Bench(BenchArgs),
    /// Feed a recorded decision trace (`serve --record-decisions`) to a plugin and report how
    /// its choices differ from what was recorded. Deterministic: same trace, same output.
    Replay(ReplayArgs),
    /// Scaffold a buildable plugin: source, a unit test, build.sh, test.sh, README and wit/.
    New(crate::plugin_new::NewArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The component (.wasm).
    pub file: PathBuf,
    /// JSON passed to the plugin's `configure`.
    #[arg(long, default_value = "{}")]
    pub config: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    pub file: PathBuf,
    #[arg(long, default_value = "{}")]
    pub config: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    pub file: PathBuf,
    /// The JSONL trace written by `switchyard serve --record-decisions`.
    #[arg(long)]
    pub trace: PathBuf,
    #[arg(long, default_value = "{}")]
    pub config: String,
    /// Print every decision, not only the summary and the disagreements.
    #[arg(long)]
    pub verbose: bool,
    #[arg(long)]
    pub json: bool,
}

fn read(file: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))
}

/// Runs a plugin subcommand; returns the process exit code.
pub fn run(command: PluginCommand) -> anyhow::Result<i32> {
    match command {
        PluginCommand::Check(a) => {
            let report =
                switchyard_plugin_host::check(&read(&a.file)?, &a.config, PluginLimits::default());
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
            Ok(if report.ok { 0 } else { 1 })
        }
        PluginCommand::Bench(a) => {
            let report = switchyard_plugin_host::bench(&read(&a.file)?, &a.config)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                // The report's last line has no newline of its own.
                println!("{report}");
            }
            Ok(0)
        }
        PluginCommand::New(a) => {
            let (lang, kind, name) = (a.lang, a.kind, a.name.clone());
            let dir = crate::plugin_new::run(a)?;
            println!(
                "created {} ({lang:?} {kind:?} `{name}`); next:\n  cd {}\n  ./test.sh     # unit tests, build, switchyard plugin check\nsee its README.md",
                dir.display(),
                dir.display()
            );
            Ok(0)
        }
        PluginCommand::Replay(a) => {
            let file = std::fs::File::open(&a.trace)
                .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", a.trace.display()))?;
            let report =
                switchyard_plugin_host::replay(&read(&a.file)?, &a.config, BufReader::new(file))?;
            // Nothing replayed is a failure: a trace this plugin cannot be compared with
            // must not look like a clean run in a script.
            let code = if report.decisions.is_empty() { 1 } else { 0 };
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(code);
            }
            print_replay(&report, a.verbose);
            Ok(code)
        }
    }
}

/// The human-readable replay report: differing (or, verbose, all) decisions, every skipped
/// record with its reason, and a summary.
fn print_replay(report: &switchyard_plugin_host::ReplayReport, verbose: bool) {
    for d in &report.decisions {
        if verbose || d.agrees == Some(false) {
            let against = match (&d.against, d.recorded_kind == d.kind) {
                (Some(by), true) => format!(" vs {by}"),
                (Some(by), false) => format!(" in place of {by}'s {}", d.recorded_kind.world()),
                (None, _) => String::new(),
            };
            let would = d
                .would_pick
                .as_ref()
                .map(|p| format!(" would pick {p:?}"))
                .unwrap_or_default();
            println!(
                "line {:>6} {:<8} request {:<34} plugin {:?}{would} recorded {:?}{against}{}",
                d.line,
                d.kind.world(),
                d.request_id.as_deref().unwrap_or("-"),
                d.output,
                d.recorded,
                if d.agrees == Some(false) {
                    "  <- differs"
                } else {
                    ""
                }
            );
        }
    }
    for s in &report.skips {
        println!(
            "line {:>6} skipped  request {:<34} {}",
            s.line,
            s.request_id.as_deref().unwrap_or("-"),
            s.reason
        );
    }
    println!("{} decisions replayed ({} topologies, {} skipped); {} compared with the recording, {} differ; {} errors",
        report.decisions.len(), report.topologies, report.skipped, report.compared, report.disagreements, report.errors);
    if report.decisions.is_empty() {
        println!("nothing was replayed: no decision in this trace is one this plugin can be compared with (see the reasons above)");
    }
}
