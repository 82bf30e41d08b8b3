"""Write a merged model as GGUF (the ``gguf`` package) and an Ollama Modelfile; right, or refused.

What llama.cpp's own ``convert_hf_to_gguf.py`` writes for the architectures tonetune offers:
Llama-family models (SmolLM2, Llama 3.x, and Mistral with a byte-level BPE tokenizer) with the
rotary permutation of q/k and, for Llama 3's rope scaling, the ``rope_freqs`` factors; Qwen2 with
its q/k/v biases. Anything else (Phi-3, sliding-window attention, other rope types, SentencePiece
vocabularies such as Mistral v0.3's) gets a clear error naming llama.cpp's converter instead.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from tonetune.errors import ToneTuneError

ARCHITECTURES = {
    "llama": gguf.MODEL_ARCH.LLAMA,
    "mistral": gguf.MODEL_ARCH.LLAMA,
    "qwen2": gguf.MODEL_ARCH.QWEN2,
}
FILE_TYPES = {
    "f32": (gguf.LlamaFileType.ALL_F32, np.float32),
    "f16": (gguf.LlamaFileType.MOSTLY_F16, np.float16),
}


class GGUFExportError(ToneTuneError):
    """The model cannot be written as GGUF here."""


def check_exportable(config: Any, tokenizer: Any, hf_dir: Path) -> gguf.MODEL_ARCH:
    """The llama.cpp architecture for ``config``, or a GGUFExportError saying why it cannot be written."""
    converter = f"convert the exported Hugging Face folder {hf_dir} with llama.cpp's convert_hf_to_gguf.py"
    arch = ARCHITECTURES.get(config.model_type)
    if arch is None:
        raise GGUFExportError(
            f"GGUF export supports {sorted(ARCHITECTURES)} models, not {config.model_type!r}; {converter}"
        )
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        raise GGUFExportError(f"GGUF export does not write sliding-window attention; {converter}")
    rope_type = rope_parameters(config).get("rope_type", "default")
    if rope_type not in {"default", "llama3", "linear"} or (
        rope_type == "llama3" and arch != gguf.MODEL_ARCH.LLAMA
    ):
        raise GGUFExportError(f"GGUF export does not write rope type {rope_type!r}; {converter}")
    if not _byte_level_bpe(tokenizer):
        raise GGUFExportError(
            f"GGUF export writes byte-level BPE vocabularies only (not this tokenizer's); {converter}"
        )
    return arch


def write_gguf(
    model: Any, tokenizer: Any, hf_dir: Path, path: Path, dtype: str = "f16", tokenizer_pre: str = "default"
) -> Path:
    """Write ``model`` (merged, full precision) to ``path``; ``hf_dir`` is its saved Hugging Face folder."""
    arch = check_exportable(model.config, tokenizer, hf_dir)
    if dtype not in FILE_TYPES:
        raise GGUFExportError(f"export.gguf.dtype={dtype!r} is not one of {sorted(FILE_TYPES)}")
    file_type, float_type = FILE_TYPES[dtype]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    _write_hyperparameters(writer, model.config, file_type, hf_dir.name)
    _write_tokenizer(writer, tokenizer, hf_dir, model.config.vocab_size, tokenizer_pre)
    _write_tensors(writer, model, arch, float_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def rope_parameters(config: Any) -> dict[str, Any]:
    """Rotary settings: transformers 5's ``rope_parameters``, or older ``rope_scaling``/``rope_theta``."""
    params = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    params.setdefault("rope_theta", getattr(config, "rope_theta", 10000.0))
    params["rope_type"] = params.get("rope_type") or params.get("type") or "default"
    return params


def llama3_rope_factors(config: Any) -> np.ndarray:
    """Llama 3's per-frequency rope scaling factors, as llama.cpp reads them from ``rope_freqs``."""
    rope = rope_parameters(config)
    dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    freqs = 1.0 / (rope["rope_theta"] ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factor, low, high = (
        rope.get("factor", 8.0),
        rope.get("low_freq_factor", 1.0),
        rope.get("high_freq_factor", 4.0),
    )
    old_context = rope.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old_context / low, old_context / high
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


def _byte_level_bpe(tokenizer: Any) -> bool:
    if not getattr(tokenizer, "is_fast", False):
        return False
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    return spec.get("model", {}).get("type") == "BPE" and "ByteLevel" in json.dumps(spec.get("decoder"))


def _write_hyperparameters(writer: gguf.GGUFWriter, config: Any, file_type: Any, name: str) -> None:
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    rope = rope_parameters(config)
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_rope_dimension_count(head_dim)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(rope["rope_theta"])
    if rope["rope_type"] == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(rope["factor"])
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(file_type)


def _write_tokenizer(
    writer: gguf.GGUFWriter, tokenizer: Any, hf_dir: Path, vocab_size: int, pre: str
) -> None:
    """Byte-level BPE vocabulary as llama.cpp expects it; merges, special ids and chat template too."""
    by_id = {i: token for token, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    gguf.SpecialVocab(hf_dir, load_merges=True, n_vocab=len(tokens)).add_to_gguf(writer)


def _permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's rotary layout for q/k projections (transformers undoes it when it reads GGUF)."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _write_tensors(writer: gguf.GGUFWriter, model: Any, arch: Any, float_type: Any) -> None:
    config = model.config
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    tied = getattr(config, "tie_word_embeddings", False)
    if rope_parameters(config)["rope_type"] == "llama3":
        rope_freqs = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight"
        writer.add_tensor(rope_freqs, llama3_rope_factors(config))
    for name, tensor in model.state_dict().items():
        if tied and name == "lm_head.weight":
            continue
        data = tensor.detach().float().cpu().numpy()
        if arch == gguf.MODEL_ARCH.LLAMA and name.endswith("q_proj.weight"):
            data = _permute(data, config.num_attention_heads)
        elif arch == gguf.MODEL_ARCH.LLAMA and name.endswith("k_proj.weight"):
            data = _permute(data, config.num_key_value_heads)
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise GGUFExportError(f"no GGUF name for tensor {name!r} of a {config.model_type} model")
        writer.add_tensor(gguf_name, data.astype(float_type) if data.ndim > 1 else data)


def modelfile(gguf_name: str, chat_template: str, stop_tokens: list[str], system_prompt: str | None) -> str:
    """An Ollama Modelfile with the model's chat format and stop tokens (ChatML or Llama 3)."""
    if "<|im_start|>" in chat_template:
        template = (
            "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
            "{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
            "<|im_start|>assistant\n"
        )
    elif "<|start_header_id|>" in chat_template:
        template = (
            "<|begin_of_text|>{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n"
            "{{ .System }}<|eot_id|>{{ end }}{{ range .Messages }}<|start_header_id|>{{ .Role }}"
            "<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}"
            "<|start_header_id|>assistant<|end_header_id|>\n\n"
        )
    else:
        raise GGUFExportError(
            "cannot write an Ollama TEMPLATE for this chat template (ChatML and Llama 3 only)"
        )
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{template}"""']
    lines += [f'PARAMETER stop "{token}"' for token in stop_tokens]
    if system_prompt:
        lines.append(f'SYSTEM """{system_prompt}"""')
    return "\n".join(lines) + "\n"
