//! What a plugin gets from WASI, and that using it from inside the frontend's async runtime
//! never takes a request down. Plugins run on the tokio worker thread that serves the request,
//! where wasmtime-wasi's synchronous bindings would otherwise try to start a nested runtime
//! (a panic) for every blocking call: a `print` or a `sleep` in a plugin.
#![allow(clippy::unwrap_used)] // Test helpers outside #[test] fns may unwrap too.

mod common;

use common::{candidate, host, load, request};
use switchyard_plugin_host::{Candidate, Error, LoadedPlugin};

fn three() -> [Candidate; 3] {
    [candidate(0, 0, 0), candidate(1, 0, 0), candidate(2, 0, 0)]
}

/// Runs `pick` the way the frontend does: on a worker thread of a multi-thread runtime.
fn pick_on_a_tokio_worker(plugin: LoadedPlugin) -> Result<Vec<usize>, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let task = runtime.spawn(async move { plugin.pick(&request(1), &three()) });
    runtime.block_on(task).unwrap()
}

#[test]
fn printing_from_a_plugin_works_inside_the_async_runtime() {
    let plugin = load(&host(), "testing-blocking", "print");
    for _ in 0..3 {
        let outcome = pick_on_a_tokio_worker(plugin.clone());
        assert_eq!(outcome.unwrap(), vec![0, 1, 2]);
    }
    assert_eq!(plugin.stats().faults, 0, "{:?}", plugin.stats());
}

#[test]
fn printing_works_outside_any_runtime_too() {
    let plugin = load(&host(), "testing-blocking", "print");
    assert_eq!(plugin.pick(&request(1), &three()).unwrap(), vec![0, 1, 2]);
}

#[test]
fn a_plugin_that_sleeps_is_a_clear_fault_not_a_panic() {
    let plugin = load(&host(), "testing-blocking", "sleep");
    let outcome = pick_on_a_tokio_worker(plugin.clone());
    assert!(
        matches!(&outcome, Err(Error::Trap(m)) if m.contains("block")),
        "{outcome:?}"
    );
    assert!(outcome.unwrap_err().is_plugin_fault());
    // Outside a runtime the same call must not block the caller either.
    let outcome = plugin.pick(&request(1), &three());
    assert!(
        matches!(&outcome, Err(Error::Trap(m)) if m.contains("block")),
        "{outcome:?}"
    );
}
