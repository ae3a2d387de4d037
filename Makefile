# The two commands of the README's quick start, plus a few conveniences.
.PHONY: demo test build lint bench load plugins

## Run the product on its embedded default: frontend + three in-process mockers, with the
## Rust least-loaded scorer plugin when it can be built (native routing otherwise).
DEMO_PLUGIN := plugins/target/wasm/least-loaded.wasm
demo:
	@./scripts/build-plugins.sh rust >/dev/null 2>&1 || echo "(Rust plugins not built: the demo routes natively)"
	@if [ -f $(DEMO_PLUGIN) ]; then set -- --plugin scorer=$(DEMO_PLUGIN); fi; \
	  cargo run --release -p switchyard -- demo "$$@"

## Run the whole test suite (installs or builds what it needs first).
test:
	./scripts/test.sh

build:
	cargo build --workspace --bins

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## Criterion benches (hot paths).
bench:
	cargo bench -p switchyard-benches

## The load harness: frontend vs direct, streaming and not, c=1 and c=64.
load:
	./benches/load/run.sh

plugins:
	./scripts/build-plugins.sh
