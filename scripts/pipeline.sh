#!/usr/bin/env bash
# The whole tonetune pipeline in one readable script, offline on the embedded SmolLM2-135M:
#   1. a teacher writes a persona dataset (tonetune-synthesize): answers, follow-ups, preference pairs
#   2. the student is fine-tuned, stage after stage (tonetune-train; each stage continues the last)
#   3. base, prompted base and fine-tuned model are evaluated (tonetune-evaluate) on the question
#      set's held-out questions and the dataset's own test split
#
# Run as:
#     scripts/pipeline.sh                                  # about 10 minutes on 2 CPU cores
#     STAGES="sft dpo" scripts/pipeline.sh                 # SFT, then DPO from the SFT run
#     PERSONA=pirate_captain scripts/pipeline.sh
#     TEACHER=openai OPENAI_API_KEY=... STUDENT=qwen2.5_0.5b QUESTIONS=50 scripts/pipeline.sh
#
# Adapt it freely: every line is an ordinary tonetune command with Hydra overrides.
set -euo pipefail

PERSONA=${PERSONA:-elon_musk}        # conf/persona/
QUESTION_SET=${QUESTION_SET:-celebrity}  # conf/question_set/
TEACHER=${TEACHER:-local}            # conf/teacher/: local (embedded SmolLM2), openai, openai_compatible
STUDENT=${STUDENT:-smollm2_135m}     # conf/base_model/
QUESTIONS=${QUESTIONS:-16}           # questions per prompt of the question set (the original project: 50)
FOLLOW_UPS=${FOLLOW_UPS:-0.25}       # share of conversations extended with follow-up turns
STAGES=${STAGES:-sft}                # training stages in order: lm, sft, dpo, orpo (conf/objective/)
EPOCHS=${EPOCHS:-5}
RUN=${RUN:-outputs/pipeline/$(date +%Y-%m-%d_%H-%M-%S)}
DATA=${DATA:-data}                   # the dataset lands in $DATA/$PERSONA, where tonetune-train looks

stage() { printf '\n== %s ==\n' "$1"; STAGE_START=$SECONDS; }
took() { printf '%s: %ds\n' "$1" $((SECONDS - STAGE_START)) | tee -a "$RUN/timings.txt"; }
mkdir -p "$RUN"

# 1. With the embedded teacher, the question set's shipped bank supplies the questions (the 135M
#    model writes poor ones); a real teacher writes its own lists from the set's prompts. Each
#    answer must pass the persona's filters (hashtag, emoji, length), asked up to 4 times. A share
#    of the conversations get follow-ups, and the student's own answers become the rejected side
#    of the preference pairs. overwrite=true: the pipeline replaces its own earlier dataset.
stage "1/3 synthesize: $TEACHER writes the $PERSONA dataset"
tonetune-synthesize persona="$PERSONA" question_set="$QUESTION_SET" teacher="$TEACHER" base_model="$STUDENT" \
  question_set.questions_per_prompt="$QUESTIONS" questions.max_rounds=4 answers.max_attempts=4 \
  conversations.share="$FOLLOW_UPS" paths.data_root="$DATA" overwrite=true \
  hydra.run.dir="$RUN/synthesize" logger=none
took synthesize

# 2. LoRA on the student, without the persona prompt: the tone must move into the weights. Each
#    stage is its own run folder and continues the one before (init_from); a DPO stage takes that
#    run as its reference model.
previous=null
for objective in $STAGES; do
  stage "2/3 train: $objective on $STUDENT"
  tonetune-train persona="$PERSONA" base_model="$STUDENT" adapter=lora objective="$objective" data=synthesized \
    paths.data_root="$DATA" trainer.max_epochs="$EPOCHS" optimizer.lr=5e-4 data.val_fraction=0.15 \
    init_from="$previous" trainer.enable_progress_bar=false hydra.run.dir="$RUN/train_$objective" logger=csv
  took "train_$objective"
  previous="$RUN/train_$objective"
done

# 3. Base, base with the persona prompt, and the fine-tuned model answer the question set's
#    held-out questions (written for tonetune, never trained on) and the dataset's test split:
#    tone classifiers (with and without emojis and hashtags), markers, relevance, perplexity,
#    the persona under pressure, multi-turn drift, general capability; each with a 95% interval.
stage "3/3 evaluate"
tonetune-evaluate run_dir="$previous" hydra.run.dir="$RUN/evaluate" logger=none \
  "evaluation.questions.source=\${tonetune.resources:}/questions/${QUESTION_SET}_held_out.jsonl" \
  "+evaluation.questions.extra.test_split=$DATA/$PERSONA"
took evaluate

printf '\nPipeline finished in %ds. Report: %s/evaluate/report.md\n' "$SECONDS" "$RUN"
