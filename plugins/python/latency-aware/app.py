"""latency-aware: a Switchyard scorer written in Python (componentize-py).

score = -(ttft_weight * ttft-ewma-ms + itl_weight * itl-ewma-ms * expected output tokens / 100)
        + preferred_bonus if the instance carries the preferred label.

Labels arrive once per topology change (on_topology) and are cached here by instance id, so the
per-request path only sees numbers.
"""

import json

from wit_world import exports
from wit_world.imports import host, types
from componentize_py_types import Err

_config = {
    "ttft_weight": 1.0,
    "itl_weight": 1.0,
    "preferred_label": None,  # "key=value"
    "preferred_bonus": 50.0,
}
_preferred_ids: set = set()
_topology = None


def _refresh_preferred():
    global _preferred_ids
    label = _config["preferred_label"]
    if _topology is None or not label:
        _preferred_ids = set()
        return
    key, _, value = label.partition("=")
    _preferred_ids = {
        inst.id for inst in _topology.instances if (key, value) in inst.labels
    }


class Lifecycle(exports.Lifecycle):
    def configure(self, config: str) -> None:
        try:
            parsed = json.loads(config or "{}")
        except ValueError as e:
            raise Err(f"latency-aware config is not JSON: {e}")
        if parsed is None:
            parsed = {}
        if not isinstance(parsed, dict):
            raise Err("latency-aware config must be a JSON object")
        unknown = set(parsed) - set(_config)
        if unknown:
            raise Err(f"latency-aware config: unknown keys {sorted(unknown)}")
        for key in ("ttft_weight", "itl_weight", "preferred_bonus"):
            if key in parsed and not isinstance(parsed[key], (int, float)):
                raise Err(f"latency-aware config: {key} must be a number")
        _config.update(parsed)
        _refresh_preferred()
        host.log(host.LogLevel.DEBUG, f"latency-aware configured: {_config}")

    def on_topology(self, topology: types.Topology) -> None:
        global _topology
        _topology = topology
        _refresh_preferred()


class Scoring(exports.Scoring):
    def score(self, request: types.Request, candidates: list) -> list:
        ttft_w = float(_config["ttft_weight"])
        itl_w = float(_config["itl_weight"])
        bonus = float(_config["preferred_bonus"])
        tokens = float(request.max_tokens or 100) / 100.0
        out = []
        for c in candidates:
            s = -(ttft_w * c.ttft_ewma_ms + itl_w * c.itl_ewma_ms * tokens)
            if c.id in _preferred_ids:
                s += bonus
            out.append(s)
        return out
