#!/usr/bin/env python3
"""Checks examples/scaling/: every object targets something the chart or the examples create
(a WorkerPool of examples/, through its scale subresource, or the chart's frontend Deployment
for a release named `switchyard`), HPAs validate against Kubernetes' schema, and every
`switchyard_*` metric a query names is one docs/metrics.md documents.
Usage: check-scaling.py ROOT (run by scripts/test-chart.sh)."""
import glob
import os
import re
import sys

import kubernetes_validate
import yaml

root = sys.argv[1] if len(sys.argv) > 1 else "."
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
    print(f"{'PASS' if ok else 'FAIL'} scaling: {name}" + ("" if ok else f": {detail}"))


documented = set(re.findall(r"switchyard_[a-z_]+", open(os.path.join(root, "docs", "metrics.md")).read()))
pools = {d["metadata"]["name"] for p in glob.glob(os.path.join(root, "examples", "*.yaml"))
         for d in yaml.safe_load_all(open(p)) if d and d.get("kind") == "WorkerPool"}
crd = open(os.path.join(root, "charts", "switchyard", "crds", "switchyard-crds.yaml")).read()
for path in sorted(glob.glob(os.path.join(root, "examples", "scaling", "*.yaml"))):
    name = os.path.basename(path)
    for doc in yaml.safe_load_all(open(path)):
        if not doc:
            continue
        target = doc["spec"]["scaleTargetRef"]
        if target["kind"] == "WorkerPool":
            check(f"{name} scales an example WorkerPool through its scale subresource",
                  target["apiVersion"] == "switchyard.dev/v1alpha1" and target["name"] in pools and "scale:" in crd, target)
        else:
            check(f"{name} scales the chart's frontend", target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "switchyard-frontend"}, target)
        if doc["kind"] == "HorizontalPodAutoscaler":
            try:
                kubernetes_validate.validate(doc, "1.33.0", strict=True)
                check(f"{name} HPA validates @k8s 1.33", True)
            except kubernetes_validate.ValidationError as e:
                check(f"{name} HPA validates @k8s 1.33", False, e.message)
        else:
            check(f"{name} is a KEDA ScaledObject", doc["apiVersion"] == "keda.sh/v1alpha1" and doc["kind"] == "ScaledObject", doc["kind"])
            for t in doc["spec"]["triggers"]:
                metrics = set(re.findall(r"switchyard_[a-z_]+", t["metadata"]["query"]))
                check(f"{name} queries documented metrics {sorted(metrics)}", metrics and metrics <= documented, metrics - documented)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
