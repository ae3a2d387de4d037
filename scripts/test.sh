#!/usr/bin/env bash
# The whole test suite, as the README's quick start runs it and as CI runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh
if [ -x scripts/build-plugins.sh ]; then
  scripts/build-plugins.sh
fi
# The integration tests start the real `switchyard` binary from target/debug. Building the
# binaries together with the tests unifies features once (as `cargo test` does), so the large
# dependencies (wasmtime, kube) are compiled once rather than twice.
cargo build --workspace --bins --tests --examples
cargo test --workspace --no-fail-fast
# The benches' own arithmetic (trace parsers, peer command lines, ratio tables): no processes.
python3 -m unittest benches/kv_routing/test_experiment.py benches/load/test_harness.py
if [ -x scripts/test-chart.sh ]; then
  scripts/test-chart.sh
fi
