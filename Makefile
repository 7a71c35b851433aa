# keel front door. `make run` and `make test` work on a fresh Debian 12 machine.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
LISTEN ?= 127.0.0.1:8080
DATA ?= ./data

RELEASE_DIR := build/release
TEST_DIR := build/asan
FUZZ_DIR := build/fuzz
FUZZ_SECONDS ?= 60

.PHONY: deps build build-test run test bench fuzz format clean

deps:
	@./scripts/install-deps.sh

$(RELEASE_DIR)/build.ninja:
	cmake -S . -B $(RELEASE_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEEL_BUILD_TESTS=OFF

$(TEST_DIR)/build.ninja:
	cmake -S . -B $(TEST_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKEEL_SANITIZE=ON

build: deps $(RELEASE_DIR)/build.ninja
	cmake --build $(RELEASE_DIR) -j $(JOBS)

build-test: deps $(TEST_DIR)/build.ninja
	cmake --build $(TEST_DIR) -j $(JOBS)

run: build
	@echo ""
	@echo "keeld: embedded journal in $(DATA), listening on http://$(LISTEN)"
	@echo "keel-psp-sim: PSPs cardco, altpay and bankco on http://127.0.0.1:9090 (config/psp-sim.toml)"
	@echo "keys:  made at the first start, in $(DATA)/bootstrap-keys (owner-only); see docs/security.md"
	@echo "try:   curl -s http://$(LISTEN)/healthz"
	@echo "       see README.md for the tour; Ctrl-C (SIGINT) or SIGTERM stops both cleanly"
	@echo ""
	BIN=$(RELEASE_DIR)/src LISTEN=$(LISTEN) DATA=$(DATA) exec ./scripts/run.sh

test: build-test
	cd $(TEST_DIR) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 900

bench: build
	mkdir -p bench-results
	$(RELEASE_DIR)/src/bench/keel-bench ledger --json bench-results/ledger.json
	$(RELEASE_DIR)/src/bench/keel-bench http --keeld $(RELEASE_DIR)/src/keeld/keeld --json bench-results/http.json
	$(RELEASE_DIR)/src/bench/keel-bench payments --keeld $(RELEASE_DIR)/src/keeld/keeld \
	  --psp-sim $(RELEASE_DIR)/src/psp_sim/keel-psp-sim --json bench-results/payments.json

# libFuzzer on every decoder of outside bytes (src/fuzz), FUZZ_SECONDS each, in a clang tree.
fuzz:
	@./scripts/install-deps.sh --fuzz
	cmake -S . -B $(FUZZ_DIR) -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DKEEL_FUZZ=ON -DKEEL_BUILD_TESTS=OFF -DKEEL_BUILD_BENCH=OFF
	cmake --build $(FUZZ_DIR) -j $(JOBS) --target keel-fuzz-all
	./scripts/fuzz.sh $(FUZZ_DIR) $(FUZZ_SECONDS)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf build
