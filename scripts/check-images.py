#!/usr/bin/env python3
"""Offline checks of the container images (no Docker engine needed; nothing is built here).

What can be checked without building: each Dockerfile builds a binary that the workspace
declares, runs it as the UID/GID the chart's securityContext pins, from a distroless nonroot
base, with the builder on the toolchain of rust-toolchain.toml; the chart's default image names
and tag (appVersion = workspace version) are the ones the Dockerfiles document; the documented
`docker build` commands appear in README.md and docs/operator.md; examples using the frontend
image (mocker pools) use that same name; .dockerignore keeps target/ out but no crate the build
needs. Prints PASS/FAIL lines and `N passed, N failed`; exits 1 on any failure.

Run by scripts/test-chart.sh (needs PyYAML); `python3 scripts/check-images.py [ROOT]` works too.
"""
import glob
import os
import re
import sys
import tomllib

import yaml

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
    print(f"PASS {name}" if ok else f"FAIL {name}: {detail}")


def read(*parts):
    with open(os.path.join(root, *parts)) as f:
        return f.read()


def toml(*parts):
    return tomllib.loads(read(*parts))


values = yaml.safe_load(read("charts", "switchyard", "values.yaml"))
chart = yaml.safe_load(read("charts", "switchyard", "Chart.yaml"))
workspace = toml("Cargo.toml")
channel = toml("rust-toolchain.toml")["toolchain"]["channel"]
app_version = chart["appVersion"]
readme, operator_doc = read("README.md"), read("docs", "operator.md")
psc = values["podSecurityContext"]

check("Chart appVersion is the workspace version (image tags follow both)",
      app_version == workspace["workspace"]["package"]["version"], (app_version, workspace["workspace"]["package"]))

# (Dockerfile, crate dir, values key)
IMAGES = [("frontend/Dockerfile", "frontend", "frontend"), ("operator/Dockerfile", "operator", "operator")]
for dockerfile, crate_dir, key in IMAGES:
    text = read(dockerfile)
    crate = toml(crate_dir, "Cargo.toml")
    package = crate["package"]["name"]
    bins = {b["name"] for b in crate.get("bin", [])}
    image = values[key]["image"]
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    documented = re.search(r"^# image: (\S+)$", text, re.M)
    documented = documented.group(1) if documented else None

    check(f"{dockerfile} documents the chart's {key}.image.repository", documented == image["repository"],
          (documented, image["repository"]))
    check(f"values {key}.image.tag defaults to the chart's appVersion", image["tag"] == "", image["tag"])
    command = f"docker build -f {dockerfile} -t {image['repository']}:{app_version} ."
    for where, doc in [(dockerfile, text), ("README.md", readme), ("docs/operator.md", operator_doc)]:
        check(f"{where} shows `{command}`", command in doc)

    build = re.search(r"cargo build --release --locked -p (\S+) --bin (\S+)", text)
    check(f"{dockerfile} builds a workspace binary",
          bool(build) and build.group(1) == package and build.group(2) in bins,
          (build and build.groups(), package, bins))
    binary = build.group(2) if build else "?"
    entry = re.search(r'^ENTRYPOINT \["([^"]+)"\]', text, re.M)
    check(f"{dockerfile} ENTRYPOINT runs /usr/local/bin/{binary}",
          bool(entry) and entry.group(1) == f"/usr/local/bin/{binary}"
          and f"COPY --from=build /out/{binary} /usr/local/bin/{binary}" in text, entry and entry.group(1))

    rust = args.get("RUST_IMAGE", "")
    check(f"{dockerfile} builder is rust:{channel} (rust-toolchain.toml), pinned",
          rust.startswith(f"rust:{channel}-") or rust == f"rust:{channel}", rust)
    check(f"{dockerfile} uses the builder's toolchain {channel}", f"RUSTUP_TOOLCHAIN={channel}" in text)
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    runtime = args.get("RUNTIME_IMAGE", "")
    check(f"{dockerfile} final stage is distroless nonroot",
          stages[-1:] == ["${RUNTIME_IMAGE}"] and runtime.startswith("gcr.io/distroless/") and runtime.endswith(":nonroot"),
          (stages, runtime))
    user = re.findall(r"^USER (\S+)$", text, re.M)
    want_user = f"{psc['runAsUser']}:{psc['runAsGroup']}"
    check(f"{dockerfile} USER {want_user} matches the chart's runAsUser:runAsGroup", user[-1:] == [want_user], user)
    check(f"{dockerfile} pins no :latest tag", ":latest" not in text)

# etcd-client compiles its protos with protoc: the frontend's builder must have it.
lock = read("Cargo.lock")
if 'name = "etcd-client"' in lock:
    check("frontend/Dockerfile installs protoc (etcd-client needs it)", "protobuf-compiler" in read("frontend/Dockerfile"))

# Examples that run the frontend binary (mocker pools) use the frontend image at appVersion.
frontend_image = f"{values['frontend']['image']['repository']}:{app_version}"
for path in sorted(glob.glob(os.path.join(root, "examples", "*.yaml"))):
    for doc in yaml.safe_load_all(open(path)):
        if doc and doc.get("kind") == "WorkerPool" and doc["spec"].get("engine") == "mocker":
            image = doc["spec"]["template"]["image"]
            check(f"{os.path.basename(path)} runs the frontend image {frontend_image}", image == frontend_image, image)
            # The image's ENTRYPOINT is `switchyard`, so pool args start with the subcommand
            # (the operator's default for mocker pools does the same).
            args = doc["spec"]["template"].get("args") or ["mocker"]
            check(f"{os.path.basename(path)} args start with the `mocker` subcommand", args[0] == "mocker", args)

# .dockerignore: the context has no target/ but every workspace member and wit/.
ignored = [l.strip().rstrip("/") for l in read(".dockerignore").splitlines() if l.strip() and not l.startswith("#")]
check(".dockerignore leaves target/ out of the build context", "target" in ignored, ignored)
needed = workspace["workspace"]["members"] + ["wit", "Cargo.toml", "Cargo.lock"]
hidden = [m for m in needed for pat in ignored if not pat.startswith("!") and (m == pat or m.startswith(pat + "/"))]
check(".dockerignore keeps every workspace member, wit/ and the lock file", not hidden, hidden)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
