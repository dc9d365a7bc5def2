"""A line of waiting starts, in order, with each one's place. No I/O.

Two lines use it (both in :class:`~gpuhub.spawner.pool.GPUPool`): the GPU
queue (starts that found no free GPU) and the start gate (admission control:
at most ``start_concurrency`` containers coming up at once).

Order: higher ``priority`` first; equal priorities first come, first served.
A ticket's ``kind`` says which waiters compete for the same things (the GPU
queue uses (share, model): a start for an A100 never waits behind one for an
H100). Every change wakes every ticket: each then reads its new place.
Runs on the hub's event loop only; nothing here blocks.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Hashable
from dataclasses import dataclass, field

from .allocator import ServerKey


@dataclass(eq=False)
class Ticket:
    key: ServerKey
    kind: Hashable
    priority: int
    order: int
    joined: float = field(default_factory=time.monotonic)  # monotonic seconds
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait(self, timeout: float) -> None:
        """Until the line changes, or ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        self._changed.clear()


class WaitingLine:
    def __init__(self):
        self._tickets: list[Ticket] = []
        self._counter = itertools.count()

    def __len__(self) -> int:
        return len(self._tickets)

    def join(self, key: ServerKey, kind: Hashable = None, priority: int = 0) -> Ticket:
        ticket = Ticket(key, kind, priority, next(self._counter))
        self._tickets.append(ticket)
        self._tickets.sort(key=lambda t: (-t.priority, t.order))
        self.changed()
        return ticket

    def leave(self, ticket: Ticket) -> None:
        if ticket in self._tickets:
            self._tickets.remove(ticket)
            self.changed()

    def position(self, ticket: Ticket) -> int:
        """1 for the first in line."""
        return self._tickets.index(ticket) + 1

    def ahead_of_kind(self, ticket: Ticket) -> int:
        """How many tickets of the same kind are ahead of ``ticket``."""
        ahead = self._tickets[: self._tickets.index(ticket)]
        return sum(1 for other in ahead if other.kind == ticket.kind)

    def waiting(self, kind: Hashable = None, priority: int | None = None) -> bool:
        """Is anyone of ``kind`` waiting who goes before a newcomer of ``priority``?"""
        return any(
            t.kind == kind and (priority is None or t.priority >= priority) for t in self._tickets
        )

    def tickets(self) -> list[Ticket]:
        return list(self._tickets)

    def changed(self) -> None:
        """Wake every ticket: places moved, or something came free."""
        for ticket in self._tickets:
            ticket._changed.set()
