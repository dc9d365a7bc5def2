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
servers of this hub never get the same GPU, unless both agreed to share it
(``GPURequest.share``: up to N servers of the same N on one device).

A user's quota (``GPURequest.user_quota``) counts the GPUs of all their
servers of this hub: claims here and live containers on the engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .gpu_status import GPUStatus, Holder, Status, has_place, matches_model, status_of
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
    allowed_models: tuple[str, ...] = ()  # the user's models (``gpu_models``); (): every model

    def accepts(self, gpu: GPU) -> bool:
        """Whether ``gpu`` is of a model this request may get."""
        if self.model and not matches_model(gpu.name, self.model):
            return False
        return not self.allowed_models or any(matches_model(gpu.name, m) for m in self.allowed_models)


@dataclass(frozen=True)
class Holding:
    """A live container on the engine and the GPUs it holds (``engine.taken``)."""

    name: str  # for people: "ann", "ann/big", "bob (hub other)"
    gpus: tuple[str, ...]
    share: int = 1
    key: ServerKey | None = None  # a server of this hub; None: another hub's
    container_id: str = ""

    @property
    def ident(self):
        """The same server in the claim table and on the engine is one holder."""
        return self.key if self.key is not None else self.container_id or self.name


def _kind(share: int, model: str | None) -> str:
    """What a request asks for, in words: "GPU(s)", "A100 GPU(s) shared by 2 servers each"."""
    what = f"{model} GPU(s)" if model else "GPU(s)"
    return what + (f" shared by {share} servers each" if share > 1 else "")


class NotEnoughGPUs(Exception):
    """Fewer GPUs are free than a server asked for. The message is for the user."""

    def __init__(
        self, requested: int, inventory: Inventory, free: int, held: int, *,
        share: int = 1, model: str | None = None, total: int | None = None, shared_elsewhere: int = 0,
    ):
        self.requested, self.free, self.held = requested, free, held
        self.inventory = inventory
        total = len(inventory.healthy) if total is None else total
        self.total = total
        # Worth waiting for: enough GPUs of the kind asked for exist and work,
        # others hold them for now (``total``: the devices of the model the user may use).
        self.may_come_free = inventory.nvml_available and 0 < requested <= total
        of_model = f"{model} " if model else ""
        if not inventory.nvml_available:
            message = (
                f"You asked for {requested} GPU(s), but this hub cannot use its GPUs "
                f"right now: {inventory.unavailable_reason}. "
                "Start your server with 0 GPUs, or ask an admin to check the GPU driver."
            )
        elif total == 0:
            message = (
                f"You asked for {requested} {_kind(share, model)}, but this host has no healthy "
                f"{of_model}GPU you may use. Start your server with 0 GPUs, or ask an admin."
            )
        else:
            busy = total - free - held
            if share > 1:
                free_what = f"have a place for a server sharing a GPU {share} ways"
            else:
                free_what = "is free" if free == 1 else "are free"
            message = (
                f"You asked for {requested} {_kind(share, model)}, but only {free} of the "
                f"{total} {of_model}GPUs on this host {free_what} right now "
                f"({held} held by other servers"
                + (f", {busy} busy with jobs outside the hub" if busy else "")
                + (f"; {shared_elsewhere} shared by servers of another kind: exclusive and "
                   "shared servers never share a GPU" if shared_elsewhere else "")
                + "). Ask for fewer GPUs, or try again when someone stops a server."
            )
        super().__init__(message)


class OverQuota(Exception):
    """The user's servers together would hold more GPUs than their quota. The
    message is for the user (HTTP 409; never queued: waiting would not help)."""

    def __init__(self, requested: int, quota: int, held: Mapping[str, int]):
        self.requested, self.quota, self.held = requested, quota, dict(held)
        holding = sum(held.values())
        servers = ", ".join(
            f"{name or 'your default server'}: {count}" for name, count in sorted(held.items())
        )
        left = max(quota - holding, 0)
        super().__init__(
            f"You asked for {requested} GPU(s), but your quota is {quota} GPU(s) over all "
            f"your servers and your other servers hold {holding} ({servers}). Stop one of "
            f"them, or ask for fewer GPUs ({left} at most)."
        )


@dataclass
class Claim:
    uuids: tuple[str, ...]
    seq: int  # when the claim was made or confirmed (monotonic counter)
    expires: float  # unconfirmed claims are dropped after this (monotonic seconds)
    container_id: str | None = None  # set once its container exists (confirmed)
    share: int = 1  # the server's share of each of its GPUs (1: exclusive)


class GPUAllocator:
    """The claim table: which server of this hub holds which device UUIDs."""

    def __init__(self):
        self._claims: dict[ServerKey, Claim] = {}
        self._seq = 0

    # ---- reading -------------------------------------------------------
    def holders(self) -> dict[ServerKey, tuple[str, ...]]:
        """server → UUIDs it holds."""
        return {key: claim.uuids for key, claim in self._claims.items()}

    def _holders(self, taken: Sequence[Holding]) -> dict[str, list[Holder]]:
        """UUID → the servers on it: live containers and claims, each server once."""
        per_gpu: dict[str, dict[object, Holder]] = {}
        for holding in taken:
            for uuid in holding.gpus:
                per_gpu.setdefault(uuid, {})[holding.ident] = Holder(holding.name, holding.share)
        for key, claim in self._claims.items():
            for uuid in claim.uuids:
                per_gpu.setdefault(uuid, {})[key] = Holder(str(key), claim.share)
        return {uuid: list(holders.values()) for uuid, holders in per_gpu.items()}

    def statuses(
        self, inventory: Inventory, busy_memory: int, taken: Sequence[Holding] = ()
    ) -> list[tuple[GPU, GPUStatus]]:
        """(gpu, its gpu_status) for every device; ``taken``: live containers on the engine."""
        holders = self._holders(taken)
        return [(gpu, status_of(gpu, holders.get(gpu.uuid), busy_memory)) for gpu in inventory.gpus]

    def free_gpus(
        self, inventory: Inventory, busy_memory: int, taken: Sequence[Holding] = (),
        request: GPURequest = GPURequest(1), prefer: Iterable[str] = (),
    ) -> list[GPU]:
        """Devices ``request`` may get now, best first: ``prefer`` (a kept container's),
        then, for a shared request, the GPUs already shared with a place left (fullest
        first: keeps whole GPUs for exclusive servers), then the least used."""
        preferred = set(prefer)
        offered = [
            (gpu, status)
            for gpu, status in self.statuses(inventory, busy_memory, taken)
            if has_place(status, request.share) and request.accepts(gpu)
        ]
        offered.sort(key=lambda pair: (
            pair[0].uuid not in preferred,
            pair[1].status is Status.FREE,
            pair[1].places,
            _least_used_first(pair[0]),
        ))
        return [gpu for gpu, _status in offered]

    def held_by_user(self, key: ServerKey, taken: Sequence[Holding] = ()) -> dict[str, int]:
        """GPUs held by the other servers of ``key``'s user in this hub: server name → count."""
        gpus: dict[ServerKey, set[str]] = {}
        for holding in taken:
            if holding.key is not None and holding.key.user == key.user and holding.key != key:
                gpus.setdefault(holding.key, set()).update(holding.gpus)
        for other, claim in self._claims.items():
            if other.user == key.user and other != key:
                gpus.setdefault(other, set()).update(claim.uuids)
        return {other.server: len(uuids) for other, uuids in gpus.items() if uuids}

    # ---- changing ------------------------------------------------------
    def claim(
        self,
        key: ServerKey,
        request: GPURequest,
        inventory: Inventory,
        busy_memory: int,
        *,
        taken: Sequence[Holding] = (),
        expires: float = float("inf"),
        prefer: Iterable[str] = (),
    ) -> tuple[str, ...]:
        """Choose ``request.count`` devices and record them as ``key``'s.

        A previous claim by the same server is given back first: a server
        that starts again is assigned afresh. Devices in ``prefer`` (the
        ones its kept container names) go first when they are free. The
        devices are distinct: a server never gets two places on one GPU.
        Raises :class:`OverQuota` (the user's other servers hold too many),
        then :class:`NotEnoughGPUs`.
        """
        self.release(key)
        if request.count <= 0:
            return ()
        if request.user_quota is not None:
            held = self.held_by_user(key, taken)
            if sum(held.values()) + request.count > request.user_quota:
                raise OverQuota(request.count, request.user_quota, held)
        free = self.free_gpus(inventory, busy_memory, taken, request, prefer)
        if len(free) < request.count:
            raise self._refusal(request, inventory, busy_memory, taken, free=len(free))
        uuids = tuple(gpu.uuid for gpu in free[: request.count])
        self._claims[key] = Claim(uuids, self._next_seq(), expires, share=request.share)
        return uuids

    def _refusal(self, request, inventory, busy_memory, taken, free: int) -> NotEnoughGPUs:
        mine = [(gpu, status) for gpu, status in self.statuses(inventory, busy_memory, taken)
                if gpu.healthy and gpu.uuid and request.accepts(gpu)]
        taken_states = (Status.HELD, Status.SHARED)
        held = sum(1 for _gpu, status in mine
                   if status.status in taken_states and not has_place(status, request.share))
        shared_elsewhere = sum(
            1 for _gpu, status in mine
            if status.status is Status.SHARED and not has_place(status, request.share)
        )
        return NotEnoughGPUs(
            request.count, inventory, free=free, held=held, share=request.share,
            model=request.model, total=len(mine), shared_elsewhere=shared_elsewhere,
        )

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
