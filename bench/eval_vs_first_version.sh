#!/usr/bin/env bash
# Evaluation peak memory and time: today's tonetune-evaluate against the first version's (commit
# 2ec0259, before one model in memory and the one generation engine), on the same run and seed.
#
# Run as (from the repository root, with .venv set up):
#     bench/eval_vs_first_version.sh [WORK_DIR]
#
# Each version trains the same run (data=example, one epoch of the embedded SmolLM2-135M, in fp32 as
# the first version did) and evaluates it three ways: the first version; today's with only the first
# version's work (evaluation.batch_size=16 as it was, fp32 decoding, pressure, multi-turn and
# capability off); and today's default (pressure, 5-turn drift, lm-eval capability on), each with an
# empty response cache. Peak RSS and wall time come from /usr/bin/time -v; the answers of the first
# two must be identical.
set -euo pipefail
ROOT=$(pwd)
WORK=${1:-$(mktemp -d)}
FIRST=2ec0259
PY="$ROOT/.venv/bin/python"
export HF_HUB_OFFLINE=1

[ -d "$WORK/first" ] || git worktree add -f "$WORK/first" "$FIRST" -q
measure() {  # name, folder to run in, evaluate arguments...
  local name=$1 dir=$2; shift 2
  rm -f "$WORK/$name".sqlite{,-wal,-shm}  # this script's own response cache: every measure starts empty
  (cd "$dir" && PYTHONPATH="$dir" /usr/bin/time -v "$PY" -m tonetune.cli.evaluate logger=none \
    hydra.run.dir="$WORK/$name" paths.response_cache="$WORK/$name.sqlite" "$@" >"$WORK/$name.log" 2>&1)
  printf '%-10s peak RSS %5d MB, wall %s\n' "$name" \
    $(($(grep 'Maximum resident' "$WORK/$name.log" | awk '{print $NF}') / 1024)) \
    "$(grep 'Elapsed (wall' "$WORK/$name.log" | awk '{print $NF}')"
}
for version in first now; do  # today's default on a bf16 CPU is bf16-mixed; the first had fp32 only
  dir=$ROOT; extra=(trainer.precision=32-true); [ $version = first ] && dir=$WORK/first && extra=()
  (cd "$dir" && PYTHONPATH="$dir" "$PY" -m tonetune.cli.train data=example trainer.max_epochs=1 logger=none \
    "${extra[@]}" \
    trainer.enable_progress_bar=false hydra.run.dir="$WORK/run_$version" >"$WORK/train_$version.log" 2>&1)
done
measure first "$WORK/first" run_dir="$WORK/run_first" evaluation.batch_size=16
measure same_work "$ROOT" run_dir="$WORK/run_now" evaluation.batch_size=16 evaluation.dtype=float32 \
  evaluation.pressure.questions=0 \
  evaluation.multi_turn.conversations=0 "evaluation.capability.tasks=[]"
measure default "$ROOT" run_dir="$WORK/run_now"
"$PY" - "$WORK" <<'EOF'
import json, sys
work = sys.argv[1]
rows = {n: [json.loads(l) for l in open(f"{work}/{n}/answers.jsonl")] for n in ("first", "same_work")}
same = sum(a[c] == b[c] for a, b in zip(*rows.values()) for c in ("base", "base_prompted", "finetuned"))
print(f"identical answers, first version vs today's same work: {same}/{3 * len(rows['first'])}")
EOF
