//! Which plugin kinds a component implements, decided by type-checking its exports against
//! the WIT interfaces (not by export names alone), with the host's imports.

use std::sync::OnceLock;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use wasmtime::component::InstancePre;

use crate::host_state::HostState;
use crate::linker::build_linker;
use crate::{Error, PluginKind, Result, WitVersion};

/// Compiles `bytes` and returns the plugin kinds it implements (against either WIT version),
/// in pipeline order
/// (`Filter`, `Scorer`, `Picker`, `HealthPolicy`), followed by `Router` when it implements
/// all four. Fails with [`Error::Compile`] for bytes that are not a component and
/// [`Error::NotAPlugin`] for a component that implements none of the worlds or imports
/// something the host does not provide.
///
/// Uses a process-wide engine without pooling or a ticker, so it is cheap to call from
/// validation code (the operator) that never runs the plugin.
pub fn detect_kinds(bytes: &[u8]) -> Result<Vec<PluginKind>> {
    let (engine, linker) = detection_engine()?;
    let component = Component::new(engine, bytes).map_err(|e| Error::Compile(format!("{e:#}")))?;
    kinds_of(linker, &component)
}

pub(crate) fn kinds_of(
    linker: &Linker<HostState>,
    component: &Component,
) -> Result<Vec<PluginKind>> {
    world_of(linker, component).map(|(_, kinds)| kinds)
}

/// The WIT version a component's `lifecycle` export matches (0.2.0 first), and the kinds it
/// implements in that version. A component mixing versions implements only the kinds of the
/// version its `lifecycle` belongs to.
pub(crate) fn world_of(
    linker: &Linker<HostState>,
    component: &Component,
) -> Result<(WitVersion, Vec<PluginKind>)> {
    let pre = linker.instantiate_pre(component).map_err(|e| {
        let detail = format!("{e:#}");
        Error::NotAPlugin(format!(
            "it imports something the host does not provide (only switchyard:plugin/host and an empty WASI are available): {detail}{}",
            build_fix(&detail)
        ))
    })?;
    let (version, mut kinds) = if crate::bindings_v02::lifecycle::GuestIndices::new(&pre).is_ok() {
        (WitVersion::V0_2, kinds_v02(&pre))
    } else if crate::bindings::lifecycle::GuestIndices::new(&pre).is_ok() {
        (WitVersion::V0_1, kinds_v01(&pre))
    } else {
        return Err(Error::NotAPlugin(
            "it does not export switchyard:plugin/lifecycle (configure, on-topology) of version 0.2.0 or 0.1.0".into(),
        ));
    };
    if kinds.is_empty() {
        return Err(Error::NotAPlugin(format!(
            "it exports none of filtering, scoring, picking or health-assessment (with the {version} signatures)"
        )));
    }
    if kinds.len() == PluginKind::DECISIONS.len() {
        kinds.push(PluginKind::Router);
    }
    Ok((version, kinds))
}

/// Which decision interfaces of one bindings module `pre` exports, in pipeline order.
macro_rules! kinds_in {
    ($name:ident, $bindings:ident) => {
        fn $name(pre: &InstancePre<HostState>) -> Vec<PluginKind> {
            use crate::$bindings::{filtering, health_assessment, picking, scoring};
            [
                (
                    filtering::GuestIndices::new(pre).is_ok(),
                    PluginKind::Filter,
                ),
                (scoring::GuestIndices::new(pre).is_ok(), PluginKind::Scorer),
                (picking::GuestIndices::new(pre).is_ok(), PluginKind::Picker),
                (
                    health_assessment::GuestIndices::new(pre).is_ok(),
                    PluginKind::HealthPolicy,
                ),
            ]
            .into_iter()
            .filter_map(|(has, kind)| has.then_some(kind))
            .collect()
        }
    };
}

kinds_in!(kinds_v01, bindings);
kinds_in!(kinds_v02, bindings_v02);

/// The build change that drops an import the host refuses, for the toolchains that add one
/// unasked (the message names the missing import).
fn build_fix(missing: &str) -> &'static str {
    if missing.contains("wasi:http") {
        // componentize-js links its fetch() support unless told not to; its CLI's
        // `-d/--disable <feature...>` takes the feature names.
        "; a JavaScript component built with componentize-js imports wasi:http unless built with `-d http -d fetch-event` (the same flags for `jco componentize`)"
    } else if missing.contains("wasi:sockets") || missing.contains("wasi:filesystem") {
        "; plugins get no network or filesystem: remove the code that opens sockets or files (in Rust, std::net and std::fs; in Python, socket/open)"
    } else {
        ""
    }
}

fn detection_engine() -> Result<&'static (Engine, Linker<HostState>)> {
    static ENGINE: OnceLock<std::result::Result<(Engine, Linker<HostState>), String>> =
        OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut cfg = Config::new();
            cfg.concurrency_support(false);
            let engine = Engine::new(&cfg).map_err(|e| format!("{e:#}"))?;
            let linker = build_linker(&engine).map_err(|e| e.to_string())?;
            Ok((engine, linker))
        })
        .as_ref()
        .map_err(|e| Error::Host(format!("detection engine: {e}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_wasi_http_import_names_the_componentize_js_flags() {
        let fix = super::build_fix("component imports instance `wasi:http/types@0.2.3`, but ...");
        assert!(fix.contains("-d http -d fetch-event"), "{fix}");
        assert_eq!(super::build_fix("something else"), "");
    }
}
