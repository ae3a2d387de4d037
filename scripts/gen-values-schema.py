#!/usr/bin/env python3
"""Generates charts/switchyard/values.schema.json from values.yaml, so the schema covers every
key by construction; scripts/test-chart.sh fails when the committed schema differs.

Each key's type comes from its default, its description from the `# --` comment above it.
Objects whose keys are the chart's own are closed (`additionalProperties: false`: a typo such
as `frontend.replica` fails `helm install` instead of doing nothing); maps and Kubernetes
structures the chart passes through (FREE) accept anything of their type. ENUMS and MINIMUMS
narrow what the defaults cannot say.

Usage: scripts/gen-values-schema.py [--check]   (needs PyYAML)
"""
import json
import os
import re
import sys

import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CHART = os.path.join(ROOT, "charts", "switchyard")

# Keys whose value is passed through as-is (Kubernetes objects, free maps, the frontend's config).
FREE = {
    "podSecurityContext", "securityContext", "frontend.config", "frontend.resources",
    "operator.resources", "frontend.podAnnotations", "frontend.podLabels", "operator.podAnnotations",
    "operator.podLabels", "frontend.nodeSelector", "operator.nodeSelector", "frontend.affinity",
    "operator.affinity", "frontend.service.annotations", "frontend.serviceAccount.annotations",
    "operator.serviceAccount.annotations", "metrics.serviceMonitor.labels", "metrics.dashboard.labels",
    "metrics.dashboard.annotations", "exposure.ingress.annotations", "exposure.ingress.tls",
    "exposure.httpRoute.annotations",
}
ENUMS = {
    "scope": ["namespace", "cluster"],
    "frontend.image.pullPolicy": ["Always", "IfNotPresent", "Never"],
    "operator.image.pullPolicy": ["Always", "IfNotPresent", "Never"],
    "frontend.service.type": ["ClusterIP", "NodePort", "LoadBalancer"],
}
# Objects that stay open: `global` is shared with parent charts when this one is a dependency.
OPEN = {"global"}
# Keys that are not in values.yaml but must reach the templates: the removed single-namespace
# key, which the templates refuse with a message naming its replacement.
EXTRA = {"watchNamespace": {"description": "Removed: use the list `watchNamespaces`."}}
MINIMUMS = {
    "frontend.replicas": 0, "operator.replicas": 0, "frontend.port": 1, "frontend.admin.port": 1,
    "operator.metricsPort": 1, "frontend.service.port": 1, "frontend.rollout.preStopSleepSeconds": 0,
    "frontend.rollout.drainDelaySeconds": 0, "frontend.rollout.shutdownGraceSeconds": 0,
    "frontend.autoscaling.minReplicas": 1, "frontend.autoscaling.maxReplicas": 1,
}


def descriptions(text):
    """`a.b.c` → the `# --` comment above that key."""
    out, stack, pending = {}, [], []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            body = stripped.lstrip("#").strip()
            if body.startswith("--"):
                pending = [body[2:].strip()]
            elif pending:
                pending.append(body)
            continue
        m = re.match(r"^(\s*)([A-Za-z0-9_]+):", line)
        if not m:
            if stripped and not stripped.startswith("-"):
                pending = []
            continue
        depth = len(m.group(1)) // 2
        stack = stack[:depth] + [m.group(2)]
        if pending:
            out[".".join(stack)] = " ".join(pending)
        pending = []
    return out


def schema_for(path, value, docs):
    s = {}
    if path in docs:
        s["description"] = docs[path]
    if isinstance(value, bool):
        s["type"] = "boolean"
    elif isinstance(value, int):
        s["type"] = "integer"
        if path in MINIMUMS:
            s["minimum"] = MINIMUMS[path]
    elif isinstance(value, float):
        s["type"] = "number"
    elif isinstance(value, str):
        s["type"] = "string"
        if path in ENUMS:
            s["enum"] = ENUMS[path]
    elif isinstance(value, list):
        s["type"] = "array"
        if value and all(isinstance(v, int) for v in value):
            s["items"] = {"type": "integer", "minimum": 1, "maximum": 65535}
        elif value and all(isinstance(v, str) for v in value) or path.endswith("Namespaces") or path == "frontend.extraArgs":
            s["items"] = {"type": "string"}
    elif isinstance(value, dict):
        s["type"] = "object"
        if path not in FREE:
            s["properties"] = {k: schema_for(f"{path}.{k}" if path else k, v, docs) for k, v in value.items()}
            s["additionalProperties"] = path in OPEN
            if not path:
                s["properties"].update(EXTRA)
    elif value is None:
        pass
    return s


def generate():
    text = open(os.path.join(CHART, "values.yaml")).read()
    values = yaml.safe_load(text)
    root = schema_for("", values, descriptions(text))
    root.pop("description", None)
    schema = {"$schema": "https://json-schema.org/draft-07/schema#", "title": "switchyard chart values", **root}
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    path = os.path.join(CHART, "values.schema.json")
    generated = generate()
    if "--check" in sys.argv:
        current = open(path).read() if os.path.exists(path) else ""
        if current != generated:
            print(f"FAIL {path} differs from values.yaml; run scripts/gen-values-schema.py")
            sys.exit(1)
        print("PASS values.schema.json matches values.yaml")
    else:
        open(path, "w").write(generated)
