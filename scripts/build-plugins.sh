#!/usr/bin/env bash
# Builds every Switchyard plugin into plugins/target/wasm/<name>.wasm.
#
#   scripts/build-plugins.sh            # Rust, Python and JavaScript plugins
#   scripts/build-plugins.sh rust       # only one language (rust | python | js)
#
# Idempotent: an output newer than all of its inputs (sources, wit/, toolchain files) is skipped.
# Installs what it needs — the wasm32-wasip2 Rust target, componentize-py (pip, user-level when
# possible) and jco + componentize-js (npm, locally under plugins/js/node_modules) — and exits
# non-zero with a clear message when a toolchain cannot be installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PLUGINS="$ROOT/plugins"
WIT="$ROOT/wit"
OUT="$PLUGINS/target/wasm"
COMPONENTIZE_PY_VERSION="0.25.1"
LANGS=("${@:-rust python js}")
# shellcheck disable=SC2206
LANGS=(${LANGS[*]})

mkdir -p "$OUT"

say() { printf '[build-plugins] %s\n' "$*"; }
die() {
    printf '[build-plugins] ERROR: %s\n' "$*" >&2
    exit 1
}

# up_to_date OUTPUT INPUT... : true when OUTPUT exists and no INPUT file is newer.
up_to_date() {
    local output="$1"
    shift
    [[ -f "$output" ]] || return 1
    [[ -z "$(find "$@" -type f -newer "$output" -not -path '*/node_modules/*' -not -path '*/__pycache__/*' -print -quit 2>/dev/null)" ]]
}

build_rust() {
    command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
    if command -v rustup >/dev/null; then
        # rust-toolchain.toml pins the toolchain; make sure it has the component target.
        (cd "$PLUGINS" && rustup target list --installed | grep -qx wasm32-wasip2) ||
            (cd "$PLUGINS" && rustup target add wasm32-wasip2) ||
            die "could not install the wasm32-wasip2 target (rustup target add wasm32-wasip2)"
    fi
    say "rust: cargo build --release (plugins workspace, wasm32-wasip2)"
    # Cargo does its own up-to-date check, so this is cheap when nothing changed.
    (cd "$PLUGINS" && cargo build --release --quiet) || die "cargo build of the Rust plugins failed"
    local built="$PLUGINS/target/wasm32-wasip2/release"
    local crate_dir name
    while IFS= read -r crate_dir; do
        name="$(basename "$crate_dir")"
        # Library crates (the switchyard-plugin guest helper) are linked into plugins, not built
        # into components of their own.
        grep -Eq '^crate-type *= *\[.*cdylib' "$crate_dir/Cargo.toml" || continue
        local artifact="$built/$(grep -m1 '^name' "$crate_dir/Cargo.toml" | sed 's/.*"\(.*\)".*/\1/' | tr - _).wasm"
        [[ -f "$artifact" ]] || die "expected $artifact after cargo build"
        if [[ "$crate_dir" == */testing/* ]]; then name="testing-$name"; fi
        if ! cmp -s "$artifact" "$OUT/$name.wasm"; then
            cp "$artifact" "$OUT/$name.wasm"
            say "rust: $name.wasm ($(wc -c <"$OUT/$name.wasm") bytes)"
        fi
    done < <(find "$PLUGINS/rust" -name Cargo.toml -not -path '*/target/*' -exec dirname {} \; | sort)
}

ensure_componentize_py() {
    if command -v componentize-py >/dev/null; then return; fi
    say "python: installing componentize-py $COMPONENTIZE_PY_VERSION with pip"
    local pip
    pip="$(command -v pip3 || command -v pip || true)"
    [[ -n "$pip" ]] || die "pip not found: install Python 3.10+ with pip, then: pip install componentize-py==$COMPONENTIZE_PY_VERSION"
    "$pip" install --quiet "componentize-py==$COMPONENTIZE_PY_VERSION" ||
        "$pip" install --quiet --user "componentize-py==$COMPONENTIZE_PY_VERSION" ||
        die "pip install componentize-py==$COMPONENTIZE_PY_VERSION failed"
    hash -r
    command -v componentize-py >/dev/null ||
        die "componentize-py installed but not on PATH (add ~/.local/bin to PATH)"
}

build_python() {
    local dir name output
    for dir in "$PLUGINS"/python/*/; do
        dir="${dir%/}"
        [[ -f "$dir/app.py" ]] || continue
        name="$(basename "$dir")"
        output="$OUT/$name.wasm"
        if up_to_date "$output" "$dir" "$WIT"; then
            say "python: $name.wasm is up to date"
            continue
        fi
        ensure_componentize_py
        local world
        world="$(cat "$dir/WORLD")"
        say "python: componentize-py $name (world $world; takes ~1 min)"
        (cd "$dir" && componentize-py -d "$WIT" -w "$world" componentize app -o "$output.tmp") ||
            die "componentize-py failed for $name"
        mv "$output.tmp" "$output"
        say "python: $name.wasm ($(wc -c <"$output") bytes)"
    done
}

ensure_js_toolchain() {
    if [[ -x "$PLUGINS/js/node_modules/.bin/componentize-js" ]]; then return; fi
    command -v npm >/dev/null || die "npm not found: install Node.js 20+ (it provides npm)"
    say "js: npm install (jco + componentize-js, locally under plugins/js/node_modules)"
    (cd "$PLUGINS/js" && npm install --no-audit --no-fund --silent) ||
        die "npm install of @bytecodealliance/jco and @bytecodealliance/componentize-js failed"
}

build_js() {
    local dir name output source
    for dir in "$PLUGINS"/js/*/; do
        dir="${dir%/}"
        name="$(basename "$dir")"
        [[ "$name" == node_modules ]] && continue
        source="$dir/$name.js"
        [[ -f "$source" ]] || continue
        output="$OUT/$name.wasm"
        if up_to_date "$output" "$dir" "$WIT"; then
            say "js: $name.wasm is up to date"
            continue
        fi
        ensure_js_toolchain
        local world
        world="$(cat "$dir/WORLD")"
        say "js: componentize-js $name (world $world; takes ~1 min)"
        # Run from the repo root with relative paths: the toolchain's sandboxed wasm-tools only
        # sees the working directory. `-d http -d fetch-event` keeps wasi:http out of the imports.
        (cd "$ROOT" && "$PLUGINS/js/node_modules/.bin/componentize-js" \
            "${source#"$ROOT"/}" --wit wit --world-name "$world" \
            -d http -d fetch-event -o "${output#"$ROOT"/}.tmp") ||
            die "componentize-js failed for $name"
        mv "$output.tmp" "$output"
        say "js: $name.wasm ($(wc -c <"$output") bytes)"
    done
}

for lang in "${LANGS[@]}"; do
    case "$lang" in
    rust) build_rust ;;
    python) build_python ;;
    js) build_js ;;
    *) die "unknown language '$lang' (expected rust, python or js)" ;;
    esac
done
say "done: $OUT"
