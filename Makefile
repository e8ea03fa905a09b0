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
