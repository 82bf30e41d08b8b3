"""``tonetune-export``: a merged Hugging Face folder with a model card, plus GGUF and an Ollama Modelfile.

The export folder is tonetune's (its manifest ``.tonetune-export.json``): a folder of yours is refused,
and ``overwrite=true`` replaces only tonetune's own entries (``hf``, ``gguf``, ``export.json``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from peft import PeftModel

from tonetune.errors import ToneTuneError
from tonetune.folders import OwnedFolder, check_target, staged
from tonetune.generation.engine import Engine, stop_token_ids
from tonetune.generation.sampling import Sampling
from tonetune.markdown import metrics_table
from tonetune.models.runs import Run, load_run_model, read_run
from tonetune.persona import persona_instructions, single_turn
from tonetune.schemas.commands import GGUFSettings
from tonetune.serving.gguf_export import check_exportable, modelfile, write_gguf

log = logging.getLogger(__name__)


EXPORT = OwnedFolder(
    writer="tonetune-export", option="out_dir", manifest=".tonetune-export.json", what="an export"
)


class MergeMismatchError(ToneTuneError):
    """The merged model answers differently from the adapter model."""


def export_run(
    run_dir: Path,
    out_dir: Path,
    check_prompts: list[str],
    check_tokens: int,
    gguf_settings: GGUFSettings,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Merge the run's adapter into a full-precision base, check it, save HF folder (+ GGUF).

    ``out_dir`` is guarded like a dataset folder (tonetune/folders.py): a folder tonetune did not
    write is refused before the model loads; with ``overwrite`` only tonetune's own entries change.
    """
    check_target(EXPORT, out_dir, overwrite)
    run = read_run(run_dir)
    model, tokenizer = load_run_model(run, keep_quantized=False)  # never merge into 4-bit weights
    if gguf_settings.enabled:
        check_exportable(model.config, tokenizer, out_dir / "hf")  # refuse before the slow part
    model, after = _merge_checked(model, tokenizer, check_prompts, check_tokens)
    model.config.use_cache = True
    model.generation_config.eos_token_id = stop_token_ids(model, tokenizer)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    result: dict[str, Any] = {
        "hf_dir": str(out_dir / "hf"),
        "check_prompts": check_prompts,
        "check_answers": after,
    }
    with staged(EXPORT, out_dir, overwrite) as staging:
        hf_dir = staging / "hf"
        model.save_pretrained(hf_dir)
        tokenizer.save_pretrained(hf_dir)
        (hf_dir / "README.md").write_text(model_card(run), encoding="utf-8")
        if gguf_settings.enabled:
            _export_gguf(model, tokenizer, hf_dir, staging / "gguf", run, gguf_settings)
            result.update(
                gguf=str(out_dir / "gguf" / "model.gguf"), modelfile=str(out_dir / "gguf" / "Modelfile")
            )
        (staging / "export.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


def _merge_checked(
    model: Any, tokenizer: Any, check_prompts: list[str], check_tokens: int
) -> tuple[Any, list[str]]:
    """The merged model and its greedy answers, which must equal the adapter model's."""
    conversations = [single_turn(p) for p in check_prompts]
    greedy = Sampling(max_new_tokens=check_tokens)
    before = None  # decoded as loaded (fp32): these weights are what the export saves
    if isinstance(model, PeftModel):
        before = [c.text for c in Engine(model, tokenizer).chat(conversations, greedy, progress=False)]
        model = model.merge_and_unload()
    after = [c.text for c in Engine(model, tokenizer).chat(conversations, greedy, progress=False)]
    if before is not None and before != after:
        raise MergeMismatchError(f"merged model answers differ from the adapter model's: {before} != {after}")
    return model, after


def _export_gguf(
    model: Any, tokenizer: Any, hf_dir: Path, gguf_dir: Path, run: Run, settings: GGUFSettings
) -> None:
    pre = settings.tokenizer_pre or run.base_model.gguf_tokenizer_pre or "default"
    path = write_gguf(model, tokenizer, hf_dir, gguf_dir / "model.gguf", settings.dtype, pre)
    stops = [tokenizer.convert_ids_to_tokens(i) for i in stop_token_ids(model, tokenizer)]
    system = persona_instructions(run.persona) if run.trained_with_prompt else _default_system(tokenizer)
    (gguf_dir / "Modelfile").write_text(modelfile(path.name, tokenizer.chat_template, stops, system))


def _default_system(tokenizer: Any) -> str | None:
    """The system prompt the chat template adds by itself (SmolLM2 has one), so Ollama matches training."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": "\x00"}], tokenize=False)
    head = text.split("\x00")[0]
    marker = "<|im_start|>system\n"
    if marker in head:
        return head.split(marker, 1)[1].split("<|im_end|>", 1)[0]
    return None


def model_card(run: Run) -> str:
    """README.md for the exported folder: persona, data, base model, adapter, training and evaluation."""
    metrics = _read_json(run.dir / "metrics.json")
    evaluation = _read_json(run.dir / "evaluation" / "metrics.json")
    nan = float("nan")
    lines = [
        "---",
        "library_name: transformers",
        f"base_model: {run.base_model.path or run.base_model.name}",
        "tags: [tonetune, persona, lora]",
        "---",
        "",
        f"# {run.persona.display_name} ({run.base_model.name}, tonetune)",
        "",
        run.persona.description,
        "",
        f"- Persona `{run.persona.name}`; trained {'with' if run.trained_with_prompt else 'without'} its "
        f"system prompt, so it speaks in this tone "
        f"{'when given the prompt below' if run.trained_with_prompt else 'unprompted'}.",
        f"- Base model: `{run.base_model.name}`",
        f"- Adapter: `{run.adapter.name}` ({_adapter_text(run)}), merged into full-precision base weights",
        f"- Data: `{run.data.source}`",
        f"- Training: {metrics.get('train/epochs', '?')} epochs, "
        f"{metrics.get('train/global_step', '?')} steps, "
        f"validation loss {metrics.get('val/loss_before', nan):.3f} -> {metrics.get('val/loss', nan):.3f}",
        "",
        "## Persona prompt",
        "",
        "```",
        persona_instructions(run.persona),
        "```",
        "",
    ]
    if evaluation:
        shown = evaluation.get("context", {}).get("card_metrics")  # the registry's card list; None: all
        table = metrics_table(evaluation["metrics"], shown, evaluation.get("intervals"))
        lines += ["## Evaluation (95% intervals)", "", table, ""]
    return "\n".join(lines)


def _adapter_text(run: Run) -> str:
    adapter = run.adapter
    if adapter.kind.value != "lora":
        return adapter.kind.value
    extra = [f"r={adapter.r}", f"alpha={adapter.alpha}"]
    if adapter.use_dora:
        extra.append("DoRA")
    if adapter.quantization is not None:
        extra.append(f"trained over a 4-bit {adapter.quantization.value} base")
    return ", ".join(extra)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}
