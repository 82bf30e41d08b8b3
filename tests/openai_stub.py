"""A scripted OpenAI-compatible HTTP server on 127.0.0.1: deterministic replies, injected faults, counts.

It speaks the real protocol (chat completions, files, batches) so tests drive the real ``openai``
client. Replies are a pure function of the request, so two runs give identical datasets.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse

from tonetune.synthesis.questions import JSON_INSTRUCTIONS, LIST_INSTRUCTIONS

REFUSAL = "As an AI language model, I cannot share opinions on that."
SHY_ANSWER = "I would rather keep my opinion on that to myself for now."
NEAR_DUPLICATES = [
    "Would you swap lives with a cartoon character?",
    "Would you switch lives with a cartoon character?",
]


def digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


POOLS = {
    "controversial": [
        "Should billionaires exist at all?",
        "Is social media bad for democracy?",
        "Will AI take most jobs?",
        "Should voting be mandatory?",
        "Is nuclear power the answer to climate change?",
        "Should schools ban smartphones?",
        "Is remote work killing city centres?",
        "Should the rich pay more tax?",
        "Are electric cars really greener?",
        "Should space be privatised?",
        "Is cancel culture out of control?",
        "Should drugs be decriminalised?",
    ],
    "tech": [
        "How do you pick which startup idea to pursue?",
        "What is the hardest engineering problem you solved?",
        "How do you hire your first ten employees?",
        "When should a founder raise venture capital?",
        "How do you handle a product launch that fails?",
        "Which programming language do you use most?",
        "How do you keep a large team moving fast?",
        "What metric matters most in year one?",
        "How do you deal with burnout as a CEO?",
        "Would you build hardware or software today?",
        "How do you negotiate with investors?",
        "What book shaped how you run companies?",
    ],
    "funny": [
        "What is in your fridge right now?",
        "Which cartoon character would you date?",
        "What is your karaoke song?",
        "Pineapple on pizza: yes or no?",
        "What would your pet alien be called?",
        "What is your most embarrassing dance move?",
        "Which emoji describes your morning?",
        "What would you name a rocket made of cheese?",
        "Do you talk to your houseplants?",
        "What is the worst haircut you ever had?",
        "Which superpower would be most useless?",
        "What snack do you hide from your kids?",
    ],
    "hilarious": [
        "Would you fight a horse-sized duck?",
        "What if your dog ran your company for a day?",
        "Could you beat a kangaroo at boxing?",
        "What would you do if you woke up as a cat?",
        "Which dinosaur would make the best CEO?",
        "What would a toaster tweet?",
        "How would you survive a zombie apocalypse at the office?",
        "What if gravity switched off for an hour?",
        "Which vegetable would you be and why?",
        "What would you say to a robot uprising?",
        "How many penguins could you fit in a Tesla?",
        "What if your car refused to drive on Mondays?",
    ],
}


def question_list(prompt: str) -> list[str]:
    """A prompt's share of its category's pool: a planted exact duplicate and a near-duplicate pair in
    the first round, further pool questions in later ("new questions") rounds."""
    n = int(re.search(r"\b(\d+)\b", prompt).group(1))
    words = ("controversial", "funny", "hilarious", "tech")  # "tech" last: the funny prompts mention it too
    pool = POOLS[next((w for w in words if w in prompt.lower()), "funny")]
    if "new questions" in prompt:
        return pool[n - 2 : 2 * n - 2]
    distinct = pool[: n - 2]
    return [*distinct, distinct[0], *NEAR_DUPLICATES]


def persona_answer(question: str, seed: int) -> str:
    """A tweet-like answer; questions mentioning 'refuse' get a refusal, 'ramble' an overlong answer,
    'shy' a plain answer (no markers) on a question's first attempt only."""
    if "refuse" in question:
        return REFUSAL
    if "shy" in question and seed % 1000 == 0:
        return SHY_ANSWER
    if "ramble" in question:
        return " ".join(["rockets"] * 120) + " 🚀 #TooLong"
    words = question.rstrip("?").split()[-3:]
    tag = digest(question)[:3]
    return f"Honestly {' '.join(words)} is easy once you are on Mars (take {seed}) 🚀 #Mars{tag}"


def follow_up(transcript: str, seed: int) -> str:
    """The user's next message: refers to the last answer (its hashtag), varied by seed."""
    tag = re.findall(r"#\w+", transcript)[-1] if "#" in transcript else "that"
    return [
        "Why do you say " + tag + "?",
        "Can you give an example of " + tag + "?",
        "I disagree with " + tag + ".",
    ][seed % 3]


def reply_for(body: dict[str, Any]) -> str:
    messages = body["messages"]
    if messages[0]["content"].startswith("You write the next message of a person"):
        return follow_up(messages[-1]["content"], body.get("seed", 0))
    if messages[0]["content"] in (JSON_INSTRUCTIONS, LIST_INSTRUCTIONS):
        questions = question_list(messages[-1]["content"])
        if body.get("response_format", {}).get("type") == "json_object":
            return json.dumps({"questions": questions})
        return "\n".join(f"{i + 1}. {q}" for i, q in enumerate(questions))
    return persona_answer(messages[-1]["content"], body.get("seed", 0))


def completion(
    body: dict[str, Any], script: Callable[[dict[str, Any]], str | None] | None = None
) -> dict[str, Any]:
    scripted = script(body) if script else None
    text = scripted if scripted is not None else reply_for(body)
    prompt_tokens = len(json.dumps(body["messages"])) // 4
    return {
        "id": f"chatcmpl-{digest(body)[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(text.split()),
            "total_tokens": prompt_tokens + len(text.split()),
        },
    }


@dataclass
class StubOpenAI:
    """Server state; ``fault_rate`` of first and second attempts fail (429, 500 or a stall)."""

    fault_rate: float = 0.0
    latency: float = 0.0
    stall_seconds: float = 3.0
    api_key: str | None = None
    batch_polls: int = 3
    phase: int = 1
    log: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen_authorization: set[str] = field(default_factory=set)
    script: Callable[[dict[str, Any]], str | None] | None = None
    """Tests' own replies: return a string to answer a request, None to fall back to the defaults."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.app = self._build_app()

    # -- what tests inspect -------------------------------------------------------------
    def chat_requests(self, phase: int | None = None) -> list[dict[str, Any]]:
        return [e for e in self.log if e["kind"] == "chat" and (phase is None or e["phase"] == phase)]

    def faults(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.chat_requests():
            if entry["outcome"] != "ok":
                counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
        return counts

    # -- the protocol ---------------------------------------------------------------------
    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Any:
            if (denied := self._check_key(request)) is not None:
                return denied
            body = await request.json()
            key = digest(body["messages"], body.get("seed"), body.get("temperature"))
            outcome = self._fault(key)
            with self._lock:
                self.log.append({"kind": "chat", "key": key, "phase": self.phase, "outcome": outcome})
            if outcome == "rate_limited":
                return JSONResponse(
                    {"error": {"message": "slow down", "type": "rate_limit"}},
                    status_code=429,
                    headers={"retry-after": "0.05"},
                )
            if outcome == "server_error":
                return JSONResponse({"error": {"message": "boom", "type": "server_error"}}, status_code=500)
            if outcome == "stalled":
                await asyncio.sleep(self.stall_seconds)
            await asyncio.sleep(self.latency)
            return completion(body, self.script)

        @app.post("/v1/files")
        async def upload(file: UploadFile, purpose: str = "batch") -> Any:
            file_id = f"file-{len(self.files)}"
            self.files[file_id] = await file.read()
            return _file_object(file_id, len(self.files[file_id]), purpose)

        @app.get("/v1/files/{file_id}/content")
        async def content(file_id: str) -> Any:
            return PlainTextResponse(self.files[file_id].decode())

        @app.post("/v1/batches")
        async def create_batch(request: Request) -> Any:
            body = await request.json()
            batch_id = f"batch-{len(self.batches)}"
            lines = [
                json.loads(x) for x in self.files[body["input_file_id"]].decode().splitlines() if x.strip()
            ]
            self.batches[batch_id] = {
                "input": body["input_file_id"],
                "polls": self.batch_polls,
                "n": len(lines),
                "status": "in_progress",
                "output": None,
                "requests": digest(sorted(line["custom_id"] for line in lines)),
            }
            with self._lock:
                self.log.append({"kind": "batch_create", "phase": self.phase, "id": batch_id})
            return self._batch_object(batch_id)

        @app.get("/v1/batches/{batch_id}")
        async def get_batch(batch_id: str) -> Any:
            batch = self.batches[batch_id]
            batch["polls"] -= 1
            with self._lock:
                self.log.append({"kind": "batch_poll", "phase": self.phase, "id": batch_id})
            if batch["polls"] <= 0 and batch["status"] != "completed":
                self._finish_batch(batch_id)
            return self._batch_object(batch_id)

        return app

    def _check_key(self, request: Request) -> JSONResponse | None:
        header = request.headers.get("authorization", "")
        self.seen_authorization.add(header)
        if self.api_key and header != f"Bearer {self.api_key}":
            return JSONResponse({"error": {"message": "bad key", "type": "auth"}}, status_code=401)
        return None

    def _fault(self, key: str) -> str:
        with self._lock:
            attempt = sum(1 for e in self.log if e.get("key") == key)
        roll = int(digest(key, attempt)[:8], 16) / 0xFFFFFFFF
        if attempt >= 2 or roll >= self.fault_rate:
            return "ok"
        return ("rate_limited", "server_error", "stalled")[int(roll / self.fault_rate * 3) % 3]

    def _finish_batch(self, batch_id: str) -> None:
        batch = self.batches[batch_id]
        out = []
        for line in self.files[batch["input"]].decode().splitlines():
            if line.strip():
                request = json.loads(line)
                body = {
                    "status_code": 200,
                    "request_id": request["custom_id"],
                    "body": completion(request["body"]),
                }
                out.append(
                    json.dumps(
                        {
                            "id": f"resp-{request['custom_id'][:8]}",
                            "custom_id": request["custom_id"],
                            "response": body,
                            "error": None,
                        }
                    )
                )
        output_id = f"file-{len(self.files)}"
        self.files[output_id] = "\n".join(out).encode()
        batch.update(status="completed", output=output_id)

    def _batch_object(self, batch_id: str) -> dict[str, Any]:
        batch = self.batches[batch_id]
        done = batch["n"] if batch["status"] == "completed" else 0
        return {
            "id": batch_id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": None,
            "input_file_id": batch["input"],
            "completion_window": "24h",
            "status": batch["status"],
            "output_file_id": batch["output"],
            "error_file_id": None,
            "created_at": int(time.time()),
            "request_counts": {"total": batch["n"], "completed": done, "failed": 0},
        }

    # -- running it -----------------------------------------------------------------------
    def start(self) -> str:
        """Serve on a free port of 127.0.0.1 in a thread; returns the base URL (…/v1)."""
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        while not self._server.started:
            time.sleep(0.01)
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def _file_object(file_id: str, size: int, purpose: str) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": int(time.time()),
        "filename": "requests.jsonl",
        "purpose": purpose,
        "status": "processed",
    }


def main() -> None:
    """Serve the stub in its own process: ``python -m tests.openai_stub --latency 0.5`` prints its URL."""
    import argparse

    parser = argparse.ArgumentParser(description="scripted OpenAI-compatible server")
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    server = StubOpenAI(latency=args.latency)
    print(server.start(), flush=True)
    server._thread.join()


if __name__ == "__main__":
    main()
