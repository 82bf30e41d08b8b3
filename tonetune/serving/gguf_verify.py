"""``tonetune-export verify=true``: does llama.cpp answer like the merged Hugging Face model?

llama.cpp (through ``llama-cpp-python``, an optional extra: ``pip install 'tonetune[gguf]'``, which
builds from source) loads the GGUF; both sides decode the same prompt tokens greedily and the
answers are compared. f16 weights may make a long answer drift late; f32 should agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tonetune.errors import ConfigError
from tonetune.generation.engine import Engine, stop_token_ids
from tonetune.generation.sampling import Sampling
from tonetune.persona import single_turn


@dataclass
class Agreement:
    """Greedy answers of both sides, prompt by prompt, and whether the GGUF vocabulary tokenizes alike."""

    prompts: list[str]
    hf_answers: list[str]
    gguf_answers: list[str]
    same_tokens: bool

    @property
    def matches(self) -> int:
        """Prompts answered identically."""
        return sum(a == b for a, b in zip(self.hf_answers, self.gguf_answers, strict=True))

    def summary(self) -> str:
        """One line per prompt that differs, then the agreement."""
        lines = [
            f"differs on {p!r}:\n  hf:   {a}\n  gguf: {b}"
            for p, a, b in zip(self.prompts, self.hf_answers, self.gguf_answers, strict=True)
            if a != b
        ]
        tokens = "same" if self.same_tokens else "DIFFERENT"
        lines.append(
            f"GGUF vs merged model: {self.matches}/{len(self.prompts)} greedy answers identical; "
            f"{tokens} prompt tokens"
        )
        return "\n".join(lines)


def require_llama_cpp() -> None:
    """Fail at once, naming the extra, when llama-cpp-python is missing."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as err:
        raise ConfigError(
            "verify=true needs llama-cpp-python: pip install 'tonetune[gguf]' "
            "(it builds llama.cpp from source)"
        ) from err


def verify_gguf(hf_dir: Path, gguf_path: Path, prompts: list[str], max_tokens: int) -> Agreement:
    """Decode ``prompts`` greedily with the merged model and with llama.cpp on the GGUF; compare."""
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    engine = Engine(AutoModelForCausalLM.from_pretrained(hf_dir), tokenizer)  # as saved: exact answers
    conversations = [single_turn(p) for p in prompts]
    hf = [c.text for c in engine.chat(conversations, Sampling(max_new_tokens=max_tokens), progress=False)]
    llm = Llama(model_path=str(gguf_path), n_ctx=engine.max_context, verbose=False)
    stops = set(stop_token_ids(engine.model, tokenizer))
    answers, same_tokens = [], True
    for conversation in conversations:
        ids = list(engine.encode(conversation))
        text = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        same_tokens &= llm.tokenize(text.encode(), add_bos=False, special=True) == ids
        generated = []
        for token in llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
            if token in stops or len(generated) >= max_tokens:
                break
            generated.append(token)
        answers.append(tokenizer.decode(generated, skip_special_tokens=True).strip())
    return Agreement(prompts, hf, answers, same_tokens)
