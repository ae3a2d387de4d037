#!/usr/bin/env bash
# Load harness: frontend vs direct-to-mocker, streaming and not, concurrency 1 and 64.
# Usage: benches/load/run.sh [--duration SECONDS] [--peer sglang-router]  (see README.md)
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "installing wrk (Debian)"; apt-get install -y -qq wrk >/dev/null; }
cargo build --release -p switchyard >/dev/null
exec python3 benches/load/harness.py --bin target/release/switchyard "$@"
