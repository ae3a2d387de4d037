#!/usr/bin/env python3
"""Checks the chart's Grafana dashboard against what the frontend really exports.

Runs the built frontend (`switchyard demo`: the frontend plus in-process mockers), sends a
plain and a streamed request so every per-model series exists, scrapes /metrics, and checks
every panel expression:

- each metric it selects is exported;
- each label it matches on, groups by (`by (...)`) or shows in a legend is one the frontend
  puts on that metric, or a label Prometheus adds to every target (`instance`, `job`, `pod`…)
  that the metric does not carry itself;
  A label the frontend exports that is also a target label fails: Prometheus renames the
  exported one `exported_<label>`, and grouping by it would silently group by scrape target.
  Every exported metric is also checked to carry no target label at all (the frontend names
  its labels `worker` and `route` for exactly this reason).

Usage: check-dashboard.py ROOT [BINARY]   (BINARY defaults to ROOT/target/debug/switchyard)
Prints one line per check and `N passed, N failed`; exits non-zero on any failure.
"""
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

# Labels Prometheus (and the Prometheus Operator's ServiceMonitor) put on every scraped series.
TARGET_LABELS = {"instance", "job", "namespace", "pod", "service", "container", "endpoint"}

passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"PASS {name}")
    else:
        failed += 1
        print(f"FAIL {name}: {detail}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def scrape(binary):
    """The frontend's /metrics after one plain and one streamed request."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([binary, "demo", "--listen", f"127.0.0.1:{port}", "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                get(f"{base}/metrics", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{binary} demo did not come up")
                time.sleep(0.2)
        chat = {"model": "mock-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        post(f"{base}/v1/chat/completions", chat)
        post(f"{base}/v1/chat/completions", dict(chat, stream=True))
        return get(f"{base}/metrics")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def exported_labels(text):
    """Series name -> the label names the frontend puts on it."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s", line)
        if not m:
            continue
        labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
        out.setdefault(m.group(1), set()).update(labels)
    return out


def matching_paren(s, i, step):
    """Index of the paren matching the one at s[i], scanning forward (+1) or back (-1)."""
    depth = 0
    while 0 <= i < len(s):
        if s[i] in "()":
            depth += 1 if (s[i] == "(") == (step == 1) else -1
            if depth == 0:
                return i
        i += step
    raise ValueError(f"unbalanced parentheses in {s!r}")


METRIC = re.compile(r"\b(switchyard_[a-z0-9_]+)\s*(\{([^}]*)\})?")


def uses(expr):
    """(metric, label, how) for every label the expression relies on, and the grouping labels."""
    out, grouped = [], set()
    for m in METRIC.finditer(expr):
        for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", m.group(3) or ""):
            out.append((m.group(1), label, "matcher"))
        out.append((m.group(1), None, "selected"))
    for m in re.finditer(r"\b(by|without)\s*\(([^)]*)\)", expr):
        labels = [l.strip() for l in m.group(2).split(",") if l.strip()]
        rest = expr[m.end():].lstrip()
        if rest.startswith("("):  # `sum by (x) (inner)`
            start = m.end() + (len(expr[m.end():]) - len(rest))
            inner = expr[start:matching_paren(expr, start, 1) + 1]
        else:  # `sum(inner) by (x)`
            end = expr.rstrip()[:m.start()].rstrip()
            inner = expr[matching_paren(expr, len(end) - 1, -1):len(end)]
        metrics = {mm.group(1) for mm in METRIC.finditer(inner)}
        for metric in metrics:
            for label in labels:
                out.append((metric, label, m.group(1)))
        if m.group(1) == "by":
            grouped.update(labels)
    if re.search(r"\b(on|ignoring|group_left|group_right)\s*\(", expr):
        raise ValueError(f"vector matching is not checked by this script: {expr}")
    return out, grouped


def main():
    root = sys.argv[1]
    binary = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, "target", "debug", "switchyard")
    board = json.load(open(os.path.join(root, "charts", "switchyard", "files", "dashboard.json")))
    if not os.access(binary, os.X_OK):
        check("frontend binary for the dashboard check", False,
              f"{binary} not found; build it first: cargo build -p switchyard")
        return
    exported = exported_labels(scrape(binary))
    check("the frontend exports per-worker series", any(n.startswith("switchyard_instance_") for n in exported),
          sorted(exported))

    for panel in board.get("panels", []):
        for target in panel.get("targets", []):
            expr, title = target["expr"], panel["title"]
            try:
                used, grouped = uses(expr)
            except ValueError as e:
                check(f"dashboard '{title}' parses", False, e)
                continue
            for metric, label, how in used:
                have = exported.get(metric)
                if label is None:
                    check(f"dashboard '{title}': {metric} is exported", have is not None, sorted(exported))
                    continue
                if have is None:
                    continue
                ok = (label in have and label not in TARGET_LABELS) or (label in TARGET_LABELS and label not in have)
                check(f"dashboard '{title}': {metric} has label `{label}` ({how})", ok,
                      f"the frontend puts {sorted(have)} on it; target labels: {sorted(TARGET_LABELS)}")
            for label in re.findall(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}", target.get("legendFormat", "")):
                check(f"dashboard '{title}': legend label `{label}` is grouped by", label in grouped, sorted(grouped))
    for metric in sorted(exported):
        clash = exported[metric] & TARGET_LABELS
        check(f"{metric} carries no target label", not clash,
              f"{sorted(clash)} would be stored as exported_<label>")


if __name__ == "__main__":
    main()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
