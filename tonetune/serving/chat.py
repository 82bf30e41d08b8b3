"""A terminal chat with a persona model: streamed answers, the conversation kept, /reset and /exit."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from tonetune.generation.engine import GenerationRequest, PromptTooLongError
from tonetune.persona import with_system_prompt
from tonetune.serving.served import Served, ServedModel

HELP = "/reset clears the conversation, /exit (or Ctrl+D) quits."


def chat_loop(
    served: Served,
    model: ServedModel,
    read: Callable[[str], str] = input,
    out: TextIO = sys.stdout,
) -> None:
    """Read a line, stream the answer, repeat; the whole conversation is the model's context.

    Answers decode with ``model.sampling``: the run's own defaults (the evaluation's, repetition
    penalty included) unless the command line changed them.
    """
    engine = served.engine
    history: list[dict[str, str]] = []
    out.write(f"Chatting with {model.id}. {HELP}\n")
    while True:
        try:
            line = read(">>> ").strip()
        except (EOFError, KeyboardInterrupt):
            out.write("\n")
            return
        if not line or line in {"/exit", "/reset"}:
            if line == "/exit":
                return
            if line == "/reset":
                history.clear()
                out.write("(conversation reset)\n")
            continue
        history.append({"role": "user", "content": line})
        try:
            input_ids = engine.encode(with_system_prompt(history, model.system_prompt))
        except PromptTooLongError as err:
            history.pop()
            out.write(f"({err}; /reset to start over)\n")
            continue
        request = GenerationRequest(input_ids, model.sampling, model.adapter)
        answer, used = "", 0
        for deltas in engine.stream([request]):
            for delta in deltas:
                out.write(delta.text)
                out.flush()
                answer += delta.text
                used = delta.completion_tokens
        history.append({"role": "assistant", "content": answer.strip()})
        out.write(f"\n[{len(input_ids) + used} tokens in context]\n")
