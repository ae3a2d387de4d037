//! `switchyard plugin check`: compiles a component, says which worlds it implements, runs each
//! decision once on sample input, and reports every step in plain words.

use std::fmt;
use std::time::Instant;

use crate::sample::{check_candidates, sample_observations, CHECK_CASES};
use crate::{
    sample_request, sample_topology, Candidate, Health, HostConfig, PluginHost, PluginKind,
    PluginLimits,
};

/// Candidates in the sample decision (one per edge case, see [`check_candidates`]).
const SAMPLE_CANDIDATES: usize = CHECK_CASES.len();

/// One step of a check.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CheckStep {
    /// What was tried, e.g. "run the scorer on 8 sample candidates".
    pub step: String,
    /// Whether it worked.
    pub ok: bool,
    /// The result or the error, in plain words.
    pub detail: String,
}

/// Outcome of [`check`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    /// Whether every step passed.
    pub ok: bool,
    /// Kinds the component implements (empty if it could not be compiled or is not a plugin).
    pub kinds: Vec<PluginKind>,
    /// SHA-256 of the bytes, hex.
    pub sha256: Option<String>,
    /// Component size.
    pub size_bytes: usize,
    /// Compile + first instantiation time, milliseconds.
    pub load_ms: f64,
    /// The candidates the routing decisions were run on.
    pub candidates: Vec<Candidate>,
    /// The steps, in order.
    pub steps: Vec<CheckStep>,
}

/// Checks `bytes` with `config_json` (`"{}"` for defaults). Never fails: problems are steps
/// with `ok: false`.
pub fn check(bytes: &[u8], config_json: &str, limits: PluginLimits) -> CheckReport {
    let mut report = CheckReport {
        ok: false,
        kinds: Vec::new(),
        sha256: None,
        size_bytes: bytes.len(),
        load_ms: 0.0,
        candidates: check_candidates(),
        steps: Vec::new(),
    };
    let host = match PluginHost::new(HostConfig {
        pooling: false,
        ..HostConfig::default()
    }) {
        Ok(host) => host,
        Err(e) => {
            step(&mut report, "start the plugin host", Err(e.to_string()));
            return report;
        }
    };
    let started = Instant::now();
    let loaded = host.load("check", bytes, limits, config_json);
    report.load_ms = started.elapsed().as_secs_f64() * 1e3;
    let plugin = match loaded {
        Ok(plugin) => plugin,
        Err(e) => {
            step(
                &mut report,
                "compile, instantiate and configure",
                Err(e.to_string()),
            );
            return report;
        }
    };
    report.kinds = plugin.kinds().to_vec();
    report.sha256 = Some(plugin.sha256().to_owned());
    let worlds: Vec<&str> = plugin.kinds().iter().map(|k| k.world()).collect();
    let loaded = format!(
        "implements {} (loaded in {:.1} ms)",
        worlds.join(", "),
        report.load_ms
    );
    let mut all_ok = step(
        &mut report,
        "compile, instantiate and configure",
        Ok(loaded),
    );
    let topology = sample_topology(SAMPLE_CANDIDATES);
    all_ok &= step(
        &mut report,
        "deliver a sample topology (on-topology)",
        plugin
            .on_topology(topology)
            .map(|()| "accepted".to_owned())
            .map_err(|e| e.to_string()),
    );
    let request = sample_request();
    let candidates = report.candidates.clone();
    for kind in plugin
        .kinds()
        .iter()
        .copied()
        .filter(|k| *k != PluginKind::Router)
    {
        let name = format!("run the {kind} on the {SAMPLE_CANDIDATES} sample candidates");
        let outcome = match kind {
            PluginKind::Filter => plugin
                .filter(&request, &candidates)
                .map(|v| format!("kept positions {v:?}")),
            PluginKind::Scorer => plugin
                .score(&request, &candidates)
                .map(|v| format!("scores {v:?}")),
            PluginKind::Picker => plugin
                .pick(&request, &candidates)
                .map(|v| format!("ranking {v:?}")),
            PluginKind::HealthPolicy => plugin
                .assess(&sample_observations(
                    2 * SAMPLE_CANDIDATES,
                    SAMPLE_CANDIDATES,
                ))
                .map(|v| format!("{} verdicts: {v:?}", v.len())),
            PluginKind::Router => continue,
        };
        all_ok &= step(&mut report, &name, outcome.map_err(|e| e.to_string()));
    }
    report.ok = all_ok;
    report
}

/// Appends a step to the report; returns whether it passed.
fn step(report: &mut CheckReport, name: &str, outcome: Result<String, String>) -> bool {
    let ok = outcome.is_ok();
    let detail = outcome.unwrap_or_else(|e| e);
    report.steps.push(CheckStep {
        step: name.to_owned(),
        ok,
        detail,
    });
    ok
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.kinds.is_empty() {
            writeln!(
                f,
                "sample candidates (positions as the answers below use them):"
            )?;
            writeln!(
                f,
                "  pos  case            in-flight  queued  kv-usage  cached  ttft-ms  itl-ms  health     weight"
            )?;
            for (position, (c, case)) in self.candidates.iter().zip(CHECK_CASES).enumerate() {
                let health = match c.health {
                    Health::Healthy => "healthy",
                    Health::Degraded => "degraded",
                    Health::Unhealthy => "unhealthy",
                };
                writeln!(
                    f,
                    "  {position:>3}  {case:<14} {:>10} {:>7} {:>9.2} {:>7} {:>8.1} {:>7.1}  {health:<9} {:>6.1}",
                    c.in_flight,
                    c.queued,
                    c.kv_usage,
                    c.cached_prefix_blocks,
                    c.ttft_ewma_ms,
                    c.itl_ewma_ms,
                    c.weight
                )?;
            }
        }
        for s in &self.steps {
            writeln!(
                f,
                "{} {}: {}",
                if s.ok { "ok  " } else { "FAIL" },
                s.step,
                s.detail
            )?;
        }
        if let Some(sha) = &self.sha256 {
            writeln!(f, "sha256 {sha}, {} bytes", self.size_bytes)?;
        }
        writeln!(
            f,
            "{}",
            if self.ok {
                "the plugin passed every check"
            } else {
                "the plugin FAILED the check"
            }
        )
    }
}
