//! The Rust scaffold: a cdylib crate built with wit-bindgen for `wasm32-wasip2`, its
//! decision in a plain function with unit tests that run on the host (`cargo test`).

use super::{Kind, Scaffold};

pub fn files(s: &Scaffold) -> Vec<(String, String)> {
    let crate_name = s.name.replace('-', "_");
    vec![
        ("Cargo.toml".into(), cargo_toml(&s.name)),
        ("src/lib.rs".into(), lib_rs(s)),
        (
            "build.sh".into(),
            format!(
                "#!/bin/sh\n# Builds {name}.wasm (needs: rustup target add wasm32-wasip2).\nset -e\ncd \"$(dirname \"$0\")\"\ncargo rustc --lib --release --target wasm32-wasip2 --crate-type cdylib\ncp \"${{CARGO_TARGET_DIR:-target}}/wasm32-wasip2/release/{crate_name}.wasm\" {name}.wasm\necho \"built {name}.wasm\"\n",
                name = s.name
            ),
        ),
        (
            "test.sh".into(),
            format!(
                "#!/bin/sh\n# Unit tests on the host, then the component through the router's own check.\nset -e\ncd \"$(dirname \"$0\")\"\ncargo test\n./build.sh\nswitchyard plugin check {name}.wasm\n",
                name = s.name
            ),
        ),
        (".gitignore".into(), "/target\n*.wasm\n".into()),
    ]
}

fn cargo_toml(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

# An rlib, so `cargo test` links on the host (a host cdylib cannot export the component's
# `ns:pkg/iface#func` symbol names); build.sh asks for the cdylib for wasm32-wasip2.
[lib]
crate-type = ["rlib"]

[dependencies]
wit-bindgen = {{ version = "0.63", default-features = false, features = ["macros", "realloc", "std"] }}

# Small components: the router compiles each once, so size matters more than peak speed.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"

# Its own workspace, so it builds wherever it is copied.
[workspace]
"#
    )
}

fn lib_rs(s: &Scaffold) -> String {
    let (interface, guest, world) = match s.kind {
        Kind::Scorer => ("scoring", "Scoring", "scorer"),
        Kind::Filter => ("filtering", "Filtering", "filter"),
        Kind::Picker => ("picking", "Picking", "picker"),
    };
    let (export, decide, tests) = match s.kind {
        Kind::Scorer => (
            "    fn score(_request: Request, candidates: Vec<Candidate>) -> Vec<f64> {\n        candidates.iter().map(score).collect()\n    }",
            r#"/// Higher is better. Less work per unit of weight scores higher; an unhealthy instance or
/// a full KV cache sinks below every other (it is still scored: the router may have nothing
/// else).
pub fn score(c: &Candidate) -> f64 {
    if c.health == Health::Unhealthy || c.kv_usage >= 0.99 {
        return -1e9;
    }
    let load = f64::from(c.in_flight) + f64::from(c.queued);
    -load / f64::from(c.weight.max(0.001))
}"#,
            r#"    #[test]
    fn less_load_scores_higher_and_a_full_cache_lowest() {
        let idle = candidate(0, 0, 0.1);
        let busy = candidate(1, 5, 0.1);
        let full = candidate(2, 0, 1.0);
        assert!(score(&idle) > score(&busy));
        assert!(score(&busy) > score(&full));
    }"#,
        ),
        Kind::Filter => (
            "    fn filter(_request: Request, candidates: Vec<Candidate>) -> Vec<u32> {\n        keep(&candidates)\n    }",
            r#"/// Positions of the candidates that stay eligible: here, every instance whose KV cache is
/// not nearly full. Keeping none makes the router answer 503 `filtered_out`, so when every
/// cache is full this keeps them all.
pub fn keep(candidates: &[Candidate]) -> Vec<u32> {
    let roomy: Vec<u32> = (0u32..)
        .zip(candidates)
        .filter(|(_, c)| c.kv_usage < 0.95)
        .map(|(i, _)| i)
        .collect();
    if roomy.is_empty() {
        (0u32..).take(candidates.len()).collect()
    } else {
        roomy
    }
}"#,
            r#"    #[test]
    fn full_caches_are_dropped_unless_all_are_full() {
        let some = [candidate(0, 0, 0.1), candidate(1, 0, 0.99)];
        assert_eq!(keep(&some), [0]);
        let all = [candidate(0, 0, 0.99), candidate(1, 0, 1.0)];
        assert_eq!(keep(&all), [0, 1]);
    }"#,
        ),
        Kind::Picker => (
            "    fn pick(_request: Request, candidates: Vec<Candidate>) -> Vec<u32> {\n        rank(&candidates)\n    }",
            r#"/// Positions best first (the router tries them in this order): healthy before unhealthy,
/// then the fewest requests in flight and queued; ties keep the order given, which is the
/// scorers' ranking.
pub fn rank(candidates: &[Candidate]) -> Vec<u32> {
    let mut order: Vec<u32> = (0u32..).take(candidates.len()).collect();
    order.sort_by_key(|&i| {
        let c = &candidates[i as usize];
        (c.health == Health::Unhealthy, c.in_flight.saturating_add(c.queued))
    });
    order
}"#,
            r#"    #[test]
    fn the_least_busy_healthy_instance_comes_first() {
        let mut sick = candidate(0, 0, 0.1);
        sick.health = Health::Unhealthy;
        let ranked = rank(&[sick, candidate(1, 4, 0.1), candidate(2, 1, 0.1)]);
        assert_eq!(ranked, [2, 1, 0]);
    }"#,
        ),
    };
    format!(
        r#"//! {name}: a Switchyard {world} plugin (world `switchyard:plugin/{world}`).
//!
//! Build: `./build.sh` (cargo rustc --release --target wasm32-wasip2 --crate-type cdylib). Test: `cargo test`
//! (the decision is a plain function, tested on the host), then
//! `switchyard plugin check {name}.wasm`.

use exports::switchyard::plugin::lifecycle::{{Guest as Lifecycle, Topology}};
use exports::switchyard::plugin::{interface}::{{Candidate, Guest as {guest}, Request}};
use switchyard::plugin::types::Health;

// The WIT package is copied into wit/ (the router's own copy lives in its repository's wit/).
wit_bindgen::generate!({{ path: "wit", world: "switchyard:plugin/{world}" }});

struct Plugin;

impl Lifecycle for Plugin {{
    fn configure(config: String) -> Result<(), String> {{
        // The `config` of the plugin's entry in the router (YAML, admin API or RouterPlugin),
        // as JSON. Parse it here (add serde_json) and return Err("why") to refuse the load.
        let _ = config;
        Ok(())
    }}

    /// Names, labels and URLs arrive here once per change of the instance set; cache what
    /// you need by `id` (decisions only carry numbers).
    fn on_topology(_topology: Topology) {{}}
}}

impl {guest} for Plugin {{
{export}
}}

{decide}

export!(Plugin);

#[cfg(test)]
mod tests {{
    use super::*;

    fn candidate(id: u32, in_flight: u32, kv_usage: f32) -> Candidate {{
        Candidate {{
            id,
            in_flight,
            queued: 0,
            kv_usage,
            cached_prefix_blocks: 0,
            ttft_ewma_ms: 0.0,
            itl_ewma_ms: 0.0,
            health: Health::Healthy,
            weight: 1.0,
        }}
    }}

{tests}
}}
"#,
        name = s.name,
    )
}
