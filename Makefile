# Common commands. Each target sets up ./.venv first (idempotent).
.PHONY: setup quickstart test test-fast lint format bench

VENV := .venv/bin

setup:
	scripts/setup.sh

# The main job, offline, on the embedded SmolLM2-135M.
quickstart: setup
	HF_HUB_OFFLINE=1 $(VENV)/tonetune-train experiment=quickstart

# Every test, slow ones (real SmolLM2-135M) included: what CI runs.
test: setup
	HF_HUB_OFFLINE=1 $(VENV)/pytest

# Only the fast tests (tiny random models).
test-fast: setup
	HF_HUB_OFFLINE=1 $(VENV)/pytest -m "not slow"

lint:
	$(VENV)/ruff check . && $(VENV)/ruff format --check .

format:
	$(VENV)/ruff format . && $(VENV)/ruff check --fix .
