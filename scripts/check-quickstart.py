#!/usr/bin/env python3
"""Checks docs/kubernetes.md's quick start against the chart, so the page cannot drift.

Every line of every ```bash block in the "## Quick start" section is a command and must be one
this checker knows:
- `docker build -f F -t IMAGE .` / `docker push IMAGE`: F exists; the images built are exactly
  the ones the documented install renders (registry set once by global.imageRegistry);
- `helm template|install|upgrade NAME CHART -n NS [-f FILE]… [--set K=V]…`: rendered with those
  values (helm-python-sdk, the chart's values.schema.json applies), every manifest validated
  against Kubernetes' schemas;
- `kubectl create namespace|secret …`: recorded; every Secret the rendered chart and the applied
  examples reference must have been created by the page;
- `kubectl apply [--server-side] -n NS -f PATH`: PATH exists and holds Kubernetes objects;
- `kubectl rollout status deployment/D`, `kubectl port-forward svc/S L:P`, `kubectl get KIND`:
  D, S (with port P) and KIND exist in what was rendered or applied;
- `curl …`, `python3 -c …`: allowed; a `localhost` URL must hit a documented route.
Anything else fails. Usage: check-quickstart.py ROOT (run by scripts/test-chart.sh).
"""
import copy
import os
import re
import shlex
import sys

import helm_python as helm
import kubernetes_validate
import yaml

root = sys.argv[1] if len(sys.argv) > 1 else "."
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"PASS quickstart: {name}")
    else:
        failed += 1
        print(f"FAIL quickstart: {name}: {detail}")


def set_path(values, key, raw):
    """`--set a.b=c` (with `{x,y}` lists, true/false and integers) into a values dict."""
    if raw.startswith("{") and raw.endswith("}"):
        value = [v for v in raw[1:-1].split(",") if v]
    elif raw in ("true", "false"):
        value = raw == "true"
    elif re.fullmatch(r"-?\d+", raw):
        value = int(raw)
    else:
        value = raw
    node = values
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def merge(a, b):
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(a.get(k), dict):
            merge(a[k], v)
        else:
            a[k] = v
    return a


text = open(os.path.join(root, "docs", "kubernetes.md")).read()
section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
commands = [line.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)
            for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]
check(f"the quick start has commands ({len(commands)})", len(commands) >= 10, commands)

built, pushed, secrets, namespaces = [], [], set(), set()
rendered_docs, applied_docs, release_ns = [], [], None
routes = ("/v1/models", "/v1/chat/completions", "/admin/instances", "/admin/plugins", "/health", "/ready")
chart_dir = os.path.join(root, "charts", "switchyard")

with helm.Chart.load(chart_dir) as chart:
    for cmd in commands:
        argv = shlex.split(cmd)
        tool, rest = argv[0], argv[1:]
        if tool == "docker" and rest[:1] == ["build"]:
            f = rest[rest.index("-f") + 1]
            built.append(rest[rest.index("-t") + 1])
            check(f"`{cmd[:60]}…` builds an existing Dockerfile", os.path.isfile(os.path.join(root, f)), f)
        elif tool == "docker" and rest[:1] == ["push"]:
            pushed.append(rest[1])
            check(f"docker push {rest[1]} pushes a built image", rest[1] in built, built)
        elif tool == "helm" and rest[0] in ("template", "install", "upgrade"):
            name, chart_path = rest[1], rest[2]
            check(f"helm {rest[0]} uses the repository's chart", os.path.normpath(os.path.join(root, chart_path)) == os.path.normpath(chart_dir), chart_path)
            values, i, ns = {}, 3, "default"
            while i < len(rest):
                if rest[i] in ("-n", "--namespace"):
                    ns = rest[i + 1]; i += 2
                elif rest[i] in ("-f", "--values"):
                    merge(values, yaml.safe_load(open(os.path.join(root, rest[i + 1]))) or {}); i += 2
                elif rest[i] == "--set":
                    k, v = rest[i + 1].split("=", 1); set_path(values, k, v); i += 2
                else:
                    check(f"helm option {rest[i]} is known", False, cmd); i += 1
            release_ns = ns
            try:
                out = chart.render(copy.deepcopy(values), name=name, namespace=ns, is_install=rest[0] != "upgrade")
            except helm.HelmError as e:
                check(f"`{cmd}` renders", False, e)
                continue
            docs = [d for path, t in out.items() if not path.endswith("NOTES.txt") for d in yaml.safe_load_all(t) if d]
            rendered_docs = docs
            bad = []
            for d in docs:
                if d["apiVersion"].startswith(("monitoring.coreos.com", "gateway.networking.k8s.io")):
                    continue
                try:
                    kubernetes_validate.validate(d, "1.33.0", strict=True)
                except Exception as e:  # noqa: BLE001 - report any validation failure
                    bad.append(f'{d["kind"]}/{d["metadata"]["name"]}: {e}')
            check(f"`helm {rest[0]} … {' '.join(rest[3:])[:70]}` renders {len(docs)} valid manifests", not bad, bad)
        elif tool == "kubectl" and rest[:2] == ["create", "namespace"]:
            namespaces.add(rest[2])
            check(f"kubectl create namespace {rest[2]}", True)
        elif tool == "kubectl" and rest[:2] == ["create", "secret"]:
            secrets.add(rest[3])
            check(f"kubectl create secret {rest[2]} {rest[3]} is a known Secret type", rest[2] in ("generic", "docker-registry", "tls"), rest[2])
        elif tool == "kubectl" and rest[0] == "apply":
            path = rest[rest.index("-f") + 1]
            full = os.path.join(root, path)
            files = [os.path.join(full, f) for f in sorted(os.listdir(full))] if os.path.isdir(full) else [full]
            ok = all(os.path.isfile(f) for f in files)
            docs = [d for f in files if os.path.isfile(f) for d in yaml.safe_load_all(open(f)) if d]
            applied_docs += docs
            check(f"kubectl apply -f {path}: exists and holds Kubernetes objects", ok and docs and all("kind" in d for d in docs), path)
        elif tool == "kubectl" and rest[:2] == ["rollout", "status"]:
            target = rest[-1].split("/", 1)[1]
            check(f"kubectl rollout status {rest[-1]} names a rendered Deployment",
                  any(d["kind"] == "Deployment" and d["metadata"]["name"] == target for d in rendered_docs), target)
        elif tool == "kubectl" and rest[0] == "port-forward":
            svc = next(a for a in rest if a.startswith("svc/"))[4:]
            port = int(rest[-1].split(":")[1])
            ports = [p["port"] for d in rendered_docs if d["kind"] == "Service" and d["metadata"]["name"] == svc for p in d["spec"]["ports"]]
            check(f"kubectl port-forward svc/{svc} reaches Service port {port}", port in ports, ports)
        elif tool == "kubectl" and rest[0] == "get":
            kinds = {"workerpools": "WorkerPool", "routerplugins": "RouterPlugin"}
            check(f"kubectl get {rest[1]} lists a kind the page applied",
                  kinds.get(rest[1]) in {d["kind"] for d in applied_docs}, rest[1])
        elif tool == "curl":
            urls = [a for a in rest if "localhost:" in a]
            paths = [re.sub(r"^[^/]*", "", u.split("localhost:", 1)[1]) for u in urls]
            check(f"curl {paths} hits documented routes", paths and all(p in routes for p in paths), paths)
        elif tool == "python3" and rest[:1] == ["-c"]:
            check("python3 -c uses the official OpenAI client", "from openai import OpenAI" in rest[1], rest[1])
        else:
            check(f"known command: {cmd}", False, "add it to scripts/check-quickstart.py or remove it")

# The images the page builds are exactly what the install pulls.
images = sorted({c["image"] for d in rendered_docs if d["kind"] == "Deployment"
                 for c in d["spec"]["template"]["spec"]["containers"]})
check("the images built and pushed are the ones the install pulls", sorted(built) == images == sorted(pushed), (built, images))
# Every Secret the install and the examples reference was created on the page.
wanted = set()
for d in rendered_docs + applied_docs:
    pod = d.get("spec", {}).get("template", {})
    spec = pod.get("spec", pod) if d["kind"] in ("Deployment", "WorkerPool") else {}
    for ref in spec.get("imagePullSecrets", []):
        wanted.add(ref["name"])
    for c in spec.get("containers", []) + [spec]:
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                wanted.add(ref["name"])
check(f"every Secret referenced ({sorted(wanted)}) is created on the page", wanted and wanted <= secrets, sorted(wanted - secrets))
check(f"the release namespace {release_ns} is created on the page", release_ns in namespaces, namespaces)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
