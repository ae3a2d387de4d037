#!/usr/bin/env bash
# Renders, lints and schema-validates the Helm chart without a cluster.
#
# - helm-python-sdk (PyPI; embeds Helm's Go SDK): render + lint, with default values and with
#   every optional feature on (plus an operator-less variant);
# - kubernetes-validate (PyPI): every rendered manifest, the CRDs and the examples against the
#   upstream schemas of several Kubernetes versions (strict: unknown fields fail);
# - WorkerPool/RouterPlugin examples against the chart's own CRD schemas (jsonschema);
# - restricted pod security, least-privilege RBAC (a Role per watched namespace) and "every
#   values.yaml key is commented";
# - the Dockerfiles against the chart (scripts/check-images.py; no image is built);
# - docs/kubernetes.md's quick start, every command (scripts/check-quickstart.py);
# - values.schema.json regenerated from values.yaml (scripts/gen-values-schema.py --check);
# - the Grafana dashboard's metrics and labels against what the built frontend really exports
#   (scripts/check-dashboard.py; needs target/debug/switchyard or $SWITCHYARD_BIN).
#
# Prints one line per check and `N passed, N failed`; exits non-zero on any failure.
# The venv lives outside the repo: $SWITCHYARD_CHART_VENV (default ~/.cache/switchyard/venv-chart).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SWITCHYARD_CHART_VENV:-$HOME/.cache/switchyard/venv-chart}"
KUBE_VERSIONS="${KUBE_VERSIONS:-1.30.0 1.33.0 1.35.0}"

if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import helm_python, kubernetes_validate, jsonschema, yaml' 2>/dev/null; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        'helm-python-sdk>=0.2.2,<0.3' 'kubernetes-validate>=1.33' 'jsonschema>=4' 'PyYAML>=6'
fi

status=0
"$VENV/bin/python" - "$ROOT" "$KUBE_VERSIONS" <<'PY' || status=1
import copy
import glob
import os
import re
import sys

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

root, versions = sys.argv[1], sys.argv[2].split()

# docs/configuration.md: the sections and the entity collections at the top level; the flat
# keys of the layout before them are read with a deprecation warning.
SECTIONED_TOP = {"http", "discovery", "events", "routing", "plugins", "reliability", "telemetry",
                 "workers", "models", "chat_templates", "tenants", "tenants_file", "adapters"}
DEPRECATED_TOP = {"listen", "etcd", "etcd_prefix", "etcd_auth", "kubernetes_namespace", "kubernetes",
                  "nats", "nats_auth", "admin_token", "admin", "plugin_quarantine", "plugin_host",
                  "record_decisions", "migration_limit", "kv", "tokenizer", "tokenizers", "limits",
                  "upstream", "health", "probe", "canary", "load_scrape", "served_model_check",
                  "worker_api_keys", "worker_api_keys_dir", "retry_budget", "overload",
                  "flow_control", "tls", "disaggregation"}


def duration_ms(text):
    """Milliseconds of a duration in the frontend's format (`30s`, `500ms`, `1m30s`)."""
    scale = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000}
    parts = re.findall(r"([0-9]+)(ms|s|m|h)", str(text))
    assert parts and "".join(n + u for n, u in parts) == str(text), f"not a duration: {text!r}"
    return sum(int(n) * scale[u] for n, u in parts)

chart_dir = os.path.join(root, "charts", "switchyard")
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"PASS {name}")
    else:
        failed += 1
        print(f"FAIL {name}: {detail}")


EVERYTHING = {
    "scope": "cluster",
    "imagePullSecrets": [{"name": "regcred"}],
    "frontend": {
        "autoscaling": {"enabled": True},
        "extraArgs": ["--policy", "kv"],
        "env": [{"name": "SWITCHYARD_NATS", "value": "nats://nats:4222"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "router", "effect": "NoSchedule"}],
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                       "whenUnsatisfiable": "ScheduleAnyway",
                                       "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "frontend"}}}],
        "service": {"type": "LoadBalancer", "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}},
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}},
        "workerApiKeys": {"existingSecret": "switchyard-worker-keys"},
    },
    "operator": {"replicas": 2, "pdb": {"enabled": True}},
    "global": {"imageRegistry": "registry.example.com/ml"},
    "pluginCA": {"configMap": "corp-ca"},
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
                "dashboard": {"enabled": True}},
    "networkPolicy": {"enabled": True,
                      "frontendIngressFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}}}],
                      "metricsIngressFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]},
}
VARIANTS = {
    "defaults": {},
    "everything-on": EVERYTHING,
    "frontend-only+existing-secret": {"operator": {"enabled": False},
                                      "frontend": {"adminToken": {"existingSecret": "my-token"}}},
    "one-replica+token-value+config": {"frontend": {"replicas": 1, "adminToken": {"value": "t0ken"},
                                                    "config": {"http": {"limits": {"shutdown_grace": "10m"}},
                                                               "routing": {"policy": "least-loaded"}}}},
    # A values file written before the sectioned config: its flat keys still render a config the
    # frontend accepts (the chart leaves out what they already set; the frontend warns).
    "deprecated-flat-config": {"nats": {"enabled": True},
                               "frontend": {"config": {"limits": {"shutdown_grace_ms": 600000, "drain_delay_ms": 2000},
                                                       "nats": "nats://elsewhere:4222"}}},
    "other-watch-namespace": {"watchNamespaces": ["models"], "operator": {"leaderElection": False}},
    "namespace-list": {"watchNamespaces": ["models-b", "models-a"], "networkPolicy": {"enabled": True}},
    "exact-namespace-list": {"watchNamespaces": ["models"], "watchReleaseNamespace": False},
    "nats": {"nats": {"enabled": True}, "networkPolicy": {"enabled": True}},
    "ingress-tls": {"exposure": {"ingress": {"enabled": True, "className": "nginx", "host": "llm.example.com",
                                             "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
                                             "tls": [{"secretName": "llm-tls", "hosts": ["llm.example.com"]}]}}},
    "gateway-httproute": {"exposure": {"httpRoute": {"enabled": True, "hostnames": ["llm.example.com"],
                                                     "parentRefs": [{"name": "public", "namespace": "infra", "sectionName": "https"}]}}},
}
RELEASE_NS = "switchyard"

# CRDs of the chart, as JSON schemas for the examples.
crd_docs = []
for path in sorted(glob.glob(os.path.join(chart_dir, "crds", "*.yaml"))):
    crd_docs += [d for d in yaml.safe_load_all(open(path)) if d]
crd_schemas = {}
for crd in crd_docs:
    kind = crd["spec"]["names"]["kind"]
    for v in crd["spec"]["versions"]:
        crd_schemas[(f'{crd["spec"]["group"]}/{v["name"]}', kind)] = v["schema"]["openAPIV3Schema"]


def openapi_to_jsonschema(s):
    """OpenAPI v3 `nullable` → JSON Schema null type; `x-kubernetes-*` keys are ignored by jsonschema."""
    if isinstance(s, dict):
        out = {k: openapi_to_jsonschema(v) for k, v in s.items()}
        if out.pop("nullable", False) and "type" in out:
            out["type"] = [out["type"], "null"]
        if out.get("x-kubernetes-int-or-string"):
            out.pop("type", None)
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        return out
    if isinstance(s, list):
        return [openapi_to_jsonschema(v) for v in s]
    return s


# Minimal schema for the one third-party kind the chart renders (no upstream schema exists).
SERVICE_MONITOR = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {"spec": {"type": "object", "required": ["selector", "endpoints"], "additionalProperties": False,
                            "properties": {"selector": {"type": "object", "properties": {"matchLabels": {"type": "object"}}},
                                           "endpoints": {"type": "array", "minItems": 1, "items": {
                                               "type": "object", "additionalProperties": False,
                                               "properties": {"port": {"type": "string"}, "path": {"type": "string"},
                                                              "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"}}}}}}},
}


# Subset of the Gateway API HTTPRoute schema (gateway.networking.k8s.io/v1) for what the chart renders.
HTTP_ROUTE = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {"spec": {"type": "object", "required": ["parentRefs", "rules"], "additionalProperties": False,
                            "properties": {
                                "parentRefs": {"type": "array", "minItems": 1, "items": {
                                    "type": "object", "required": ["name"], "additionalProperties": False,
                                    "properties": {k: {"type": "string"} for k in ["name", "namespace", "sectionName", "group", "kind"]}}},
                                "hostnames": {"type": "array", "items": {"type": "string"}},
                                "rules": {"type": "array", "items": {"type": "object", "additionalProperties": False, "properties": {
                                    "matches": {"type": "array", "items": {"type": "object", "properties": {"path": {
                                        "type": "object", "additionalProperties": False,
                                        "properties": {"type": {"enum": ["Exact", "PathPrefix", "RegularExpression"]}, "value": {"type": "string"}}}}}},
                                    "backendRefs": {"type": "array", "items": {"type": "object", "required": ["name", "port"],
                                                    "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}}}}}}}},
}


def validate_doc(label, doc):
    kind, api = doc.get("kind"), doc.get("apiVersion")
    name = f'{label} {kind}/{doc.get("metadata", {}).get("name")}'
    if (api, kind) in crd_schemas:
        try:
            jsonschema.validate(doc, openapi_to_jsonschema(crd_schemas[(api, kind)]))
            check(f"{name} vs chart CRD schema", True)
        except jsonschema.ValidationError as e:
            check(f"{name} vs chart CRD schema", False, e.message)
        return
    if api == "monitoring.coreos.com/v1" and kind == "ServiceMonitor":
        try:
            jsonschema.validate(doc, SERVICE_MONITOR)
            check(f"{name} vs ServiceMonitor subset schema", True)
        except jsonschema.ValidationError as e:
            check(f"{name} vs ServiceMonitor subset schema", False, e.message)
        return
    if api == "gateway.networking.k8s.io/v1" and kind == "HTTPRoute":
        try:
            jsonschema.validate(doc, HTTP_ROUTE)
            check(f"{name} vs HTTPRoute subset schema", True)
        except jsonschema.ValidationError as e:
            check(f"{name} vs HTTPRoute subset schema", False, e.message)
        return
    for v in versions:
        try:
            kubernetes_validate.validate(doc, v, strict=True)
            check(f"{name} @k8s {v}", True)
        except kubernetes_validate.ValidationError as e:
            check(f"{name} @k8s {v}", False, f"{'.'.join(str(p) for p in e.path)}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            check(f"{name} @k8s {v}", False, e.message)


def pod_specs(doc):
    if doc.get("kind") in ("Deployment", "StatefulSet"):
        yield doc["spec"]["template"]["spec"]


def check_security(label, docs):
    for doc in docs:
        for pod in pod_specs(doc):
            name = f'{label} {doc["metadata"]["name"]}'
            psc = pod.get("securityContext", {})
            ok = psc.get("runAsNonRoot") is True and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
            check(f"{name} pod securityContext restricted", ok, psc)
            for c in pod["containers"]:
                sc = c.get("securityContext", {})
                ok = (sc.get("allowPrivilegeEscalation") is False and sc.get("readOnlyRootFilesystem") is True
                      and sc.get("runAsNonRoot") is True and sc.get("capabilities", {}).get("drop") == ["ALL"]
                      and sc.get("seccompProfile", {}).get("type") == "RuntimeDefault")
                check(f"{name}/{c['name']} container securityContext restricted", ok, sc)
                check(f"{name}/{c['name']} has resources and probes",
                      bool(c.get("resources")) and "livenessProbe" in c and "readinessProbe" in c)


def check_rbac(label, values, docs):
    kinds = [d["kind"] for d in docs]
    if values.get("scope", "namespace") == "namespace":
        check(f"{label} namespace scope creates no cluster-wide RBAC",
              "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds, kinds)
    for d in docs:
        if d["kind"] in ("Role", "ClusterRole"):
            verbs = {v for r in d["rules"] for v in r["verbs"]}
            resources = {res for r in d["rules"] for res in r["resources"]}
            check(f'{label} {d["kind"]}/{d["metadata"]["name"]} least privilege',
                  "*" not in verbs and "*" not in resources and "delete" not in verbs and "secrets" not in resources,
                  d["rules"])


def check_namespaces(label, values, docs):
    """Namespace scope: a Role + RoleBinding per watched namespace and component, and both
    binaries told the same list; cluster scope: ClusterRoles and `--all-namespaces`."""
    cluster = values.get("scope") == "cluster"
    listed = values.get("watchNamespaces") or []
    with_release = not listed or values.get("watchReleaseNamespace", True)
    watched = sorted(set(listed + ([RELEASE_NS] if with_release else [])))
    components = ["frontend"] + (["operator"] if values.get("operator", {}).get("enabled", True) else [])
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs
             if d["kind"] in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")}
    for comp in components:
        name = f"sy-switchyard-{comp}"
        if cluster:
            want = {("ClusterRole", None, name), ("ClusterRoleBinding", None, name)}
        else:
            want = {(k, ns, name) for ns in watched for k in ("Role", "RoleBinding")}
        got = {k for k in roles if k[2] == name}
        check(f"{label} {comp} RBAC is exactly {sorted(want, key=str)}", got == want, sorted(got, key=str))
        for key in want:
            if key[0].endswith("Binding"):
                subject = roles[key]["subjects"][0]
                check(f"{label} {key[0]}/{name} in {key[1]} binds the release's ServiceAccount",
                      subject["namespace"] == RELEASE_NS and roles[key]["roleRef"]["kind"] == key[0][:-len("Binding")], roles[key])
    listed = "" if cluster else ",".join(watched)
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        c = d["spec"]["template"]["spec"]["containers"][0]
        if d["metadata"]["name"].endswith("-operator"):
            args = c["args"]
            ok = "--all-namespaces" in args if cluster else args[args.index("--namespaces") + 1] == listed
            check(f"{label} operator watches {listed or 'every namespace'}", ok, args)
        if d["metadata"]["name"].endswith("-frontend"):
            env = {e["name"]: e.get("value") for e in c["env"]}
            check(f"{label} frontend watches {listed or 'every namespace'}",
                  env.get("SWITCHYARD_KUBERNETES_NAMESPACE") == listed, env.get("SWITCHYARD_KUBERNETES_NAMESPACE"))
    for d in docs:
        if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("-frontend") and not cluster:
            selectors = [p.get("namespaceSelector") for rule in d["spec"]["egress"] for p in rule.get("to", [])]
            values_in = [e["values"] for s in selectors if s for e in s.get("matchExpressions", [])]
            check(f"{label} frontend NetworkPolicy reaches workers in the watched namespaces",
                  sorted(values_in[0]) == watched if values_in else False, selectors)


def check_frontend_command(label, values, docs):
    token = values.get("frontend", {}).get("adminToken", {})
    for d in docs:
        if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-frontend"):
            c = d["spec"]["template"]["spec"]["containers"][0]
            args = c["args"]
            check(f"{label} frontend runs `serve --discovery kubernetes --listen 0.0.0.0:8000 --config …`",
                  args[:7] == ["serve", "--discovery", "kubernetes", "--listen", "0.0.0.0:8000",
                               "--config", "/etc/switchyard/switchyard.yaml"], args)
            env = {e["name"]: e for e in c["env"]}
            if token.get("existingSecret") or token.get("value"):
                check(f"{label} admin token comes from a Secret",
                      "secretKeyRef" in env.get("SWITCHYARD_ADMIN_TOKEN", {}).get("valueFrom", {}), env.get("SWITCHYARD_ADMIN_TOKEN"))
            else:
                check(f"{label} no admin token configured: admin API off, no Secret generated",
                      "SWITCHYARD_ADMIN_TOKEN" not in env and not any(x["kind"] == "Secret" for x in docs), env)


def check_hygiene(label, values, docs):
    """NetworkPolicy egress never reaches the metadata service, Events RBAC for the operator,
    the registry set once, the plugin CA mounted where the env var points."""
    import ipaddress
    metadata = ipaddress.ip_address("169.254.169.254")
    for d in docs:
        if d["kind"] != "NetworkPolicy":
            continue
        name = d["metadata"]["name"]
        rules = d["spec"].get("egress", [])
        check(f"{label} NetworkPolicy {name} has no egress rule open to every destination",
              all(r.get("to") for r in rules), rules)
        for r in rules:
            ports = {p.get("port") for p in r.get("ports", [])}
            for peer in r.get("to", []):
                block = peer.get("ipBlock")
                if not block:
                    continue
                covered = metadata in ipaddress.ip_network(block["cidr"]) and not any(
                    metadata in ipaddress.ip_network(e) for e in block.get("except", []))
                check(f"{label} NetworkPolicy {name} egress to {block['cidr']} (ports {sorted(ports, key=str)}) excludes 169.254.169.254",
                      not covered, block)
        if name.endswith("-frontend"):
            egress_ports = {p.get("port") for r in rules for p in r.get("ports", [])}
            check(f"{label} frontend NetworkPolicy allows NATS (4222) and etcd (2379)", {4222, 2379} <= egress_ports, egress_ports)
            metrics_from = values.get("networkPolicy", {}).get("metricsIngressFrom")
            api_rule = d["spec"]["ingress"][0]
            if api_rule.get("from") and metrics_from:
                check(f"{label} Prometheus may still scrape a frontend restricted by frontendIngressFrom",
                      all(m in api_rule["from"] for m in metrics_from), api_rule)
    for d in docs:
        if d["kind"] in ("Role", "ClusterRole") and d["metadata"]["name"].endswith("-operator"):
            events = [r for r in d["rules"] if "events" in r["resources"]]
            check(f"{label} {d['kind']} {d['metadata']['name']} may record Events",
                  any(set(r["verbs"]) >= {"create", "patch"} for r in events), d["rules"])
    # LoraAdapters: the operator reads them, patches them (its finalizer) and their status
    # (nothing more); the frontend only reads them (Kubernetes discovery of adapters).
    for d in docs:
        if d["kind"] not in ("Role", "ClusterRole"):
            continue
        verbs = lambda res: {v for r in d["rules"] if res in r["resources"] for v in r["verbs"]}
        name = d["metadata"]["name"]
        if name.endswith("-operator"):
            check(f"{label} {d['kind']} {name} reads and patches LoraAdapters (finalizer, status), nothing more",
                  verbs("loraadapters") == {"get", "list", "watch", "patch"} and verbs("loraadapters/status") == {"get", "patch"},
                  d["rules"])
        if name.endswith("-frontend"):
            check(f"{label} {d['kind']} {name} may read LoraAdapters, not write them",
                  verbs("loraadapters") == {"get", "list", "watch"} and not verbs("loraadapters/status"), d["rules"])
    pull = [p["name"] for p in values.get("imagePullSecrets", [])]
    for d in docs:
        if pull and d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-operator"):
            env = {e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
            check(f"{label} the chart's imagePullSecrets reach worker pods (operator env)",
                  env.get("SWITCHYARD_WORKER_IMAGE_PULL_SECRETS") == ",".join(pull), env)
    registry = values.get("global", {}).get("imageRegistry")
    ca = values.get("pluginCA", {}).get("configMap")
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        pod = d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        if registry:
            check(f"{label} {d['metadata']['name']} image comes from global.imageRegistry",
                  c["image"].startswith(registry + "/switchyard/") and "ghcr.io" not in c["image"], c["image"])
        if ca:
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            path = env.get("SWITCHYARD_PLUGIN_CA_FILE", "")
            vols = {v["name"]: v for v in pod.get("volumes", [])}
            mount = mounts.get(os.path.dirname(path))
            check(f"{label} {d['metadata']['name']} trusts the plugin CA from ConfigMap {ca}",
                  mount is not None and vols[mount].get("configMap", {}).get("name") == ca, (path, mounts))
    keys = values.get("frontend", {}).get("workerApiKeys", {}).get("existingSecret")
    for d in docs:
        # The operator needs the same keys for LoraAdapter loads on pools with `apiKey`.
        if d["kind"] != "Deployment" or not d["metadata"]["name"].endswith(("-frontend", "-operator")):
            continue
        who = d["metadata"]["name"].rsplit("-", 1)[1]
        pod = d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        path = env.get("SWITCHYARD_WORKER_API_KEYS_DIR")
        if not keys:
            check(f"{label} {who}: no worker key directory unless asked", path is None, env)
            continue
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        mount = mounts.get(path)
        check(f"{label} the {who} reads worker API keys from Secret {keys}, read-only",
              mount is not None and mount.get("readOnly") is True
              and vols[mount["name"]].get("secret", {}).get("secretName") == keys, (path, mounts))


def check_nats(label, values, docs):
    """The chart's NATS is wired into the frontend's config and the operator's bridge default."""
    if not values.get("nats", {}).get("enabled"):
        check(f"{label} no NATS unless asked", not any(d["kind"] == "StatefulSet" for d in docs))
        return
    url = "nats://sy-switchyard-nats.switchyard.svc:4222"
    _, cm = frontend_parts(docs)
    nats = yaml.safe_load(cm["data"]["switchyard.yaml"]).get("events", {}).get("nats", {}).get("url")
    if "nats" in values.get("frontend", {}).get("config", {}):
        check(f"{label} frontend config leaves the NATS URL to the values' own (flat) key", nats is None, cm["data"])
    else:
        check(f"{label} frontend config points at the chart's NATS", nats == url, cm["data"])
    op = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-operator"))
    env = {e["name"]: e.get("value") for e in op["spec"]["template"]["spec"]["containers"][0]["env"]}
    check(f"{label} operator's kvEvents bridges default to the chart's NATS", env.get("SWITCHYARD_WORKER_NATS") == url, env)
    svc = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "sy-switchyard-nats"]
    check(f"{label} NATS Service on 4222", svc and svc[0]["spec"]["ports"][0]["port"] == 4222, svc)


def check_exposure(label, docs):
    """Ingress and HTTPRoute route only the OpenAI paths to the public Service, never the admin port."""
    for d in docs:
        if d["kind"] == "Ingress":
            paths = [p for r in d["spec"]["rules"] for p in r["http"]["paths"]]
            check(f"{label} Ingress routes only /v1 to the public Service's http port",
                  [p["path"] for p in paths] == ["/v1"] and all(p["backend"]["service"] == {"name": "sy-switchyard", "port": {"name": "http"}} for p in paths), paths)
            check(f"{label} Ingress has TLS", bool(d["spec"].get("tls")), d["spec"])
        if d["kind"] == "HTTPRoute":
            rule = d["spec"]["rules"][0]
            check(f"{label} HTTPRoute routes only /v1 to the public Service",
                  [m["path"]["value"] for m in rule["matches"]] == ["/v1"] and rule["backendRefs"] == [{"name": "sy-switchyard", "port": 80}], rule)


def frontend_parts(docs):
    deploy = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-frontend"))
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-frontend-config"))
    return deploy, cm


def check_rollout(label, values, docs):
    """Safe rollouts: readiness after discovery, preStop + drain delay, a grace period that covers
    them, a config checksum, PDBs only when satisfiable, default spread."""
    import hashlib
    fv = values.get("frontend", {})
    deploy, cm = frontend_parts(docs)
    pod = deploy["spec"]["template"]
    c = pod["spec"]["containers"][0]
    text = cm["data"]["switchyard.yaml"]
    config = yaml.safe_load(text)
    flat = values.get("frontend", {}).get("config", {})
    if not set(flat) & DEPRECATED_TOP:
        check(f"{label} frontend config uses only the sectioned keys (no deprecation warnings)",
              set(config) <= SECTIONED_TOP, sorted(config))
    new_limits = config.get("http", {}).get("limits", {})
    old_limits = config.get("limits", {})
    limits = {
        "drain_delay_ms": duration_ms(new_limits["drain_delay"]) if "drain_delay" in new_limits
        else old_limits.get("drain_delay_ms", 0),
        "shutdown_grace_ms": duration_ms(new_limits["shutdown_grace"]) if "shutdown_grace" in new_limits
        else old_limits.get("shutdown_grace_ms", 30000),
    }
    check(f"{label} frontend readiness probes /ready", c["readinessProbe"]["httpGet"]["path"] == fv.get("readinessPath", "/ready"), c["readinessProbe"])
    sleep = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    check(f"{label} frontend has a preStop sleep", sleep > 0, c.get("lifecycle"))
    check(f"{label} frontend drains (http.limits.drain_delay > 0)", limits.get("drain_delay_ms", 0) > 0, limits)
    need = sleep + limits.get("drain_delay_ms", 0) / 1000 + limits.get("shutdown_grace_ms", 30000) / 1000
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    check(f"{label} terminationGracePeriodSeconds {grace} covers preStop + drain + grace ({need:g})", grace > need)
    check(f"{label} config checksum annotation is the rendered config's sha256",
          pod["metadata"]["annotations"].get("checksum/config") == hashlib.sha256(text.strip("\n").encode()).hexdigest()
          or pod["metadata"]["annotations"].get("checksum/config") == hashlib.sha256(text.rstrip("\n").encode()).hexdigest(),
          pod["metadata"]["annotations"].get("checksum/config"))
    check(f"{label} config mounted from the ConfigMap",
          any(v.get("configMap", {}).get("name") == cm["metadata"]["name"] for v in pod["spec"]["volumes"]))
    fe_min = fv.get("autoscaling", {}).get("minReplicas", 2) if fv.get("autoscaling", {}).get("enabled") else fv.get("replicas", 2)
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget" and d["metadata"]["name"].endswith("-frontend")]
    want_pdb = fv.get("pdb", {}).get("enabled", True) and fe_min > fv.get("pdb", {}).get("minAvailable", 1)
    check(f"{label} frontend PDB rendered only when satisfiable ({fe_min} replicas)", bool(pdbs) == want_pdb, pdbs)
    check(f"{label} frontend spreads over nodes and zones",
          {t["topologyKey"] for t in pod["spec"].get("topologySpreadConstraints", [])} >= {"kubernetes.io/hostname"}
          or bool(fv.get("topologySpreadConstraints")), pod["spec"].get("topologySpreadConstraints"))
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    scraped = [d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"
               and "prometheus.io/scrape" in (d["spec"]["template"]["metadata"].get("annotations") or {})]
    check(f"{label} pods are not scraped twice (annotations and ServiceMonitors)", not (monitors and scraped), scraped)
    for m in monitors:
        check(f"{label} ServiceMonitor {m['metadata']['name']} carries a Prometheus selector label",
              "release" in m["metadata"]["labels"] or bool(values.get("metrics", {}).get("serviceMonitor", {}).get("labels")), m["metadata"]["labels"])
    if fv.get("admin", {}).get("enabled", True):
        admin = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-admin")]
        check(f"{label} admin listener on its own ClusterIP Service",
              len(admin) == 1 and admin[0]["spec"]["type"] == "ClusterIP" and config.get("http", {}).get("admin", {}).get("listen", "").startswith("0.0.0.0:"), admin)
        public = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "sy-switchyard"]
        check(f"{label} the public Service has no admin port",
              all(p["name"] != "admin" for d in public for p in d["spec"]["ports"]), public)


with helm.Chart.load(chart_dir) as chart:
    for label, values in VARIANTS.items():
        try:
            rendered = chart.render(copy.deepcopy(values), name="sy", namespace=RELEASE_NS, is_install=True)
        except helm.HelmError as e:
            check(f"render {label}", False, e)
            continue
        docs = []
        for path, text in sorted(rendered.items()):
            if path.endswith("NOTES.txt"):
                continue
            docs += [d for d in yaml.safe_load_all(text) if d]
        check(f"render {label} ({len(docs)} manifests)", len(docs) > 0)
        for doc in docs:
            validate_doc(label, doc)
        check_security(label, docs)
        check_rbac(label, values, docs)
        check_frontend_command(label, values, docs)
        check_rollout(label, values, docs)
        check_hygiene(label, values, docs)
        check_exposure(label, docs)
        check_nats(label, values, docs)
        again = chart.render(copy.deepcopy(values), name="sy", namespace=RELEASE_NS, is_install=True)
        check(f"{label} renders identically twice (no random or looked-up values)", again == rendered)
        check_namespaces(label, values, docs)
        if label == "everything-on":
            kinds = {d["kind"] for d in docs}
            want = {"HorizontalPodAutoscaler", "ServiceMonitor", "NetworkPolicy", "PodDisruptionBudget", "ConfigMap", "ClusterRole"}
            check("everything-on renders every optional kind", want <= kinds, want - kinds)
            dash = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")]
            import json
            text = dash[0]["data"]["switchyard-frontend.json"] if dash else "{}"
            board = json.loads(text)
            shipped = json.load(open(os.path.join(chart_dir, "files", "dashboard.json")))
            check("the rendered dashboard is files/dashboard.json (what check-dashboard.py checks)", board == shipped)
            exprs = " ".join(t["expr"] for p in board.get("panels", []) for t in p["targets"])
            for metric in ["switchyard_requests_total", "switchyard_requests_in_flight", "switchyard_time_to_first_token_seconds_bucket",
                           "switchyard_inter_token_latency_seconds_bucket", "switchyard_request_duration_seconds_bucket",
                           "switchyard_input_tokens_total", "switchyard_output_tokens_total", "switchyard_retries_total",
                           "switchyard_instance_in_flight", "switchyard_instance_healthy"]:
                check(f"dashboard charts {metric}", metric in exprs)

    # values.schema.json closes the chart's own objects: a misspelt key fails the install.
    try:
        chart.render({"frontend": {"replica": 3}}, name="sy", namespace=RELEASE_NS, is_install=True)
        check("values.schema.json refuses a misspelt key (frontend.replica)", False, "rendered")
    except helm.HelmError as e:
        check("values.schema.json refuses a misspelt key (frontend.replica)", "replica" in str(e), e)

    # The single-namespace key of earlier versions fails loudly instead of being ignored.
    try:
        chart.render({"watchNamespace": "models"}, name="sy", namespace=RELEASE_NS, is_install=True)
        check("render refuses the old watchNamespace key", False, "rendered")
    except helm.HelmError as e:
        check("render refuses the old watchNamespace key", "watchNamespaces" in str(e), e)

for label, values in VARIANTS.items():
    for v in versions:
        report = helm.lint(chart_dir, copy.deepcopy(values), strict=True, kube_version=f"v{v}", namespace="switchyard")
        problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2] + list(report.get("errors") or [])
        check(f"helm lint --strict {label} @k8s {v}", not problems, problems)

for crd in crd_docs:
    validate_doc("crds", crd)
    check(f'crds {crd["metadata"]["name"]} has CEL rules', "x-kubernetes-validations" in yaml.safe_dump(crd))

for path in sorted(glob.glob(os.path.join(root, "examples", "*.yaml"))):
    for doc in yaml.safe_load_all(open(path)):
        if doc:
            validate_doc(f"examples/{os.path.basename(path)}", doc)

# Every key in values.yaml has a comment on the line(s) above it.
lines = open(os.path.join(chart_dir, "values.yaml")).read().splitlines()
undocumented = []
for i, line in enumerate(lines):
    m = re.match(r"^(\s*)([A-Za-z0-9_]+):", line)
    if not m:
        continue
    j = i - 1
    while j >= 0 and lines[j].strip() == "":
        j -= 1
    if j < 0 or not lines[j].strip().startswith("#"):
        undocumented.append(m.group(2))
check("every values.yaml key is commented", not undocumented, undocumented)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY

# docs/kubernetes.md's quick start, command by command, against the chart and the examples.
"$VENV/bin/python" "$ROOT/scripts/check-quickstart.py" "$ROOT" || status=1
# The autoscaling examples: targets exist, metrics are documented (scripts/check-scaling.py).
"$VENV/bin/python" "$ROOT/scripts/check-scaling.py" "$ROOT" || status=1
# values.schema.json is generated from values.yaml (every key, with its comment).
"$VENV/bin/python" "$ROOT/scripts/gen-values-schema.py" --check || status=1
# The container images, checked offline against the chart (scripts/check-images.py).
"$VENV/bin/python" "$ROOT/scripts/check-images.py" "$ROOT" || status=1
# The dashboard against a running frontend's /metrics (scripts/check-dashboard.py).
"$VENV/bin/python" "$ROOT/scripts/check-dashboard.py" "$ROOT" \
    "${SWITCHYARD_BIN:-$ROOT/target/debug/switchyard}" || status=1
exit "$status"
