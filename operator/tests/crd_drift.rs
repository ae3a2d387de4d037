//! The chart ships exactly what `switchyard-operator crdgen` prints.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::path::Path;
use std::process::Command;

const CHART_CRDS: &str = "../charts/switchyard/crds/switchyard-crds.yaml";

#[test]
fn chart_crds_match_crdgen() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard-operator"))
        .arg("crdgen")
        .output()
        .expect("run switchyard-operator crdgen");
    assert!(
        out.status.success(),
        "crdgen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).expect("UTF-8 YAML");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(CHART_CRDS);
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        generated == shipped,
        "{} differs from `switchyard-operator crdgen`; regenerate it with\n  \
         cargo run -p switchyard-operator -- crdgen > charts/switchyard/crds/switchyard-crds.yaml",
        path.display()
    );
    let docs = generated.matches("kind: CustomResourceDefinition").count();
    assert_eq!(
        docs, 3,
        "WorkerPool, RouterPlugin and LoraAdapter are generated"
    );
}
