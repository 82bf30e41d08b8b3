"""Request batching for the server: one inference thread, batches grouped by adapter.

Requests arriving within ``batch_timeout`` seconds are decoded together, up to ``max_batch_size``
answers; each keeps its own sampling settings (the engine's rule), so a batch never changes an
answer. A cancelled job (its client left) leaves the batch at the next step; a job one of whose
answers fails (scores not finite) gets an error and leaves it too, while the others go on. If the
whole batch fails, its jobs are retried one by one, so only a request that fails alone gets an error.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from tonetune.generation.engine import Engine, GenerationRequest

log = logging.getLogger(__name__)
NOT_FINITE = "generation failed: the model's scores for this answer were not finite (NaN or infinity)"


@dataclass
class Job:
    """One client request: its answers (``n`` choices) and where their events go."""

    requests: list[GenerationRequest]
    emit: Callable[[tuple], None]
    """Receives ``("delta", choice, Delta)``, then ``("done",)`` or ``("error", message)``
    (the server adds ``("gone",)`` when its client leaves)."""
    cancelled: threading.Event = field(default_factory=threading.Event)
    """Set when the client has gone (or the job failed): its answers stop at the next step."""

    @property
    def adapter(self) -> str | None:
        """The adapter all of its answers use."""
        return self.requests[0].adapter


def asyncio_sink(loop: asyncio.AbstractEventLoop, events: asyncio.Queue) -> Callable[[tuple], None]:
    """An ``emit`` that hands events from the inference thread to an asyncio queue."""
    return lambda event: loop.call_soon_threadsafe(events.put_nowait, event)


class Scheduler:
    """Collects jobs into batches and decodes them on one thread."""

    def __init__(self, engine: Engine, max_batch_size: int = 8, batch_timeout: float = 0.05) -> None:
        self.engine = engine
        self.max_batch_size = max_batch_size
        self.batch_timeout = batch_timeout
        self._jobs: queue.Queue[Job] = queue.Queue()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tonetune-inference", daemon=True)

    def start(self) -> None:
        """Start the inference thread."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the inference thread to stop after its current batch."""
        self._stopped.set()

    def submit(self, job: Job) -> None:
        """Queue a job (thread-safe)."""
        self._jobs.put(job)

    def _loop(self) -> None:
        while not self._stopped.is_set():
            try:
                first = self._jobs.get(timeout=0.1)
            except queue.Empty:
                continue
            for group in self._grouped(self._collect(first)):
                self._run(group)

    def _collect(self, first: Job) -> list[Job]:
        """``first`` and the jobs arriving within the batch timeout, up to the batch size in answers."""
        jobs, size = [first], len(first.requests)
        deadline = time.monotonic() + self.batch_timeout
        while size < self.max_batch_size and (left := deadline - time.monotonic()) > 0:
            try:
                job = self._jobs.get(timeout=left)
            except queue.Empty:
                break
            jobs.append(job)
            size += len(job.requests)
        return [j for j in jobs if not j.cancelled.is_set()]

    @staticmethod
    def _grouped(jobs: list[Job]) -> list[list[Job]]:
        groups: dict[str | None, list[Job]] = defaultdict(list)
        for job in jobs:
            groups[job.adapter].append(job)
        return list(groups.values())

    def _run(self, jobs: list[Job]) -> None:
        started: set[int] = set()
        try:
            self._decode(jobs, started)
        except Exception as err:
            # Jobs that already streamed text end with an error; the others are retried one by one,
            # so a request that cannot be answered fails alone.
            log.warning("A batch of %d requests failed (%s: %s)", len(jobs), type(err).__name__, err)
            for index, job in enumerate(jobs):
                if index in started or len(jobs) == 1:
                    job.emit(("error", f"generation failed: {type(err).__name__}: {err}"))
                else:
                    self._run([job])

    def _decode(self, jobs: list[Job], started: set[int]) -> None:
        owners = [(index, choice) for index, job in enumerate(jobs) for choice in range(len(job.requests))]
        requests = [
            replace(jobs[index].requests[choice], cancelled=jobs[index].cancelled) for index, choice in owners
        ]
        for deltas in self.engine.stream(requests):
            for delta in deltas:
                index, choice = owners[delta.index]
                started.add(index)
                job = jobs[index]
                if job.cancelled.is_set():
                    continue
                if delta.finish_reason == "error":
                    job.cancelled.set()  # its other answers leave the batch too
                    job.emit(("error", NOT_FINITE))
                else:
                    job.emit(("delta", choice, delta))
        for job in jobs:
            job.emit(("done",))
