"""Write a merged model as GGUF (the ``gguf`` package) and an Ollama Modelfile.

Llama-family (Llama, SmolLM2, Mistral) and Qwen2 models with BPE tokenizers can be written;
other architectures get a clear error naming what to use instead.
"""

from __future__ import annotations

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


def write_gguf(
    model: Any, tokenizer: Any, hf_dir: Path, path: Path, dtype: str = "f16", tokenizer_pre: str = "default"
) -> Path:
    """Write ``model`` (merged, full precision) to ``path``; ``hf_dir`` is its saved Hugging Face folder."""
    config = model.config
    arch = ARCHITECTURES.get(config.model_type)
    if arch is None:
        raise GGUFExportError(
            f"GGUF export supports {sorted(ARCHITECTURES)} models, not {config.model_type!r}; convert the "
            f"exported Hugging Face folder {hf_dir} with llama.cpp's convert_hf_to_gguf.py instead"
        )
    if dtype not in FILE_TYPES:
        raise GGUFExportError(f"export.gguf.dtype={dtype!r} is not one of {sorted(FILE_TYPES)}")
    if (
        not getattr(tokenizer, "is_fast", False)
        or tokenizer.backend_tokenizer.model.__class__.__name__ != "BPE"
    ):
        raise GGUFExportError(
            "GGUF export supports byte-level BPE tokenizers only; use llama.cpp's converter"
        )
    file_type, float_type = FILE_TYPES[dtype]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    _write_hyperparameters(writer, config, file_type, hf_dir.name)
    _write_tokenizer(writer, tokenizer, hf_dir, config.vocab_size, tokenizer_pre)
    _write_tensors(writer, model, arch, float_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _write_hyperparameters(writer: gguf.GGUFWriter, config: Any, file_type: Any, name: str) -> None:
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    rope = getattr(config, "rope_parameters", None) or {}
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_rope_dimension_count(head_dim)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0)))
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
