//! [`register!`](crate::register): generates a plugin's bindings and exports its decision
//! from plain functions.

/// Generates the bindings of one world of `switchyard:plugin@0.2.0` in the calling crate and
/// exports a plugin of that kind from plain functions. Call it once, at the crate root of a
/// `cdylib`; `wit:` is the path of the repository's `wit/v0.2` relative to the plugin's
/// `Cargo.toml`.
///
/// ```ignore
/// switchyard_plugin::register!(wit: "../../../wit/v0.2", scorer: score);
/// switchyard_plugin::register!(wit: "wit/v0.2", filter: keep, configure: configure);
/// switchyard_plugin::register!(wit: "wit/v0.2", picker: pick, on_topology: remember);
/// switchyard_plugin::register!(wit: "wit/v0.2", health_policy: assess);
/// ```
///
/// - `filter` / `picker`: `fn(&Request, &Frame) -> Vec<u32>` (positions into the frame)
/// - `scorer`: `fn(&Request, &Frame) -> Vec<f64>` (one finite score per candidate)
/// - `health_policy`: `fn(Vec<Observation>) -> Vec<Verdict>`, the generated types
///   (`switchyard::plugin::types::{Observation, Verdict}` in the plugin's crate)
/// - `configure`: `fn(&str) -> Result<(), String>`; without it every config is accepted
/// - `on_topology`: `fn(&Topology)` with the generated `switchyard::plugin::types::Topology`;
///   without it topologies are ignored
///
/// The host imports are generated as `switchyard::plugin::host::{log, monotonic_now, random}`.
#[macro_export]
macro_rules! register {
    (wit: $wit:literal, filter: $f:path $(, configure: $c:path)? $(, on_topology: $t:path)? $(,)?) => {
        $crate::__bindings!($wit, "switchyard:plugin/filter");
        $crate::__lifecycle!($(, $c)? ; $($t)?);
        impl exports::switchyard::plugin::filtering::Guest for __SwitchyardPlugin {
            fn filter(
                request: switchyard::plugin::types::Request,
                candidates: switchyard::plugin::types::Frame,
            ) -> Vec<u32> {
                $f(&$crate::__request!(request), &$crate::__frame!(candidates))
            }
        }
        export!(__SwitchyardPlugin);
    };
    (wit: $wit:literal, scorer: $f:path $(, configure: $c:path)? $(, on_topology: $t:path)? $(,)?) => {
        $crate::__bindings!($wit, "switchyard:plugin/scorer");
        $crate::__lifecycle!($(, $c)? ; $($t)?);
        impl exports::switchyard::plugin::scoring::Guest for __SwitchyardPlugin {
            fn score(
                request: switchyard::plugin::types::Request,
                candidates: switchyard::plugin::types::Frame,
            ) -> Vec<f64> {
                $f(&$crate::__request!(request), &$crate::__frame!(candidates))
            }
        }
        export!(__SwitchyardPlugin);
    };
    (wit: $wit:literal, picker: $f:path $(, configure: $c:path)? $(, on_topology: $t:path)? $(,)?) => {
        $crate::__bindings!($wit, "switchyard:plugin/picker");
        $crate::__lifecycle!($(, $c)? ; $($t)?);
        impl exports::switchyard::plugin::picking::Guest for __SwitchyardPlugin {
            fn pick(
                request: switchyard::plugin::types::Request,
                candidates: switchyard::plugin::types::Frame,
            ) -> Vec<u32> {
                $f(&$crate::__request!(request), &$crate::__frame!(candidates))
            }
        }
        export!(__SwitchyardPlugin);
    };
    (wit: $wit:literal, health_policy: $f:path $(, configure: $c:path)? $(, on_topology: $t:path)? $(,)?) => {
        $crate::__bindings!($wit, "switchyard:plugin/health-policy");
        $crate::__lifecycle!($(, $c)? ; $($t)?);
        impl exports::switchyard::plugin::health_assessment::Guest for __SwitchyardPlugin {
            fn assess(
                observations: Vec<switchyard::plugin::types::Observation>,
            ) -> Vec<switchyard::plugin::types::Verdict> {
                $f(observations)
            }
        }
        export!(__SwitchyardPlugin);
    };
}

/// `wit_bindgen::generate!` for one world, through this crate's copy of wit-bindgen.
#[doc(hidden)]
#[macro_export]
macro_rules! __bindings {
    ($wit:literal, $world:literal) => {
        $crate::__wit_bindgen::generate!({
            path: $wit,
            world: $world,
            runtime_path: "switchyard_plugin::__wit_bindgen::rt",
        });
    };
}

/// The plugin type and its `lifecycle` export.
#[doc(hidden)]
#[macro_export]
macro_rules! __lifecycle {
    ($(, $c:path)? ; $($t:path)?) => {
        struct __SwitchyardPlugin;

        impl exports::switchyard::plugin::lifecycle::Guest for __SwitchyardPlugin {
            fn configure(config: String) -> Result<(), String> {
                $crate::__configure!(config $(, $c)?)
            }

            fn on_topology(topology: switchyard::plugin::types::Topology) {
                $( $t(&topology); )?
                let _ = topology;
            }
        }
    };
}

/// `configure`'s body: the plugin's hook, or accept anything.
#[doc(hidden)]
#[macro_export]
macro_rules! __configure {
    ($config:ident) => {{
        let _ = $config;
        Ok(())
    }};
    ($config:ident, $c:path) => {
        $c(&$config)
    };
}

/// The generated `request` as a [`Request`](crate::Request).
#[doc(hidden)]
#[macro_export]
macro_rules! __request {
    ($r:ident) => {{
        use switchyard::plugin::types::{Priority as P, Stage as S};
        $crate::Request {
            model_index: $r.model_index,
            prompt_blocks: $r.prompt_blocks,
            prompt_tokens: $r.prompt_tokens,
            max_tokens: $r.max_tokens,
            session_hash: $r.session_hash,
            prefix_hash: $r.prefix_hash,
            streaming: $r.streaming,
            stage: match $r.stage {
                S::Both => $crate::Stage::Both,
                S::Prefill => $crate::Stage::Prefill,
                S::Decode => $crate::Stage::Decode,
            },
            priority: match $r.priority {
                P::Low => $crate::Priority::Low,
                P::Normal => $crate::Priority::Normal,
                P::High => $crate::Priority::High,
            },
            tenant_weight: $r.tenant_weight,
            deadline_ms: $r.deadline_ms,
        }
    }};
}

/// The generated `frame` as a [`Frame`](crate::Frame) view (no copy).
#[doc(hidden)]
#[macro_export]
macro_rules! __frame {
    ($f:ident) => {
        $crate::Frame {
            id: &$f.id,
            in_flight: &$f.in_flight,
            running: &$f.running,
            queued: &$f.queued,
            kv_usage: &$f.kv_usage,
            cached_prefix_blocks: &$f.cached_prefix_blocks,
            ttft_ewma_ms: &$f.ttft_ewma_ms,
            itl_ewma_ms: &$f.itl_ewma_ms,
            health: &$f.health,
            weight: &$f.weight,
            adapter_resident: &$f.adapter_resident,
        }
    };
}
