"""Who holds which GPU in this hub: pure bookkeeping, no I/O.

A claim belongs to a :class:`ServerKey` (user, server name): stable for the
life of a server, known before its container exists, and independent of
the container's name (``name_template`` may change that name at start).

The claim table holds what the engine cannot show yet: GPUs chosen for a
server whose container is still being made. Every GPU named on a live
container of the engine is taken too (``taken``, from ``engine.py``), whichever
hub made it: the engine is the record.

Choosing and claiming happen in one synchronous call (:meth:`GPUAllocator.claim`),
so on the hub's single event loop no other spawn can run in between: two
servers of this hub never get the same GPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .gpu_status import Status, status_of
from .inventory import GPU, Inventory


@dataclass(frozen=True, order=True)
class ServerKey:
    """A server's identity in its hub: (user, server name; "" for the default server)."""

    user: str
    server: str = ""

    def __str__(self) -> str:
        return f"{self.user}/{self.server}" if self.server else self.user


@dataclass(frozen=True)
class GPURequest:
    """What one start asks of the pool."""

    count: int  # GPUs
    share: int = 1  # servers per GPU it agrees to share with (1: exclusive)
    model: str | None = None  # only GPUs whose name contains this (any case); None: any model
    user_quota: int | None = None  # most GPUs the user may hold over all their servers


class NotEnoughGPUs(Exception):
    """Fewer GPUs are free than a server asked for. The message is for the user."""

    def __init__(self, requested: int, inventory: Inventory, free: int, held: int):
        self.requested, self.free, self.held = requested, free, held
        self.inventory = inventory
        total = len(inventory.healthy)
        # Worth waiting for: the GPUs exist and work, others hold them for now.
        self.may_come_free = inventory.nvml_available and 0 < requested <= total
        if not inventory.nvml_available:
            message = (
                f"You asked for {requested} GPU(s), but this hub cannot use its GPUs "
                f"right now: {inventory.unavailable_reason}. "
                "Start your server with 0 GPUs, or ask an admin to check the GPU driver."
            )
        elif total == 0:
            message = (
                f"You asked for {requested} GPU(s), but this host has no healthy GPU. "
                "Start your server with 0 GPUs, or ask an admin."
            )
        else:
            busy = total - free - held
            message = (
                f"You asked for {requested} GPU(s), but only {free} of the {total} GPUs "
                f"on this host {'is' if free == 1 else 'are'} free right now "
                f"({held} held by other servers"
                + (f", {busy} busy with jobs outside the hub" if busy else "")
                + "). Ask for fewer GPUs, or try again when someone stops a server."
            )
        super().__init__(message)


@dataclass
class Claim:
    uuids: tuple[str, ...]
    seq: int  # when the claim was made or confirmed (monotonic counter)
    expires: float  # unconfirmed claims are dropped after this (monotonic seconds)
    container_id: str | None = None  # set once its container exists (confirmed)


class GPUAllocator:
    """The claim table: which server of this hub holds which device UUIDs."""

    def __init__(self):
        self._claims: dict[ServerKey, Claim] = {}
        self._seq = 0

    # ---- reading -------------------------------------------------------
    def holders(self) -> dict[ServerKey, tuple[str, ...]]:
        """server → UUIDs it holds."""
        return {key: claim.uuids for key, claim in self._claims.items()}

    def claimed(self) -> dict[str, str]:
        """UUID → who holds it, for every claimed device."""
        return {uuid: str(key) for key, claim in self._claims.items() for uuid in claim.uuids}

    def statuses(self, inventory: Inventory, busy_memory: int, taken: Mapping[str, str]):
        """(gpu, its gpu_status) for every device; ``taken``: UUID → holder on the engine."""
        holders = {**taken, **self.claimed()}
        return [(gpu, status_of(gpu, holders.get(gpu.uuid), busy_memory)) for gpu in inventory.gpus]

    def free_gpus(
        self, inventory: Inventory, busy_memory: int, taken: Mapping[str, str] = {}
    ) -> list[GPU]:
        """Free devices, least used first (utilization, then memory, then index)."""
        free = [
            gpu
            for gpu, status in self.statuses(inventory, busy_memory, taken)
            if status.status is Status.FREE
        ]
        return sorted(free, key=_least_used_first)

    # ---- changing ------------------------------------------------------
    def claim(
        self,
        key: ServerKey,
        count: int,
        inventory: Inventory,
        busy_memory: int,
        *,
        taken: Mapping[str, str] = {},
        expires: float = float("inf"),
        prefer: Iterable[str] = (),
    ) -> tuple[str, ...]:
        """Choose ``count`` free devices and record them as ``key``'s.

        A previous claim by the same server is given back first: a server
        that starts again is assigned afresh. Devices in ``prefer`` (the
        ones its kept container names) go first when they are free.
        Raises :class:`NotEnoughGPUs`.
        """
        self.release(key)
        if count <= 0:
            return ()
        free = self.free_gpus(inventory, busy_memory, taken)
        if len(free) < count:
            holders = {**taken, **self.claimed()}
            held = sum(1 for gpu in inventory.healthy if gpu.uuid in holders)
            raise NotEnoughGPUs(count, inventory, free=len(free), held=held)
        preferred = set(prefer)
        free.sort(key=lambda gpu: gpu.uuid not in preferred)  # stable: least used stays next
        uuids = tuple(gpu.uuid for gpu in free[:count])
        self._claims[key] = Claim(uuids, self._next_seq(), expires)
        return uuids

    def confirm(self, key: ServerKey, container_id: str) -> None:
        """The server's container exists now (it carries the claim as a label)."""
        claim = self._claims.get(key)
        if claim is not None:
            claim.container_id = container_id
            claim.seq = self._next_seq()

    def release(self, key: ServerKey) -> tuple[str, ...]:
        claim = self._claims.pop(key, None)
        return claim.uuids if claim else ()

    def mark(self) -> int:
        """A point in time, to pass to :meth:`reconcile` with a later engine listing."""
        return self._next_seq()

    def reconcile(self, live_container_ids: set[str], since: int, now: float) -> list[tuple[ServerKey, str]]:
        """Drop claims the engine shows are over; returns (server, why) for each.

        ``live_container_ids`` is what the engine listed after :meth:`mark`
        returned ``since``. A confirmed claim whose container was not live
        then is over; claims confirmed after that point are kept (the listing
        cannot have seen them). An unconfirmed claim past ``expires`` is over:
        its spawn died without giving it back.
        """
        over = []
        for key, claim in list(self._claims.items()):
            if claim.container_id is not None:
                if claim.seq < since and claim.container_id not in live_container_ids:
                    over.append((key, "its container is gone or stopped"))
            elif claim.expires < now:
                over.append((key, "its container was never made (spawn abandoned)"))
        for key, _why in over:
            del self._claims[key]
        return over

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq


def _least_used_first(gpu: GPU):
    position = tuple(int(part) for part in gpu.index.split(":"))
    return (gpu.utilization or 0, gpu.memory_used, position)
