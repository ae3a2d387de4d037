#!/usr/bin/env bash
# Load harness: frontend vs direct-to-mocker, streaming and not, concurrency 1 and 64.
# Usage: benches/load/run.sh [--duration SECONDS] [--repeat N] [--peer sglang-router]
#        [--ab OTHER_SWITCHYARD_BINARY]   (interleaved A/B against e.g. the previous commit's build)
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "installing wrk (Debian)"; apt-get install -y -qq wrk >/dev/null; }
cargo build --release -p switchyard >/dev/null
extra=()
if [[ " $* " == *" --peer sglang-router "* ]]; then
    # The peer lives in its own virtualenv so the project's Python stays untouched.
    venv=target/peer-venv
    [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
    "$venv/bin/python" -c 'import sglang_router' 2>/dev/null ||
        "$venv/bin/pip" install -q sglang-router || { echo "pip install sglang-router failed" >&2; exit 1; }
    extra=(--peer-python "$venv/bin/python")
fi
exec python3 benches/load/harness.py --bin target/release/switchyard "${extra[@]}" "$@"
