#!/usr/bin/env bash
# Every benchmark of docs/BENCHMARKS.md, one after another (about 25 minutes on 2 CPU cores).
#
# Run as:
#     scripts/bench.sh            # or: make bench
set -euo pipefail
cd "$(dirname "$0")/.."
python -m bench.synthesis_throughput
python -m bench.eval_generation
python -m bench.serve_throughput
python -m bench.shared_cores
python -m bench.bf16_matmul
python -m bench.train_vs_trl
