"""The OpenAI Batch API: half the price for large jobs, hours instead of minutes.

The batch id is written next to the cache as soon as the batch exists, so a restarted run
polls the same batch instead of paying for a new one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from tonetune.llm.cache import ResponseCache
from tonetune.llm.client import LLMError, OnResult
from tonetune.llm.requests import ChatRequest, result_from_completion


class OpenAIClient(Protocol):
    """What the Batch API needs of tonetune.llm.openai_api.OpenAIClient (no import: no cycle)."""

    cache: ResponseCache | None
    batch_poll_seconds: float

    @property
    def cache_namespace(self) -> str:
        """The server and model part of each request's cache key."""

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for the SDK client."""

    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        """The chat-completions body for one request."""


log = logging.getLogger(__name__)

ENDPOINT = "/v1/chat/completions"
FINAL = {"completed", "failed", "expired", "cancelled"}


def run_batch(client: OpenAIClient, requests: list[ChatRequest], store: OnResult, desc: str) -> None:
    """Submit ``requests`` as one batch (or resume the one already submitted), poll, store results."""
    from openai import OpenAI

    api = OpenAI(**client.client_options())
    keys = [r.key(client.cache_namespace) for r in requests]
    state_path = _state_path(client, keys)
    batch_id = _read_state(state_path) or _submit(api, client, requests, keys, state_path)
    batch = _poll(api, batch_id, len(requests), client.batch_poll_seconds, desc)
    if batch.status != "completed":
        state_path.unlink(missing_ok=True)  # nothing more will come from it: the next run resubmits
        raise LLMError(f"OpenAI batch {batch_id} ended {batch.status}; re-run to submit the missing requests")
    failed = _store_output(api, batch, {key: i for i, key in enumerate(keys)}, store)
    state_path.unlink(missing_ok=True)
    if failed:
        raise LLMError(
            f"{failed} requests of batch {batch_id} failed; the others are cached: re-run to resume"
        )


def _state_path(client: OpenAIClient, keys: list[str]) -> Path:
    job = hashlib.sha256("".join(sorted(keys)).encode()).hexdigest()[:16]
    folder = client.cache.path.parent if client.cache is not None else Path(".")
    return folder / f"batch-{job}.json"


def _read_state(path: Path) -> str | None:
    if not path.is_file():
        return None
    batch_id = json.loads(path.read_text())["batch_id"]
    log.info("Resuming OpenAI batch %s (from %s)", batch_id, path)
    return batch_id


def _submit(api, client: OpenAIClient, requests: list[ChatRequest], keys: list[str], state: Path) -> str:
    lines = [
        json.dumps(
            {"custom_id": key, "method": "POST", "url": ENDPOINT, "body": client.request_body(request)}
        )
        for key, request in zip(keys, requests, strict=True)
    ]
    upload = api.files.create(file=("requests.jsonl", "\n".join(lines).encode()), purpose="batch")
    batch = api.batches.create(input_file_id=upload.id, endpoint=ENDPOINT, completion_window="24h")
    staging = state.with_suffix(".tmp")
    staging.write_text(
        json.dumps({"batch_id": batch.id, "input_file_id": upload.id, "requests": len(requests)})
    )
    os.replace(staging, state)
    log.info("Submitted OpenAI batch %s with %d requests", batch.id, len(requests))
    return batch.id


def _poll(api, batch_id: str, total: int, every: float, desc: str):
    with tqdm(total=total, desc=f"{desc} (batch)", unit="req") as progress:
        while True:
            batch = api.batches.retrieve(batch_id)
            counts = batch.request_counts
            done = (counts.completed + counts.failed) if counts else 0
            progress.update(done - progress.n)
            if batch.status in FINAL:
                return batch
            time.sleep(every)


def _store_output(api, batch, index_of: dict[str, int], store: OnResult) -> int:
    from openai.types.chat import ChatCompletion

    failed = 0
    if batch.output_file_id:
        for line in api.files.content(batch.output_file_id).text.splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            response = record.get("response") or {}
            if record["custom_id"] in index_of and response.get("status_code") == 200:
                completion = ChatCompletion.model_validate(response["body"])
                store(index_of[record["custom_id"]], result_from_completion(completion))
            else:
                failed += 1
    if batch.error_file_id:
        failed += sum(1 for line in api.files.content(batch.error_file_id).text.splitlines() if line.strip())
    return failed
