//! `switchyard plugin new` scaffolds a plugin that builds, passes its own unit tests and
//! `switchyard plugin check`; `plugin check` shows its edge-case candidates.

use std::path::Path;
use std::process::Command;

use switchyard_tests::switchyard_bin;

use crate::plugins::wasm;

/// Runs `program args` in `dir`: (exit code, stdout + stderr).
fn run(dir: &Path, program: &str, args: &[&str], env: &[(&str, &Path)]) -> (i32, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn scaffold(root: &Path, lang: &str, kind: &str, name: &str) -> std::path::PathBuf {
    let bin = switchyard_bin();
    let (code, out) = run(
        root,
        bin.to_str().unwrap(),
        &["plugin", "new", "--lang", lang, "--kind", kind, name],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    root.join(name)
}

#[test]
fn a_new_rust_scorer_builds_and_passes_the_check() {
    let root = tempfile::tempdir().unwrap();
    let dir = scaffold(root.path(), "rust", "scorer", "my-scorer");
    // Its own target directory: never share one between source trees. Offline: the crates
    // are in the local registry once scripts/build-plugins.sh has built the repository's.
    let target = root.path().join("target");
    let env = [("CARGO_TARGET_DIR", target.as_path())];
    let (code, out) = run(&dir, "cargo", &["test", "--offline"], &env);
    assert_eq!(code, 0, "cargo test failed:\n{out}");
    let (code, out) = run(&dir, "./build.sh", &[], &env);
    assert_eq!(code, 0, "build.sh failed:\n{out}");
    let bin = switchyard_bin();
    let (code, out) = run(
        &dir,
        bin.to_str().unwrap(),
        &["plugin", "check", "my-scorer.wasm"],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("implements scorer"), "{out}");
    assert!(out.ends_with("the plugin passed every check\n"), "{out:?}");
}

#[test]
fn python_and_js_scaffolds_pass_their_unit_tests() {
    let root = tempfile::tempdir().unwrap();
    for kind in ["scorer", "filter", "picker"] {
        let py = scaffold(root.path(), "python", kind, &format!("py-{kind}"));
        let (code, out) = run(&py, "python3", &["-m", "unittest"], &[]);
        assert_eq!(code, 0, "python {kind}:\n{out}");
        assert!(out.contains("Ran 1 test"), "{out}");
        let js = scaffold(root.path(), "js", kind, &format!("js-{kind}"));
        let (code, out) = run(&js, "node", &["--test"], &[]);
        assert_eq!(code, 0, "js {kind}:\n{out}");
        assert!(out.contains("pass 1"), "{out}");
    }
}

#[test]
fn plugin_check_shows_its_edge_case_candidates_and_ends_with_a_newline() {
    let bin = switchyard_bin();
    let (code, out) = run(
        Path::new("."),
        bin.to_str().unwrap(),
        &["plugin", "check", &wasm("least-loaded")],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    for case in [
        "idle",
        "KV saturated",
        "unhealthy",
        "degraded",
        "tie",
        "overloaded",
    ] {
        assert!(out.contains(case), "{case} missing:\n{out}");
    }
    assert!(out.ends_with('\n'), "{out:?}");
}
