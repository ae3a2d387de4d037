#!/usr/bin/env bash
# Installs the external services Switchyard's distributed tests start as real processes
# (etcd, nats-server), the protobuf toolchain etcd-client needs to build, and the headless
# browser the routing-console test drives (chromium + chromedriver).
#
# Idempotent: packages already present are left alone, and `apt-get update` runs at most once,
# only when something is missing. Prints what it did; exits non-zero with a reason if it can't.
set -euo pipefail

PACKAGES=(etcd-server nats-server protobuf-compiler libprotobuf-dev chromium chromium-driver)

say() { printf 'install-services: %s\n' "$*"; }
die() { printf 'install-services: error: %s\n' "$*" >&2; exit 1; }

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script supports Debian/Ubuntu only; install ${PACKAGES[*]} by hand"
command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${PACKAGES[*]} by hand"

missing=()
for pkg in "${PACKAGES[@]}"; do
    if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
        say "$pkg: already installed"
    else
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to install: ${missing[*]}"
        SUDO=(sudo)
    fi
    # Only refresh the package lists when they have never been fetched or a candidate is missing.
    needs_update=0
    for pkg in "${missing[@]}"; do
        cand=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')
        if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then needs_update=1; fi
    done
    if [ "$needs_update" -eq 1 ]; then
        say "running apt-get update"
        "${SUDO[@]}" apt-get update -qq || die "apt-get update failed"
    fi
    say "installing: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        || die "apt-get install failed for: ${missing[*]}"
fi

# Debian installs etcd as a service; the tests start their own on free ports, so a packaged
# instance on 2379 is not needed. We do not stop or disable it: that is the operator's call.
for bin in etcd nats-server protoc chromium chromedriver; do
    path=$(command -v "$bin" 2>/dev/null) || die "$bin is still not on PATH after installing"
    say "$bin: $path"
done
say "done"
