# Common commands. Each target sets up ./.venv first (idempotent) and runs with it on PATH.
.PHONY: setup setup-browser quickstart test test-fast lint format bench

export PATH := $(CURDIR)/.venv/bin:$(PATH)
export HF_HUB_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False

setup:
	scripts/setup.sh

setup-browser:
	scripts/setup.sh --browser

# The main job, offline, on the embedded SmolLM2-135M: synthesize -> train -> evaluate.
quickstart: setup
	scripts/pipeline.sh

# Every test, slow ones (real SmolLM2-135M) and the arena's browser test included: what CI runs.
test: setup-browser
	pytest

# Only the fast tests (tiny random models).
test-fast: setup-browser
	pytest -m "not slow"

# The benchmarks of docs/BENCHMARKS.md (each prints its ratio against a baseline of the same run).
bench: setup
	scripts/bench.sh

lint:
	ruff check . && ruff format --check .

format:
	ruff format . && ruff check --fix .
