# tandem — the two commands that matter: `make demo` and `make test`.
# Each does all set-up on a fresh Debian machine (packages, configure, build).

JOBS ?= $(shell nproc)
BUILD ?= build
SHARED ?= $(abspath ../shared)
FUZZ_SECONDS ?= 30

.PHONY: all deps build test test-asan e2e-deps fuzz fuzz-smoke demo bench bench-serve bench-scenario gpu-check format clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja: | deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null

build: deps $(BUILD)/build.ninja
	@cmake --build $(BUILD) -j $(JOBS)

# The openai npm package for the end-to-end tests (tests/server/e2e), from package-lock.json.
E2E := tests/server/e2e
$(E2E)/node_modules/.package-lock.json: $(E2E)/package.json $(E2E)/package-lock.json | deps
	@cd $(E2E) && npm ci --no-audit --no-fund --loglevel=error

e2e-deps: $(E2E)/node_modules/.package-lock.json

test: build e2e-deps
	@cd $(BUILD) && TANDEM_SHARED=$(SHARED) ctest --output-on-failure -j $(JOBS)

# Unit and parity tests under AddressSanitizer + UndefinedBehaviorSanitizer.
build-asan/build.ninja: | deps
	@cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTANDEM_SANITIZE=ON \
	  -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" >/dev/null

test-asan: deps build-asan/build.ninja e2e-deps
	@cmake --build build-asan -j $(JOBS)
	@cd build-asan && TANDEM_SHARED=$(SHARED) ASAN_OPTIONS=detect_leaks=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

# libFuzzer targets (clang). `make fuzz-smoke` runs each for FUZZ_SECONDS.
build-fuzz/build.ninja: | deps
	@CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTANDEM_FUZZ=ON \
	  -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" >/dev/null

fuzz: deps build-fuzz/build.ninja
	@cmake --build build-fuzz -j $(JOBS)

fuzz-smoke: fuzz
	@for f in build-fuzz/fuzz/*; do \
	  name=$$(basename $$f); mkdir -p build-fuzz/corpus/$$name; \
	  echo "fuzz: $$name for $(FUZZ_SECONDS)s"; \
	  if ! $$f -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 \
	      build-fuzz/corpus/$$name fuzz/seeds/$$name >build-fuzz/$$name.log 2>&1; then \
	    tail -n 60 build-fuzz/$$name.log; echo "fuzz: $$name FAILED"; exit 1; \
	  fi; \
	  grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)' build-fuzz/$$name.log; \
	done

demo: build
	@$(BUILD)/tandem info --model models/demo
	@echo; echo "=== greedy continuation of 'Return the' (matches transformers token for token)"
	@$(BUILD)/tandem run --model models/demo --prompt "Return the" -n 40 --ignore-eos
	@echo; echo "=== sampled (temperature 0.8, top-p 0.95, seed 7) after a numpy-style 'Parameters' header"
	@$(BUILD)/tandem run --model models/demo --prompt "Parameters\n----------\n" -n 60 --temperature 0.8 --top-p 0.95 --seed 7

bench: build
	@$(BUILD)/bench/bench_forward

# Load test of `tandem serve` with the demo model: output tok/s, TTFT and ITL at several concurrencies.
bench-serve: build
	@$(BUILD)/bench/bench_serve --spawn $(BUILD)/tandem --model models/demo

# Scripted load phases over several pipelines (bench/scenarios), run with adaptive and then
# static sharing: per phase and pipeline tok/s, TTFT/TPOT, SLO attainment and measured share.
SCENARIO ?= bench/scenarios/shifting.yaml
bench-scenario: build
	@$(BUILD)/bench/bench_scenario $(SCENARIO) --tandem $(BUILD)/tandem --compare \
	  --json $(BUILD)/bench_scenario.json

# On a machine with an NVIDIA GPU: build the CUDA backend, run its kernel tests (a skip
# fails the check) and print the kernel benchmark table. No package installs.
gpu-check:
	@SHARED=$(SHARED) scripts/gpu-check.sh

format:
	@clang-format -i $$(git ls-files 'src/*.cpp' 'src/*.h' 'tests/*.cpp' 'tests/*.h' 'bench/*.cpp' 'fuzz/*.cpp')

clean:
	rm -rf build build-asan build-fuzz build-gpu
