"""Admission control for container starts: a burst comes up in turns. No I/O.

Fifty servers started at once on a small host all compete for its CPUs:
each needs a few CPU-seconds to come up, so all of them come up late
together and JupyterHub's ``http_timeout`` (30 s) ends most spawns. The
gate lets ``slots`` starts run at once (creating the container until Jupyter
answers); the others wait their turn, in order, and see their place. The
wait counts against ``start_timeout``, never against ``http_timeout``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import asynccontextmanager

from .allocator import ServerKey
from .waiting_line import WaitingLine

# A ticket re-reads its place at least this often (a start's slot frees it).
RECHECK_SECONDS = 5.0


class StartGate:
    def __init__(self, slots: int):
        self.slots = slots
        self.line = WaitingLine()
        self.running = 0

    @asynccontextmanager
    async def slot(self, key: ServerKey, on_wait: Callable[[int], None]):
        """Hold one of the slots while the body runs; ``on_wait(place)`` while waiting."""
        if self.running >= self.slots or len(self.line):
            ticket = self.line.join(key)
            try:
                while (place := self.line.position(ticket)) > self.slots - self.running:
                    on_wait(place)
                    await ticket.wait(RECHECK_SECONDS)
            finally:
                self.line.leave(ticket)
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self.line.changed()
