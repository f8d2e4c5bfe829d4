# The two commands: `make run` and `make test`. Both install what is missing, then build.
BUILD_DIR   ?= build
ASAN_DIR    ?= build-asan
JOBS        ?= $(shell nproc)
CMAKE_FLAGS := -G Ninja -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
PYTHON      ?= /usr/bin/python3
FUZZ_DIR    ?= build-fuzz
FUZZ_SECONDS ?= 60
# One target per seed corpus (tests/fuzz/<target>.cpp, tests/fuzz/corpus/<target>/).
FUZZ_TARGETS ?= $(notdir $(wildcard tests/fuzz/corpus/*))

.PHONY: all deps build build-asan run test unit-test integration-test bench bench-micro clean fuzz

all: build

deps:
	@scripts/install-deps

$(BUILD_DIR)/build.ninja:
	@cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS) -DCMAKE_BUILD_TYPE=Release

$(ASAN_DIR)/build.ninja:
	@cmake -S . -B $(ASAN_DIR) $(CMAKE_FLAGS) -DCMAKE_BUILD_TYPE=Debug -DPORTICO_SANITIZE=ON

# libFuzzer needs clang; the whole library is instrumented, so the fuzz build has its own dir.
$(FUZZ_DIR)/build.ninja:
	@CC=clang-14 CXX=clang++-14 cmake -S . -B $(FUZZ_DIR) $(CMAKE_FLAGS) -DCMAKE_BUILD_TYPE=Debug -DPORTICO_FUZZ=ON

build: deps $(BUILD_DIR)/build.ninja
	@echo "== building release ($(BUILD_DIR))"
	@cmake --build $(BUILD_DIR) -j $(JOBS)

build-asan: deps $(ASAN_DIR)/build.ninja
	@echo "== building ASan+UBSan ($(ASAN_DIR))"
	@cmake --build $(ASAN_DIR) -j $(JOBS)

run: build
	@echo "== starting portico on examples/quickstart.yaml: try  curl -i http://127.0.0.1:8080/hello"
	@$(BUILD_DIR)/portico run -c examples/quickstart.yaml

# Integration test files run two at a time (pytest-xdist, a file per worker: its module-scoped
# gateways stay whole); each worker draws ports from its own range (support/util.py).
PYTEST_PARALLEL ?= -n 2 --dist loadfile

# Unit tests (release and sanitized), then the integration suite against both binaries.
test: build build-asan
	@echo "== unit tests (release)"
	@$(BUILD_DIR)/portico_unit_tests --gtest_brief=1
	@echo "== unit tests (ASan+UBSan)"
	@$(ASAN_DIR)/portico_unit_tests --gtest_brief=1
	@echo "== fuzz corpora replay (release, ASan+UBSan)"
	@for t in $(FUZZ_TARGETS); do \
	  $(BUILD_DIR)/portico_fuzz_replay_$$t tests/fuzz/corpus/$$t >/dev/null && \
	  $(ASAN_DIR)/portico_fuzz_replay_$$t tests/fuzz/corpus/$$t >/dev/null || exit 1; \
	done; echo "replayed the corpora of $(words $(FUZZ_TARGETS)) fuzz targets"
	@echo "== integration tests (release)"
	@PORTICO_BIN=$(CURDIR)/$(BUILD_DIR)/portico $(PYTHON) -m pytest -q -p no:cacheprovider $(PYTEST_PARALLEL) tests/integration
	@echo "== integration tests (ASan+UBSan)"
	@PORTICO_BIN=$(CURDIR)/$(ASAN_DIR)/portico PORTICO_SANITIZED=1 $(PYTHON) -m pytest -q -p no:cacheprovider $(PYTEST_PARALLEL) -m "not slow" tests/integration

# Each fuzz target for FUZZ_SECONDS on a copy of its corpus (tests/fuzz/run-fuzzers); fails
# when one crashed, with the reproducers in $(FUZZ_DIR)/crashes/<target>/.
fuzz: deps $(FUZZ_DIR)/build.ninja
	@echo "== building the fuzzers ($(FUZZ_DIR))"
	@cmake --build $(FUZZ_DIR) -j $(JOBS) --target portico_fuzzers
	@tests/fuzz/run-fuzzers $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

bench: build
	@bench/run

bench-micro: build
	@$(BUILD_DIR)/portico_router_bench

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(FUZZ_DIR)
