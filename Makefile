# Common commands. Each target sets up ./.venv first (idempotent) and runs with it on PATH.
.PHONY: setup quickstart test test-fast lint format bench

export PATH := $(CURDIR)/.venv/bin:$(PATH)
export HF_HUB_OFFLINE := 1

setup:
	scripts/setup.sh

# The main job, offline, on the embedded SmolLM2-135M: synthesize -> train -> evaluate.
quickstart: setup
	scripts/pipeline.sh

# Every test, slow ones (real SmolLM2-135M) included: what CI runs.
test: setup
	pytest

# Only the fast tests (tiny random models).
test-fast: setup
	pytest -m "not slow"

# The benchmarks of docs/BENCHMARKS.md (each prints its ratio against a baseline of the same run).
bench: setup
	scripts/bench.sh

lint:
	ruff check . && ruff format --check .

format:
	ruff format . && ruff check --fix .
