"""What a start tells the user while it runs: JupyterHub progress events. No I/O.

The spawn page follows ``GET /hub/api/users/NAME/server/progress``, which
iterates :meth:`GPUDockerSpawner.progress`. Each start keeps its events in a
:class:`ProgressLog`; every page that connects (a reload, a second tab) gets
them all, then each new one as it happens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from .inventory import GPU


class ProgressLog:
    def __init__(self):
        self.events: list[dict] = []
        self._new = asyncio.Event()

    def report(self, message: str, progress: int | None = None) -> None:
        """Add an event (a repeat of the last message is dropped)."""
        if self.events and self.events[-1]["message"] == message:
            return
        event = {"message": message}
        if progress is not None:
            event["progress"] = progress
        self.events.append(event)
        self._new.set()
        self._new = asyncio.Event()

    async def follow(self):
        """Every event so far, then each new one, for as long as the start runs."""
        seen = 0
        while True:
            while seen < len(self.events):
                yield self.events[seen]
                seen += 1
            await self._new.wait()


def minutes(seconds: float) -> str:
    return f"{max(1, round(seconds / 60))} min"


def duration(seconds: float) -> str:
    """ "45 s", "30 min" """
    return f"{round(seconds)} s" if seconds < 90 else minutes(seconds)


def queued(place: int, total: int, requested: int, free: int, next_free_in: float | None) -> str:
    """The queue's event; it always says ``position N``."""
    what = "a GPU" if requested == 1 else f"{requested} GPUs"
    state = f"{total} GPU{'s' if total != 1 else ''}, " + (
        "all in use" if free == 0 else f"{free} free (you asked for more)"
    )
    estimate = f", next expected free in ~{minutes(next_free_in)}" if next_free_in is not None else ""
    return (
        f"Waiting for {what}: position {place} in the queue; {state}{estimate}. "
        "Cancel to leave the queue, or start with 0 GPUs to work without one now."
    )


def waiting_to_start(place: int) -> str:
    return (
        f"Waiting for a turn to start: position {place} among servers starting "
        "(servers start a few at a time so each comes up quickly)"
    )


def assigned(gpus: Sequence[GPU], free: int, total: int) -> str:
    """ "Assigned GPU 2 (NVIDIA H100 80GB), 3 of 8 free" """
    if not gpus:
        return "No GPU asked for: starting a CPU-only server"
    names = sorted({gpu.name for gpu in gpus if gpu.name})
    which = ", ".join(gpu.index for gpu in gpus)
    return (
        f"Assigned GPU{'s' if len(gpus) > 1 else ''} {which}"
        + (f" ({', '.join(names)})" if names else "")
        + f", {free} of {total} free"
    )
