//! The production validator against real components built by `scripts/build-plugins.sh`
//! (`plugins/target/wasm/*.wasm`). Fails — never skips — when they are missing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::path::PathBuf;

use switchyard_k8s::PluginKind;
use switchyard_operator::validator::{ComponentValidator, PluginHostValidator};

fn wasm(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read plugin {} ({e}). Build the plugins first: scripts/build-plugins.sh rust",
            path.display()
        )
    })
}

#[test]
fn real_components_report_their_worlds() {
    let v = PluginHostValidator;
    let all = v.detect_kinds(&wasm("testing-all-kinds")).unwrap();
    assert_eq!(
        all,
        [
            PluginKind::Filter,
            PluginKind::Scorer,
            PluginKind::Picker,
            PluginKind::Health
        ]
    );
    let rr = v.detect_kinds(&wasm("round-robin")).unwrap();
    assert!(!rr.is_empty());
    assert!(
        rr.len() < 4,
        "round-robin implements one world, not all: {rr:?}"
    );
}
