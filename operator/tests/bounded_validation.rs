//! Component validation in a child process: a real component validates through the child,
//! a child over its memory bound and a child past its wall-time bound each end as an
//! `Invalid` verdict (`Validated=False`), never a hang or a crash of the operator.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::path::PathBuf;
use std::time::Duration;

use switchyard_k8s::PluginKind;
use switchyard_operator::bounded_validator::ChildProcessValidator;
use switchyard_operator::validator::{ComponentValidator, ValidationError};

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

fn operator(memory_mib: u64) -> ChildProcessValidator {
    ChildProcessValidator {
        program: PathBuf::from(env!("CARGO_BIN_EXE_switchyard-operator")),
        args: vec![
            "validate-component".into(),
            "--memory-mib".into(),
            memory_mib.to_string(),
        ],
        timeout: Duration::from_secs(120),
    }
}

#[test]
fn a_real_component_validates_in_the_child() {
    let kinds = operator(2048)
        .detect_kinds(&wasm("testing-all-kinds"))
        .unwrap();
    assert_eq!(
        kinds,
        [
            PluginKind::Filter,
            PluginKind::Scorer,
            PluginKind::Picker,
            PluginKind::Health
        ]
    );
    let err = operator(2048).detect_kinds(b"not wasm").unwrap_err();
    assert!(matches!(err, ValidationError::Invalid(_)), "{err}");
}

#[test]
fn a_compile_over_the_memory_bound_is_invalid_not_a_crash() {
    let err = operator(4)
        .detect_kinds(&wasm("testing-all-kinds"))
        .unwrap_err();
    assert_eq!(
        err,
        ValidationError::Invalid(
            "compiling the component exceeded the validation memory bound or crashed".into()
        )
    );
}

#[test]
fn a_compile_past_the_wall_time_bound_is_killed() {
    // A stand-in child that never answers: the watchdog must end it.
    let stuck = ChildProcessValidator {
        program: PathBuf::from("sleep"),
        args: vec!["600".into()],
        timeout: Duration::from_millis(300),
    };
    let err = stuck.detect_kinds(b"\0asm").unwrap_err();
    assert!(
        matches!(&err, ValidationError::Invalid(m) if m.contains("took longer than")),
        "{err}"
    );
}
