#!/usr/bin/env python3
"""Rendered manifest count and size per documented chart configuration (docs/kubernetes.md).
Usage: scripts/chart-figures.py (with the chart venv's python: helm-python-sdk, PyYAML)."""
import os

import helm_python as helm
import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CONFIGS = {
    "defaults": {},
    "examples/values/production.yaml": yaml.safe_load(open(os.path.join(ROOT, "examples", "values", "production.yaml"))),
    "nats.enabled": {"nats": {"enabled": True}},
    "exposure.httpRoute": {"exposure": {"httpRoute": {"enabled": True, "parentRefs": [{"name": "public"}]}}},
    "scope=cluster + autoscaling": {"scope": "cluster", "frontend": {"autoscaling": {"enabled": True}}},
    "operator.enabled=false": {"operator": {"enabled": False}},
}
with helm.Chart.load(os.path.join(ROOT, "charts", "switchyard")) as chart:
    print("| configuration | manifests | bytes | kinds |")
    print("|---|---|---|---|")
    for label, values in CONFIGS.items():
        out = chart.render(values, name="switchyard", namespace="switchyard", is_install=True)
        texts = [t for p, t in out.items() if not p.endswith("NOTES.txt")]
        docs = [d for t in texts for d in yaml.safe_load_all(t) if d]
        kinds = sorted({d["kind"] for d in docs})
        print(f"| {label} | {len(docs)} | {sum(len(t.encode()) for t in texts)} | {', '.join(kinds)} |")
crds = os.path.getsize(os.path.join(ROOT, "charts", "switchyard", "crds", "switchyard-crds.yaml"))
print(f"\nCRDs (crds/switchyard-crds.yaml, installed once): {crds} bytes")
