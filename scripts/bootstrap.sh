#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh machine, or says what is missing.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[bootstrap] %s\n' "$*"; }

# Rust: the toolchain pinned in rust-toolchain.toml, with the wasm32-wasip2 target.
if ! command -v rustup >/dev/null; then
  say "rustup is missing: install Rust via rustup first"; exit 1
fi
rustup show active-toolchain >/dev/null
rustup target list --installed | grep -qx wasm32-wasip2 || {
  say "adding the wasm32-wasip2 target"; rustup target add wasm32-wasip2; }

# cargo-deny: CI checks the dependency policy (deny.toml). Pinned: 0.20.2 builds on the pinned
# toolchain (it needs Rust 1.88); --locked builds it with its own tested dependency versions.
CARGO_DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $CARGO_DENY_VERSION"; then
  say "installing cargo-deny $CARGO_DENY_VERSION (a few minutes, once)"
  cargo install --locked cargo-deny --version "$CARGO_DENY_VERSION"
fi

# System packages: etcd and NATS servers for the distributed tests, protoc for etcd-client.
if [ -x scripts/install-services.sh ]; then
  scripts/install-services.sh
fi

# Python: the official OpenAI and Anthropic clients drive the frontend in integration tests.
if ! python3 -c 'import openai, anthropic' 2>/dev/null; then
  say "installing Python test requirements"
  python3 -m pip install --disable-pip-version-check -q -r tests/python/requirements.txt
fi
# npm: the official `openai` npm client drives a Responses stream in an integration test.
if [ ! -d tests/js/node_modules/openai ]; then
  command -v npm >/dev/null || { say "npm is missing: install Node.js (20 or newer)"; exit 1; }
  say "installing npm test requirements"
  npm ci --prefix tests/js --no-audit --no-fund
fi
say "ok"
