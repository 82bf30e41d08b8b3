"""Export: merged Hugging Face folder, GGUF that reads back with the same logits, or a clear refusal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGUFReader
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from tests.conftest import compose_config
from tonetune.config import CONFIG_DIR
from tonetune.generation.engine import Engine
from tonetune.generation.sampling import Sampling
from tonetune.models.embedded import embedded_model_dir
from tonetune.models.runs import load_run_model, read_run
from tonetune.schemas.commands import GGUFSettings
from tonetune.serving.export import export_run
from tonetune.serving.gguf_export import GGUFExportError, llama3_rope_factors, write_gguf
from tonetune.training.train import train

PROMPT = [{"role": "user", "content": "Tell me about rockets."}]
TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_run")
    cfg = compose_config(
        "train",
        [
            "base_model=tiny",
            "data=example",
            "logger=none",
            "trainer.max_epochs=1",
            "optimizer.lr=1e-2",
            "trainer.enable_progress_bar=false",
            f"paths.output_dir={root}",
        ],
    )
    train(cfg)
    return root


def greedy_ids(model, tokenizer, n: int = 16) -> list[list[int]]:
    """Greedy continuations that may not stop early (an undertrained model can end at once)."""
    enc = tokenizer.apply_chat_template(
        [PROMPT], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
    return out[:, enc["input_ids"].shape[1] :].tolist()


def test_export_merges_checks_and_writes_hf_and_gguf(tiny_run, tmp_path) -> None:
    out = tmp_path / "export"
    result = export_run(tiny_run, out, ["Hi?", "Why rockets?"], 8, GGUFSettings(dtype="f32"))
    adapter_model, tokenizer = load_run_model(read_run(tiny_run), keep_quantized=False)
    merged = AutoModelForCausalLM.from_pretrained(out / "hf")
    assert greedy_ids(merged, tokenizer) == greedy_ids(adapter_model, tokenizer)
    card = (out / "hf" / "README.md").read_text()
    assert "Elon Musk on Twitter" in card and "r=16, alpha=32" in card
    assert AutoTokenizer.from_pretrained(out / "hf").chat_template == tokenizer.chat_template

    from_gguf = AutoModelForCausalLM.from_pretrained(out / "gguf", gguf_file="model.gguf")
    ids = torch.tensor([[1, 20, 300, 4000, 2]])
    with torch.no_grad():
        assert torch.allclose(from_gguf(ids).logits, merged(ids).logits, atol=1e-4)
    gguf_tokenizer = AutoTokenizer.from_pretrained(out / "gguf", gguf_file="model.gguf")
    assert gguf_tokenizer("Rockets! 🚀 #Mars")["input_ids"] == tokenizer("Rockets! 🚀 #Mars")["input_ids"]
    assert greedy_ids(from_gguf, gguf_tokenizer) == greedy_ids(merged, tokenizer)
    modelfile = (out / "gguf" / "Modelfile").read_text()
    assert modelfile.startswith("FROM ./model.gguf") and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert json.loads((out / "export.json").read_text())["gguf"] == result["gguf"]


def sentencepiece_like_tokenizer() -> PreTrainedTokenizerFast:
    """A Mistral-v0.3-style vocabulary: BPE with byte fallback and a metaspace, not byte-level."""
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "▁": 3, "a": 4, "b": 5, "▁a": 6}
    core = Tokenizer(models.BPE(vocab, [("▁", "a")], unk_token="<unk>", byte_fallback=True))
    core.pre_tokenizer = pre_tokenizers.Metaspace()
    core.decoder = decoders.Metaspace()
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="</s>", bos_token="<s>")


# Each base model option as a tiny model with its family's features: (architecture overrides, whether
# its real tokenizer is byte-level BPE, what the export must do).
FAMILIES = {
    "tiny": ({"model_type": "llama", "tie_word_embeddings": True}, True, "writes"),
    "smollm2_135m": ({"model_type": "llama", "tie_word_embeddings": True}, True, "writes"),
    "smollm2_360m": ({"model_type": "llama", "tie_word_embeddings": True}, True, "writes"),
    "smollm2_1.7b": ({"model_type": "llama", "tie_word_embeddings": True}, True, "writes"),
    "llama3.2_1b": (
        {
            "model_type": "llama",
            "tie_word_embeddings": True,
            "rope_theta": 500000.0,
            "max_position_embeddings": 16384,
            "rope_scaling": {
                "rope_type": "llama3",
                "factor": 32.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
            },
        },
        True,
        "writes",
    ),
    "llama3.2_3b": (
        {
            "model_type": "llama",
            "tie_word_embeddings": True,
            "rope_theta": 500000.0,
            "max_position_embeddings": 16384,
            "rope_scaling": {
                "rope_type": "llama3",
                "factor": 32.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
            },
        },
        True,
        "writes",
    ),
    "qwen2.5_0.5b": ({"model_type": "qwen2", "tie_word_embeddings": True}, True, "writes"),
    "qwen2.5_1.5b": ({"model_type": "qwen2", "tie_word_embeddings": True}, True, "writes"),
    "mistral_7b": ({"model_type": "mistral", "sliding_window": None}, False, "refuses: byte-level BPE"),
    "phi3.5_mini": ({"model_type": "phi3"}, True, "refuses: not 'phi3'"),
}


def test_every_base_model_option_has_a_family() -> None:
    assert set(FAMILIES) == {p.stem for p in (CONFIG_DIR / "base_model").glob("*.yaml")}


def tiny_family_model(arch: dict) -> AutoModelForCausalLM:
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    config = AutoConfig.for_model(**{**TINY, "vocab_size": len(tokenizer), **arch})
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.mark.parametrize("option", sorted(FAMILIES))
def test_gguf_export_writes_or_refuses_every_base_model_option(option, tmp_path) -> None:
    arch, byte_level, expected = FAMILIES[option]
    model = tiny_family_model(arch)
    tokenizer = (
        AutoTokenizer.from_pretrained(embedded_model_dir()) if byte_level else sentencepiece_like_tokenizer()
    )
    hf_dir = tmp_path / "hf"
    model.save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    if expected.startswith("refuses"):
        with pytest.raises(GGUFExportError, match=expected.split(": ", 1)[1] + ".*convert_hf_to_gguf"):
            write_gguf(model, tokenizer, hf_dir, tmp_path / "m.gguf", "f32")
        return
    path = write_gguf(model, tokenizer, hf_dir, tmp_path / "m.gguf", "f32")
    tensors = {t.name: t for t in GGUFReader(path).tensors}
    rope = arch.get("rope_scaling")
    if rope:  # llama.cpp reads Llama 3's scaling from rope_freqs: equal to transformers' own scaling
        scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](model.config, "cpu")
        dim = TINY["hidden_size"] // TINY["num_attention_heads"]
        plain = 1.0 / (arch["rope_theta"] ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
        assert np.allclose(np.array(tensors["rope_freqs.weight"].data), plain / scaled.numpy(), rtol=1e-5)
        assert np.allclose(llama3_rope_factors(model.config), plain / scaled.numpy(), rtol=1e-5)
        return
    assert "rope_freqs.weight" not in tensors
    reread = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf")
    ids = torch.tensor([[1, 20, 300, 4000, 2]])
    with torch.no_grad():
        assert torch.allclose(reread(ids).logits, model(ids).logits, atol=1e-4)


def test_sliding_window_attention_is_refused(tmp_path) -> None:
    model = tiny_family_model({"model_type": "mistral", "sliding_window": 16})
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    with pytest.raises(GGUFExportError, match="sliding-window"):
        write_gguf(model, tokenizer, tmp_path, tmp_path / "m.gguf")


def test_export_of_an_unsupported_architecture_refuses_before_merging(make_train_cfg, tmp_path) -> None:
    _, objects = train(
        make_train_cfg(
            "base_model.tiny_config.model_type=phi3",
            "base_model.target_modules=[qkv_proj,o_proj,gate_up_proj,down_proj]",
            "debug=fdr",
        )
    )
    with pytest.raises(GGUFExportError, match="not 'phi3'"):
        export_run(Path(objects["run_dir"]), tmp_path / "export", ["Hi?"], 4, GGUFSettings())
    assert not (tmp_path / "export" / "hf").exists()  # nothing half-written


@pytest.mark.slow
def test_embedded_merge_and_gguf_give_the_same_greedy_answer(make_train_cfg, tmp_path) -> None:
    _, objects = train(
        make_train_cfg("base_model=smollm2_135m", "data=example", "trainer.max_epochs=1", "optimizer.lr=1e-3")
    )
    run_dir = Path(objects["run_dir"])
    result = export_run(run_dir, tmp_path / "export", ["What do you think about Mars?"], 24, GGUFSettings())
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "export" / "gguf", gguf_file="model.gguf")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "export" / "gguf", gguf_file="model.gguf")
    answer = (
        Engine(model, tokenizer)
        .chat(
            [[{"role": "user", "content": "What do you think about Mars?"}]],
            Sampling(max_new_tokens=24),
            progress=False,
        )[0]
        .text
    )
    assert answer == result["check_answers"][0] and len(answer.split()) > 2


def test_the_model_card_shows_the_metrics_the_registry_puts_on_cards(tiny_run, tmp_path) -> None:
    from tonetune.evaluation.registry import names
    from tonetune.serving.export import model_card

    folder = tiny_run / "evaluation"
    folder.mkdir(exist_ok=True)
    metrics = {"finetuned": {"tone_classifier": 0.9, "mean_words": 12.0, "not_on_cards": 0.5}}
    evaluation = {"context": {"card_metrics": names(card=True)}, "metrics": metrics, "intervals": {}}
    (folder / "metrics.json").write_text(json.dumps(evaluation))
    try:
        card = model_card(read_run(tiny_run))
    finally:
        (folder / "metrics.json").unlink()
    assert "tone_classifier" in card and "not_on_cards" not in card
