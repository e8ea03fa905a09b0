# Quantrac — station data logger. `make demo` and `make test` work on a fresh Debian 12 machine.
SHELL := /bin/bash
SWIFT ?= swift
BIN := .build/debug
DEMO_CONFIG ?= Boards/stations/demo.toml

.PHONY: deps build test demo clean

deps:
	@./scripts/install-deps.sh

build: deps
	$(SWIFT) build

test: deps
	$(SWIFT) build --build-tests
	QUANTRAC_BIN_DIR=$(CURDIR)/$(BIN) $(SWIFT) test --skip-build

demo: build
	@./scripts/demo.sh $(DEMO_CONFIG)

clean:
	rm -rf .build .demo

# Debian package: quantrac_<version>_<arch>.deb in .build/deb/ (release build; see packaging/build-deb.sh).
.PHONY: deb
deb: deps
	SWIFT=$(SWIFT) packaging/build-deb.sh

# Benchmarks against mbpoll, collectd, lftp, curl and vsftpd on loopback (the release build as `make deb` ships
# it, Swift runtime linked in; about 20 minutes;
# BENCH_QUICK=1 for a short smoke run, BENCH_REPEATS=N, BENCH_ONLY=acquisition,footprint,backlog,soak).
# Prints the ratio table and writes .build/bench/results.md; see BENCHMARKS.md.
.PHONY: bench
bench:
	@./scripts/install-deps.sh --bench
	$(SWIFT) build -c release --static-swift-stdlib --scratch-path .build/bench-release
	QUANTRAC_RELEASE_BIN=$(CURDIR)/.build/bench-release/release python3 Tests/Benchmarks/bench.py

# Averages: recompute 400 days × 64 channels of 5-minute records (7.4 M rows) through AverageCalculator and
# time a plain SQL GROUP BY over the same rows; prints both and the ratio (a few minutes, release build).
# AVG_BENCH_ARGS="--days 20 --repeats 1" for a quick run.
.PHONY: bench-averages
bench-averages: deps
	$(SWIFT) build -c release --product quantrac-bench
	.build/release/quantrac-bench averages $(AVG_BENCH_ARGS)
