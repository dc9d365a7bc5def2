"""Who holds which GPU: pure bookkeeping, no I/O.

A *holder* is a server's container name: unique per user and server, known
before the container exists, and written on the container as a label so the
table can be rebuilt from Docker after a hub restart.

Choosing and claiming happen in one synchronous call (:meth:`GPUAllocator.claim`),
so on the hub's single event loop no other spawn can run in between: two
servers never get the same GPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .gpu_status import Status, status_of
from .inventory import GPU, Inventory


class NotEnoughGPUs(Exception):
    """Fewer GPUs are free than a server asked for. The message is for the user."""

    def __init__(self, requested: int, inventory: Inventory, free: int, held: int):
        self.requested, self.free, self.held = requested, free, held
        total = len(inventory.healthy)
        if not inventory.nvml_available:
            message = (
                f"You asked for {requested} GPU(s), but this hub has no usable GPUs "
                f"right now (NVML: {inventory.unavailable_reason}). "
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
    confirmed: bool  # its container exists (or existed at the last reconcile)


class GPUAllocator:
    """The claim table: which holder has which device UUIDs."""

    def __init__(self):
        self._claims: dict[str, Claim] = {}
        self._seq = 0

    # ---- reading -------------------------------------------------------
    def holders(self) -> dict[str, tuple[str, ...]]:
        """holder → UUIDs it holds."""
        return {holder: claim.uuids for holder, claim in self._claims.items()}

    def holder_of(self, uuid: str) -> str | None:
        for holder, claim in self._claims.items():
            if uuid in claim.uuids:
                return holder
        return None

    def why_not_free(self, gpu: GPU, max_memory_used: int) -> str | None:
        """Why ``gpu`` cannot be handed out now, or None when it is free (gpu_status.py)."""
        status = status_of(gpu, self.holder_of(gpu.uuid) if gpu.uuid else None, max_memory_used)
        return None if status.status is Status.FREE else status.reason

    def free_gpus(self, inventory: Inventory, max_memory_used: int) -> list[GPU]:
        """Free devices, least used first (utilization, then memory, then index)."""
        free = [
            gpu for gpu in inventory.gpus if self.why_not_free(gpu, max_memory_used) is None
        ]
        return sorted(free, key=_least_used_first)

    # ---- changing ------------------------------------------------------
    def claim(
        self, holder: str, count: int, inventory: Inventory, max_memory_used: int
    ) -> tuple[str, ...]:
        """Choose ``count`` free devices and record them as ``holder``'s.

        A previous claim by the same holder is given back first: a server
        that starts again is assigned afresh, never reusing an old assignment
        that may no longer be free. Raises :class:`NotEnoughGPUs`.
        """
        self.release(holder)
        if count <= 0:
            return ()
        free = self.free_gpus(inventory, max_memory_used)
        if len(free) < count:
            held = sum(1 for gpu in inventory.healthy if self.holder_of(gpu.uuid))
            raise NotEnoughGPUs(count, inventory, free=len(free), held=held)
        uuids = tuple(gpu.uuid for gpu in free[:count])
        self._claims[holder] = Claim(uuids, self._next_seq(), confirmed=False)
        return uuids

    def confirm(self, holder: str) -> None:
        """The holder's container now exists (it carries the claim as a label)."""
        claim = self._claims.get(holder)
        if claim is not None:
            claim.confirmed = True
            claim.seq = self._next_seq()

    def restore(self, holder: str, uuids: Iterable[str]) -> None:
        """Record a claim found on an existing container (hub start-up)."""
        uuids = tuple(uuids)
        if uuids:
            self._claims[holder] = Claim(uuids, self._next_seq(), confirmed=True)

    def release(self, holder: str) -> tuple[str, ...]:
        claim = self._claims.pop(holder, None)
        return claim.uuids if claim else ()

    def mark(self) -> int:
        """A point in time, to pass to :meth:`forget_missing` later."""
        return self._next_seq()

    def forget_missing(self, live_holders: set[str], since: int) -> list[str]:
        """Drop confirmed claims whose container was not live at ``since``.

        ``live_holders`` is what Docker listed after :meth:`mark` returned
        ``since``. Claims made or confirmed after that point, and claims whose
        container is still being created, are kept: the listing cannot have
        seen them.
        """
        stale = [
            holder
            for holder, claim in self._claims.items()
            if claim.confirmed and claim.seq < since and holder not in live_holders
        ]
        for holder in stale:
            del self._claims[holder]
        return stale

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq


def _least_used_first(gpu: GPU):
    position = tuple(int(part) for part in gpu.index.split(":"))
    return (gpu.utilization or 0, gpu.memory_used, position)
