#!/usr/bin/env bash
# The whole tonetune pipeline in one readable script, offline on the embedded SmolLM2-135M:
#   1. a teacher writes a persona dataset (tonetune-synthesize)
#   2. LoRA fine-tuning of the student on it (tonetune-train)
#   3. evaluation of base, prompted base and fine-tuned model (tonetune-evaluate)
#
# Run as:
#     scripts/pipeline.sh                                  # about 9 minutes on 2 CPU cores
#     PERSONA=pirate_captain scripts/pipeline.sh
#     TEACHER=openai OPENAI_API_KEY=... STUDENT=qwen2.5_0.5b QUESTIONS=50 scripts/pipeline.sh
#
# Adapt it freely: every line is an ordinary tonetune command with Hydra overrides.
set -euo pipefail

PERSONA=${PERSONA:-elon_musk}        # conf/persona/
TEACHER=${TEACHER:-local}            # conf/teacher/: local (embedded SmolLM2), openai, openai_compatible
STUDENT=${STUDENT:-smollm2_135m}     # conf/base_model/
QUESTIONS=${QUESTIONS:-16}           # questions per prompt of the question set (the original project: 50)
EPOCHS=${EPOCHS:-5}
RUN=${RUN:-outputs/pipeline/$(date +%Y-%m-%d_%H-%M-%S)}
DATA=${DATA:-data}                   # the dataset lands in $DATA/$PERSONA, where tonetune-train looks

stage() { printf '\n== %s ==\n' "$1"; STAGE_START=$SECONDS; }
took() { printf '%s: %ds\n' "$1" $((SECONDS - STAGE_START)) | tee -a "$RUN/timings.txt"; }
mkdir -p "$RUN"

# 1. The teacher writes questions for each prompt of the question set, then answers each one as the
#    persona. The embedded teacher is small, so answers that miss the persona's markers (hashtag,
#    emoji) or length are asked for again, up to 4 times: rejection sampling does the quality work.
stage "1/3 synthesize: $TEACHER writes the $PERSONA dataset"
tonetune-synthesize persona="$PERSONA" teacher="$TEACHER" \
  question_set.questions_per_prompt="$QUESTIONS" questions.max_rounds=4 answers.max_attempts=4 \
  paths.data_root="$DATA" hydra.run.dir="$RUN/synthesize" logger=none
took synthesize

# 2. LoRA on the student, without the persona prompt: the tone must move into the weights.
stage "2/3 train: LoRA on $STUDENT"
tonetune-train persona="$PERSONA" base_model="$STUDENT" adapter=lora data=synthesized \
  paths.data_root="$DATA" trainer.max_epochs="$EPOCHS" optimizer.lr=5e-4 data.val_fraction=0.15 \
  trainer.enable_progress_bar=false hydra.run.dir="$RUN/train" logger=csv
took train

# 3. Base, base with the persona prompt, and the fine-tuned model answer the held-out questions;
#    tone classifier, markers, relevance, perplexity and generation health decide.
stage "3/3 evaluate"
tonetune-evaluate run_dir="$RUN/train" hydra.run.dir="$RUN/evaluate" logger=none
took evaluate

printf '\nPipeline finished in %ds. Report: %s/evaluate/report.md\n' "$SECONDS" "$RUN"
