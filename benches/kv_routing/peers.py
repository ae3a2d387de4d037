"""Peer routers for the KV-routing experiment: how each is installed, started and awaited.

Each peer is a PyPI package with a Rust core, installed by `ensure_venv` into its own
virtualenv under `~/.cache/switchyard-bench/venvs/<peer>` (pinned to the version whose CLI was
checked against its `--help`), and started in front of the same fresh mockers as Switchyard
with its cache-aware policy and otherwise default settings:

  sglang-router  python -m sglang_router.launch_router ... --policy cache_aware
  smg            smg launch ... --policy cache_aware     (Shepherd Model Gateway)
  vllm-router    vllm-router ... --policy cache_aware

All three bind a Prometheus listener of their own (default port 29000, shared by all three and
by anything else on the machine), so each gets a port picked by the experiment. None of them
is ready when its HTTP port answers: workers register in the background, so readiness is
`GET /workers` listing every worker URL as healthy.
"""
import json
import os
import subprocess
import sys
import urllib.request

# Versions whose flags (--worker-urls, --policy cache_aware, --prometheus-host/-port,
# --log-level) were read from their --help; a newer release may rename them. vllm-router
# spells the warning level `warning`, the other two `warn`.
PEERS = {
    "sglang-router": {"package": "sglang-router", "version": "0.3.2",
                      "argv": ["{python}", "-m", "sglang_router.launch_router"]},
    "smg": {"package": "smg", "version": "1.13.0", "argv": ["{bin}/smg", "launch"]},
    "vllm-router": {"package": "vllm-router", "version": "0.1.17",
                    "argv": ["{bin}/vllm-router"], "log_level": "warning"},
}

DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "switchyard-bench", "venvs")


def is_peer(mode):
    return mode in PEERS


def requirement(name):
    spec = PEERS[name]
    return f"{spec['package']}=={spec['version']}"


def ensure_venv(name, cache_dir=DEFAULT_CACHE, python=sys.executable):
    """The peer's virtualenv, created and filled with its pinned package on first use. A
    marker file records what was installed, so a changed pin reinstalls."""
    venv = os.path.join(cache_dir, name)
    marker = os.path.join(venv, ".switchyard-bench-requirement")
    want = requirement(name)
    try:
        with open(marker) as f:
            if f.read().strip() == want:
                return venv
    except OSError:
        pass
    os.makedirs(cache_dir, exist_ok=True)
    if not os.path.exists(os.path.join(venv, "bin", "python")):
        subprocess.run([python, "-m", "venv", venv], check=True)
    subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "--quiet",
                    want], check=True)
    with open(marker, "w") as f:
        f.write(want + "\n")
    return venv


def command(name, venv, port, prometheus_port, worker_urls):
    """The argv that starts peer `name` on 127.0.0.1:`port` routing to `worker_urls` with its
    cache-aware policy (its own defaults for thresholds)."""
    spec = PEERS[name]
    bindir = os.path.join(venv, "bin")
    argv = [a.format(python=os.path.join(bindir, "python"), bin=bindir) for a in spec["argv"]]
    return argv + ["--host", "127.0.0.1", "--port", str(port),
                   "--prometheus-host", "127.0.0.1", "--prometheus-port", str(prometheus_port),
                   "--worker-urls", *worker_urls, "--policy", "cache_aware",
                   "--log-level", spec.get("log_level", "warn")]


def healthy_workers(body):
    """Worker URLs that a peer's `GET /workers` answer lists as healthy. All three answer
    `{"workers": [{"url": ..., "is_healthy": ...}, ...]}`."""
    try:
        workers = json.loads(body).get("workers", [])
    except (ValueError, AttributeError):
        return set()
    if not isinstance(workers, list):
        return set()
    return {w["url"] for w in workers
            if isinstance(w, dict) and isinstance(w.get("url"), str) and w.get("is_healthy")}


def ready(port, worker_urls):
    """True once the peer on `port` routes to every one of `worker_urls`."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/workers", timeout=1) as r:
            return r.status == 200 and set(worker_urls) <= healthy_workers(r.read())
    except Exception:
        return False
