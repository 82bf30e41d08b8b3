"""A terminal chat with a persona model: streamed answers, the conversation kept, /reset and /exit."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from tonetune.serving.engine import Engine, PromptTooLongError, Request

HELP = "/reset clears the conversation, /exit (or Ctrl+D) quits."


def chat_loop(
    engine: Engine,
    name: str,
    system_prompt: str | None = None,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    read: Callable[[str], str] = input,
    out: TextIO = sys.stdout,
) -> None:
    """Read a line, stream the answer, repeat; the whole conversation is the model's context."""
    history: list[dict[str, str]] = []
    out.write(f"Chatting with {name}. {HELP}\n")
    while True:
        try:
            line = read(">>> ").strip()
        except (EOFError, KeyboardInterrupt):
            out.write("\n")
            return
        if not line:
            continue
        if line == "/exit":
            return
        if line == "/reset":
            history.clear()
            out.write("(conversation reset)\n")
            continue
        history.append({"role": "user", "content": line})
        prefix = [{"role": "system", "content": system_prompt}] if system_prompt else []
        try:
            input_ids = engine.tokenize(prefix + history)
        except PromptTooLongError as err:
            history.pop()
            out.write(f"({err}; /reset to start over)\n")
            continue
        for deltas in engine.stream([Request(input_ids, max_new_tokens, temperature)]):
            out.write(deltas[0])
            out.flush()
        answer = engine.last[0]
        history.append({"role": "assistant", "content": answer.text})
        out.write(f"\n[{len(input_ids) + len(answer.tokens)} tokens in context]\n")
