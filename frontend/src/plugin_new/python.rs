//! The Python scaffold: `app.py` (the bindings' classes) over `logic.py` (the decision, plain
//! Python), unit tests with `unittest`, built with componentize-py.

use super::{Kind, Scaffold};

/// The componentize-py the repository's plugins are built and tested with.
const COMPONENTIZE_PY: &str = "0.25.1";

pub fn files(s: &Scaffold) -> Vec<(String, String)> {
    let world = s.kind.world();
    let (class, method, call) = match s.kind {
        Kind::Scorer => ("Scoring", "score", "logic.score(candidates)"),
        Kind::Filter => ("Filtering", "filter", "logic.keep(candidates)"),
        Kind::Picker => ("Picking", "pick", "logic.rank(candidates)"),
    };
    let app = format!(
        r#""""{name}: a Switchyard {world} plugin in Python (componentize-py).

Build: ./build.sh    Test: python3 -m unittest    Check: switchyard plugin check {name}.wasm
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host, types

import logic


class Lifecycle(exports.Lifecycle):
    def configure(self, config: str) -> None:
        # The `config` of the plugin's entry in the router, as JSON; raise Err to refuse it.
        try:
            json.loads(config or "{{}}")
        except ValueError as e:
            raise Err(f"{name} config is not JSON: {{e}}")

    def on_topology(self, topology: types.Topology) -> None:
        # Names, labels and URLs arrive here once per change; decisions carry numbers only.
        host.log(host.LogLevel.DEBUG, f"{{len(topology.instances)}} instances")


class {class}(exports.{class}):
    def {method}(self, request: types.Request, candidates: list) -> list:
        return {call}
"#,
        name = s.name
    );
    let logic = match s.kind {
        Kind::Scorer => {
            r#""""The decision, in plain Python so it can be tested without the component."""


def score(candidates):
    """Higher is better: less work per unit of weight; an unhealthy instance or a full KV
    cache sinks below every other."""
    out = []
    for c in candidates:
        if _unhealthy(c) or c.kv_usage >= 0.99:
            out.append(-1e9)
        else:
            out.append(-(c.in_flight + c.queued) / max(c.weight, 0.001))
    return out


def _unhealthy(c):
    # The bindings' Health enum, or a plain string in tests.
    return getattr(c.health, "name", str(c.health)).lower() == "unhealthy"
"#
        }
        Kind::Filter => {
            r#""""The decision, in plain Python so it can be tested without the component."""


def keep(candidates):
    """Positions of the candidates whose KV cache is not nearly full; all of them when every
    cache is full (keeping none makes the router answer 503 filtered_out)."""
    roomy = [i for i, c in enumerate(candidates) if c.kv_usage < 0.95]
    return roomy if roomy else list(range(len(candidates)))
"#
        }
        Kind::Picker => {
            r#""""The decision, in plain Python so it can be tested without the component."""


def rank(candidates):
    """Positions best first: healthy before unhealthy, then the least busy; ties keep the
    order given (the scorers' ranking)."""
    def key(i):
        c = candidates[i]
        return (_unhealthy(c), c.in_flight + c.queued)

    return sorted(range(len(candidates)), key=key)


def _unhealthy(c):
    # The bindings' Health enum, or a plain string in tests.
    return getattr(c.health, "name", str(c.health)).lower() == "unhealthy"
"#
        }
    };
    let test = match s.kind {
        Kind::Scorer => "    def test_less_load_scores_higher_and_a_full_cache_lowest(self):\n        idle, busy, full = c(0, 0.1), c(5, 0.1), c(0, 1.0)\n        s = logic.score([idle, busy, full])\n        self.assertGreater(s[0], s[1])\n        self.assertGreater(s[1], s[2])\n",
        Kind::Filter => "    def test_full_caches_are_dropped_unless_all_are_full(self):\n        self.assertEqual(logic.keep([c(0, 0.1), c(0, 0.99)]), [0])\n        self.assertEqual(logic.keep([c(0, 0.99), c(0, 1.0)]), [0, 1])\n",
        Kind::Picker => "    def test_the_least_busy_healthy_instance_comes_first(self):\n        sick = c(0, 0.1, health=\"unhealthy\")\n        self.assertEqual(logic.rank([sick, c(4, 0.1), c(1, 0.1)]), [2, 1, 0])\n",
    };
    let test = format!(
        "\"\"\"Unit tests of the decision: python3 -m unittest\"\"\"\n\nimport unittest\nfrom types import SimpleNamespace\n\nimport logic\n\n\ndef c(in_flight, kv_usage, health=\"healthy\"):\n    return SimpleNamespace(in_flight=in_flight, queued=0, kv_usage=kv_usage, weight=1.0, health=health)\n\n\nclass DecisionTest(unittest.TestCase):\n{test}\n\nif __name__ == \"__main__\":\n    unittest.main()\n"
    );
    vec![
        ("app.py".into(), app),
        ("logic.py".into(), logic.to_owned()),
        ("test_logic.py".into(), test),
        (
            "build.sh".into(),
            format!(
                "#!/bin/sh\n# Builds {name}.wasm (needs: pip install componentize-py=={COMPONENTIZE_PY}).\nset -e\ncd \"$(dirname \"$0\")\"\ncomponentize-py -d wit -w {world} componentize app -o {name}.wasm\necho \"built {name}.wasm\"\n",
                name = s.name
            ),
        ),
        (
            "test.sh".into(),
            format!(
                "#!/bin/sh\nset -e\ncd \"$(dirname \"$0\")\"\npython3 -m unittest\n./build.sh\nswitchyard plugin check {name}.wasm\n",
                name = s.name
            ),
        ),
        (".gitignore".into(), "*.wasm\n__pycache__/\n".into()),
    ]
}
