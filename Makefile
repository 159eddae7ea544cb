# airlock — two commands on a fresh Debian 12 machine:
#   make run    install what is missing, build, and play the quick-start tour
#   make test   install, build (normal and ASan/UBSan), and run every test
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 20

.PHONY: all deps build build-asan run test test-unit test-asan fuzz bench bench-peers bench-shell bench-serve bench-mcp bench-pg format clean

all: build

deps:
	@bash scripts/install-deps.sh
	@bash scripts/install-browser-tests.sh
	@bash scripts/install-mcp-tests.sh
	@bash scripts/install-mail-tests.sh

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DAIRLOCK_SANITIZE=ON -DAIRLOCK_BENCH=OFF
	cmake --build $(ASAN_BUILD) -j $(JOBS)

run: build
	@bash scripts/quickstart.sh

# Every test: unit and black-box tests on the normal build, the same on the sanitizer
# build, and a short run of every fuzz target over its seed corpus.
test: build build-asan
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)
	$(MAKE) --no-print-directory fuzz

fuzz: deps
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DAIRLOCK_FUZZ=ON -DAIRLOCK_SANITIZE=ON
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@bash scripts/run-fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# Benchmarks: the library's (bench/run.sh), then `airlock exec` against the peer sandboxes
# (bench/shell_peers.sh; SHELL_PEERS_ARGS, e.g. "--peers 100", goes to it) and where its time
# goes, step by step (bench/trace_steps.sh). Only these targets install the peers (network:
# apt and npm); `make test` does not.
bench: build bench-peers
	@bash bench/run.sh $(BUILD)
	@bash bench/shell_peers.sh --build $(BUILD) $(SHELL_PEERS_ARGS)
	@bash bench/trace_steps.sh --build $(BUILD)
	@bash bench/serve_bench.sh --build $(BUILD)
	@bash bench/mcp_bench.sh --build $(BUILD)
	@bash bench/mail_bench.sh --build $(BUILD)
	@bash bench/pg_bench.sh --build $(BUILD)

# `airlock serve` against a minimal HTTP service of the same library (wrk, 32 clients).
bench-serve: build
	@bash bench/serve_bench.sh --build $(BUILD)

# `airlock mcp stdio` against the same SDK client talking to server-everything directly, and
# mcp-proxy (npm) against server-everything's own HTTP (tests/mcp, installed by `make deps`).
bench-mcp: build
	@bash bench/mcp_bench.sh --build $(BUILD)

# The PostgreSQL target on a private server (tests/blackbox/pg_lib.sh): `airlock sql` dry-run
# + classify against psql, and the capture trigger's cost on the application's own inserts.
bench-pg: build
	@bash bench/pg_bench.sh --build $(BUILD)

bench-shell: build bench-peers
	@bash bench/shell_peers.sh --build $(BUILD) $(SHELL_PEERS_ARGS)
	@bash bench/trace_steps.sh --build $(BUILD)

bench-peers:
	@bash scripts/install-bench-peers.sh

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
