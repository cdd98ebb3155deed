# The two set-up commands (PRODUCT.md §1). Both install packages, configure and build Release.
BUILD ?= build
JOBS ?= $(shell nproc)
SHELL := /bin/bash

.PHONY: deps build run test clean fuzz

deps:
	./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
	  ./$(BUILD)/app/headlab --model demo; \
	else \
	  echo "No display: running the headless demo instead."; \
	  ./$(BUILD)/app/headlab-cli demo --out demo-report && echo "Report: $$(pwd)/demo-report/report.html"; \
	fi

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD)

# libFuzzer targets for every parser (clang + ASan/UBSan), FUZZ_SECONDS each (default 60).
fuzz: deps
	./fuzz/run_fuzzers.sh
