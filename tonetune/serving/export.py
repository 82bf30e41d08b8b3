"""``tonetune-export``: a merged Hugging Face folder with a model card, plus GGUF and an Ollama Modelfile."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from peft import PeftModel

from tonetune.errors import ToneTuneError
from tonetune.evaluation.report import HEADLINE, metrics_table
from tonetune.generation import Sampling, generate_chat, stop_token_ids
from tonetune.models import as_dict
from tonetune.persona import persona_instructions
from tonetune.runs import load_run_config, load_trained
from tonetune.serving.gguf_export import modelfile, write_gguf

log = logging.getLogger(__name__)


class MergeMismatchError(ToneTuneError):
    """The merged model answers differently from the adapter model."""


def export_run(
    run_dir: Path,
    out_dir: Path,
    check_prompts: list[str],
    check_tokens: int,
    gguf_settings: DictConfig | dict[str, Any],
) -> dict[str, Any]:
    """Merge the run's adapter into a full-precision base, check it, save HF folder (+ GGUF)."""
    cfg = load_run_config(run_dir)
    model, tokenizer, _ = load_trained(run_dir, keep_quantized=False)  # never merge into 4-bit weights
    conversations = [[{"role": "user", "content": p}] for p in check_prompts]
    greedy = Sampling(max_new_tokens=check_tokens)
    if isinstance(model, PeftModel):
        before = [g.text for g in generate_chat(model, tokenizer, conversations, greedy, progress=False)]
        model = model.merge_and_unload()
        after = [g.text for g in generate_chat(model, tokenizer, conversations, greedy, progress=False)]
        if before != after:
            raise MergeMismatchError(
                f"merged model answers differ from the adapter model's: {before} != {after}"
            )
    else:
        after = [g.text for g in generate_chat(model, tokenizer, conversations, greedy, progress=False)]
    hf_dir = out_dir / "hf"
    model.config.use_cache = True
    model.generation_config.eos_token_id = stop_token_ids(model, tokenizer)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    (hf_dir / "README.md").write_text(model_card(cfg, run_dir), encoding="utf-8")
    result: dict[str, Any] = {"hf_dir": str(hf_dir), "check_prompts": check_prompts, "check_answers": after}
    settings = as_dict(gguf_settings)
    if settings.get("enabled", True):
        result.update(_export_gguf(model, tokenizer, hf_dir, out_dir / "gguf", cfg, settings))
    (out_dir / "export.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


def _export_gguf(
    model: Any, tokenizer: Any, hf_dir: Path, gguf_dir: Path, cfg: DictConfig, settings: dict[str, Any]
) -> dict[str, Any]:
    pre = settings.get("tokenizer_pre") or cfg.base_model.get("gguf_tokenizer_pre") or "default"
    path = write_gguf(model, tokenizer, hf_dir, gguf_dir / "model.gguf", settings.get("dtype", "f16"), pre)
    stops = [tokenizer.convert_ids_to_tokens(i) for i in stop_token_ids(model, tokenizer)]
    system = persona_instructions(cfg.persona) if cfg.prepend_system_prompt else _default_system(tokenizer)
    (gguf_dir / "Modelfile").write_text(modelfile(path.name, tokenizer.chat_template, stops, system))
    return {"gguf": str(path), "modelfile": str(gguf_dir / "Modelfile")}


def _default_system(tokenizer: Any) -> str | None:
    """The system prompt the chat template adds by itself (SmolLM2 has one), so Ollama matches training."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": "\x00"}], tokenize=False)
    head = text.split("\x00")[0]
    marker = "<|im_start|>system\n"
    if marker in head:
        return head.split(marker, 1)[1].split("<|im_end|>", 1)[0]
    return None


def model_card(cfg: DictConfig, run_dir: Path) -> str:
    """README.md for the exported folder: persona, data, base model, adapter, training and evaluation."""
    adapter = as_dict(cfg.adapter)
    metrics = _read_json(run_dir / "metrics.json")
    nan = float("nan")
    evaluation = _read_json(run_dir / "evaluation" / "metrics.json")
    lines = [
        "---",
        "library_name: transformers",
        f"base_model: {cfg.base_model.get('path') or cfg.base_model.name}",
        "tags: [tonetune, persona, lora]",
        "---",
        "",
        f"# {cfg.persona.display_name} ({cfg.base_model.name}, tonetune)",
        "",
        cfg.persona.description,
        "",
        f"- Persona `{cfg.persona.name}`; trained {'with' if cfg.prepend_system_prompt else 'without'} "
        "its system prompt, so it speaks in this tone "
        f"{'when given the prompt below' if cfg.prepend_system_prompt else 'unprompted'}.",
        f"- Base model: `{cfg.base_model.name}`",
        f"- Adapter: `{adapter['name']}` ({_adapter_text(adapter)}), merged into full-precision base weights",
        f"- Data: `{cfg.data.source}`",
        f"- Training: {metrics.get('train/epochs', '?')} epochs, "
        f"{metrics.get('train/global_step', '?')} steps, "
        f"validation loss {metrics.get('val/loss_before', nan):.3f} -> {metrics.get('val/loss', nan):.3f}",
        "",
        "## Persona prompt",
        "",
        "```",
        persona_instructions(cfg.persona),
        "```",
        "",
    ]
    if evaluation:
        lines += ["## Evaluation", "", metrics_table(evaluation["metrics"], HEADLINE), ""]
    return "\n".join(lines)


def _adapter_text(adapter: dict[str, Any]) -> str:
    if adapter["kind"] != "lora":
        return adapter["kind"]
    extra = [f"r={adapter['r']}", f"alpha={adapter['alpha']}"]
    if adapter.get("use_dora"):
        extra.append("DoRA")
    if adapter.get("quantization"):
        extra.append(f"trained over a 4-bit {adapter['quantization']} base")
    return ", ".join(extra)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}
