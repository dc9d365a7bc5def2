"""The GPU pool of one hub: the inventory, the claim table, the engine record.

One pool per hub process, shared by all its spawners. The spawner asks it
for GPUs (:meth:`GPUPool.claim`), tells it when the container exists
(:meth:`confirm`, :meth:`verify`) and gives them back (:meth:`release`); it
never reaches into it.

- NVML runs on the inventory's thread, the engine listing on the pool's own
  thread: neither queues behind DockerSpawner's Docker thread (image pulls),
  and neither runs while a claim is being chosen. Choose-and-claim is one
  synchronous call on the event loop: no lock is needed and no I/O waits
  inside it.
- The engine is the record: a GPU named on any live labelled container is
  taken, whichever hub made it. Two hubs that choose the same GPU at the same
  moment both create their containers; each then lists the engine again and
  the one created later gives way (removes its container and claims again).
- When no GPU is free, a start waits in the GPU queue (:meth:`claim_or_wait`),
  in order (``waiting_line.py``); every release, every reconcile that drops a
  claim and every ``QUEUE_RECHECK`` seconds the first in line of each kind
  tries again. The queue is written to ``queue_file`` as it changes: a hub
  that restarts tells those who were waiting (:meth:`notice_for`).
- Container starts pass a gate (``admission.py``): a burst comes up a few at a
  time instead of all late together.
- A reconcile every ``reconcile_interval`` seconds drops claims whose
  container is gone, expires claims of spawns that never made a container,
  and stops containers of this hub that no server of the hub accounts for
  (left by a hub that died mid-spawn), logging what it did.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import docker.errors

from . import engine, labels, progress
from .admission import StartGate
from .allocator import GPUAllocator, GPURequest, NotEnoughGPUs, OverQuota, ServerKey
from .gpu_status import Status
from .inventory import GPU, Inventory, NvmlInventory
from .queue_record import QueueRecord
from .waiting_line import Ticket, WaitingLine

# An engine listing this young is good enough for choosing GPUs; a refusal
# always looks again with a fresh one first.
LISTING_MAX_AGE = 2.0
# The first in the GPU queue looks again at least this often: GPUs also come
# free where the hub cannot see it happen (another hub's server, a job outside).
QUEUE_RECHECK = 10.0


class ClaimConflict(Exception):
    """Another hub's container, made earlier, names one of our GPUs."""


class QueueTimeout(Exception):
    """A start waited its whole allowance in the GPU queue. The message is for the user."""

    def __init__(self, waited: float, place: int):
        super().__init__(
            f"No GPU came free in the {progress.duration(waited)} you waited in the queue "
            f"(you were at position {place}). Try again later, or start with 0 GPUs "
            "to work without one."
        )


class GPUPool:
    def __init__(
        self,
        hub_id: str,
        prefix: str,
        docker_client,
        log: logging.Logger,
        reconcile_interval: float = 30.0,
        remove_forgotten: bool = True,
        start_concurrency: int = 2,
        queue_file: str = "",
    ):
        self.hub_id = hub_id
        self.prefix = prefix
        self.log = log
        self.inventory = NvmlInventory(log)
        self.claims = GPUAllocator()
        self.reconcile_interval = reconcile_interval
        self.remove_forgotten = remove_forgotten
        self._client = docker_client
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="gpuhub-engine")
        self._listing: tuple[float, tuple[engine.LabelledContainer, ...]] | None = None
        self._listing_in_flight: asyncio.Future | None = None
        self._tracked: set[ServerKey] = set()  # servers this hub runs or is starting
        self._untracked_seen: set[str] = set()  # container ids seen untracked once
        self._reconciler: asyncio.Task | None = None
        self.queue = WaitingLine()  # starts waiting for GPUs
        self.starts = StartGate(start_concurrency)  # containers coming up
        self.record = QueueRecord(queue_file, self.queue, log, self._run)

    # ---- the engine record ---------------------------------------------------
    async def listing(self, max_age: float = LISTING_MAX_AGE) -> tuple[engine.LabelledContainer, ...]:
        """Every labelled container on the engine, at most ``max_age`` seconds old.

        Concurrent callers share one listing (a burst of spawns costs one call).
        """
        if self._listing is not None and time.monotonic() - self._listing[0] <= max_age:
            return self._listing[1]
        if self._listing_in_flight is None:
            self._listing_in_flight = asyncio.ensure_future(self._run(self._list))
            self._listing_in_flight.add_done_callback(self._clear_listing_in_flight)
        return await asyncio.shield(self._listing_in_flight)

    def _list(self) -> tuple[engine.LabelledContainer, ...]:
        started = time.monotonic()
        listing = engine.from_listing(
            self._client.containers(all=True, filters={"label": labels.GPU_LABEL})
        )
        self._listing = (started, listing)
        return listing

    def _clear_listing_in_flight(self, _future) -> None:
        self._listing_in_flight = None

    def forget_listing(self) -> None:
        """A container went away: the next claim lists the engine again."""
        self._listing = None

    async def _run(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def is_ours(self, container: engine.LabelledContainer) -> bool:
        return container.hub == self.hub_id or (
            container.hub == "" and container.name.startswith(f"{self.prefix}-")
        )

    # ---- claims ----------------------------------------------------------------
    async def claim(
        self, key: ServerKey, request: GPURequest, busy_memory: int, expires_in: float, prefer=()
    ) -> tuple[str, ...]:
        """Choose and claim the GPUs ``request`` asks for, for ``key``; raises
        OverQuota (the user's other servers hold too many) or NotEnoughGPUs.

        Before refusing, looks again with fresh readings: containers that
        died since (the user's other servers too), jobs outside the hub that ended.
        """
        self._tracked.add(key)
        if request.count <= 0:
            self.claims.release(key)
            return ()
        inventory, listing = await asyncio.gather(self.inventory.snapshot(), self.listing())
        try:
            return self._choose(key, request, inventory, listing, busy_memory, expires_in, prefer)
        except (NotEnoughGPUs, OverQuota):
            pass
        since = self.claims.mark()
        inventory, listing = await asyncio.gather(
            self.inventory.snapshot(max_age=0), self.listing(max_age=0)
        )
        self._drop_finished(listing, since)
        try:
            return self._choose(key, request, inventory, listing, busy_memory, expires_in, prefer)
        except NotEnoughGPUs:
            self._log_unavailable(inventory, listing, busy_memory)
            raise

    def _choose(self, key, request: GPURequest, inventory, listing, busy_memory, expires_in, prefer):
        """Choose-and-claim in one synchronous step (no other spawn runs in between)."""
        return self.claims.claim(
            key,
            request,
            inventory,
            busy_memory,
            taken=engine.taken(listing, self.hub_id),
            expires=time.monotonic() + expires_in,
            prefer=prefer,
        )

    async def claim_or_wait(
        self,
        key: ServerKey,
        request: GPURequest,
        busy_memory: int,
        expires_in: float,
        prefer=(),
        *,
        wait: float,
        priority: int = 0,
        on_wait=lambda place, refusal: None,
    ) -> tuple[str, ...]:
        """:meth:`claim`, waiting in the GPU queue up to ``wait`` seconds when none is free.

        Nobody jumps the line: a start finding others of its kind (share,
        model) waiting ahead of it queues behind them. ``on_wait(place,
        refusal)`` is called with each new place. Raises NotEnoughGPUs when
        ``wait`` is 0, QueueTimeout when the wait runs out; a cancelled start
        leaves the line and claims nothing.
        """
        kind = (request.share, request.model)
        refusal = None
        if request.count <= 0 or not self.queue.waiting(kind, priority):
            try:
                return await self.claim(key, request, busy_memory, expires_in, prefer)
            except NotEnoughGPUs as error:
                if wait <= 0 or not error.may_come_free:
                    raise
                refusal = error
        self._tracked.add(key)
        ticket = self.queue.join(key, kind, priority)
        self.save_queue()
        cancelled = False
        try:
            return await self._wait_in_line(ticket, request, busy_memory, expires_in, prefer,
                                            wait, refusal, on_wait)
        except asyncio.CancelledError:
            # The file is not rewritten: a hub shutting down cancels every start, and
            # those must be told after the restart. A user's Cancel reaches stop(),
            # which rewrites it (save_queue).
            cancelled = True
            raise
        finally:
            self.queue.leave(ticket)
            if not cancelled:
                self.save_queue()

    async def _wait_in_line(self, ticket: Ticket, request, busy_memory, expires_in, prefer,
                            wait, refusal, on_wait) -> tuple[str, ...]:
        deadline = ticket.joined + wait
        said = None
        while True:
            place = self.queue.position(ticket)
            news = (place, refusal and (refusal.free, refusal.held, refusal.total))
            if news != said:  # said again when the place or the GPUs' state changed
                said = news
                on_wait(place, refusal)
            if time.monotonic() >= deadline:
                raise QueueTimeout(wait, place)
            await ticket.wait(min(QUEUE_RECHECK, deadline - time.monotonic()))
            if self.queue.ahead_of_kind(ticket):
                continue
            inventory, listing = await asyncio.gather(self.inventory.snapshot(), self.listing())
            if self.queue.ahead_of_kind(ticket):  # the line moved while we looked
                continue
            try:
                return self._choose(ticket.key, request, inventory, listing, busy_memory,
                                    expires_in, prefer)
            except NotEnoughGPUs as error:
                refusal = error

    def describe(self, uuids) -> list[GPU]:
        """The latest reading of these devices (index, name), for messages."""
        latest, wanted = self.inventory.latest(), set(uuids)
        return [gpu for gpu in (latest.gpus if latest else ()) if gpu.uuid in wanted]

    def next_free_in(self) -> float | None:
        """Seconds until a GPU lease ends, by the latest listing; None when no GPU
        server has a lease (nobody can say when a GPU comes free)."""
        return engine.next_lease_end(self._listing[1], time.time()) if self._listing else None

    # ---- the queue across restarts --------------------------------------------
    def save_queue(self) -> None:
        """Write who waits to ``queue_file``; stop() calls it too, so a cancelled wait is forgotten."""
        self.record.save()

    async def notice_for(self, key: ServerKey) -> str:
        """What happened to this server's last start while the hub was away (said once)."""
        return await self.record.notice_for(key)

    def confirm(self, key: ServerKey, container_id: str) -> None:
        self.claims.confirm(key, container_id)

    async def verify(self, key: ServerKey, container_id: str) -> None:
        """Raise ClaimConflict when another hub's earlier container names our GPUs."""
        listing = await self.listing(max_age=0)
        mine = next((c for c in listing if c.id == container_id), None)
        if mine is None or not mine.gpus:
            return
        rivals = engine.conflicts(listing, mine)
        if not rivals:
            return
        created = await self._run(self._created, [mine.id, *(r.id for r in rivals)])
        # a rival that lost to another and removed itself meanwhile is no rival
        contenders = [c for c in (mine, *rivals) if c.id in created]
        first = min(contenders, key=lambda c: (created[c.id], c.id))
        if first is not mine:
            raise ClaimConflict(
                f"GPU(s) {','.join(set(mine.gpus) & set(first.gpus))} of {key} were taken "
                f"a moment earlier by {first.describe(self.hub_id)}"
            )

    def _created(self, ids: list[str]) -> dict[str, str]:
        """Creation times with nanoseconds, comparable as strings, of the containers still there."""
        created = {}
        for cid in ids:
            try:
                created[cid] = _sortable_time(self._client.inspect_container(cid)["Created"])
            except docker.errors.NotFound:
                continue
        return created

    async def remove_container(self, container_id: str) -> None:
        await self._run(lambda: self._client.remove_container(container_id, force=True))
        self.forget_listing()

    def release(self, key: ServerKey) -> tuple[str, ...]:
        self._tracked.discard(key)
        self.forget_listing()
        released = self.claims.release(key)
        if released:
            self.queue.changed()  # the first in line tries at once
        return released

    def track(self, key: ServerKey) -> None:
        """This hub runs ``key`` (a restarted hub learns it by polling its servers)."""
        self._tracked.add(key)

    # ---- what the form and refusals show ----------------------------------------
    async def free_count(self, busy_memory: int) -> tuple[int, Inventory]:
        free, inventory = await self.offer(busy_memory)
        return len(free), inventory

    async def offer(self, busy_memory: int, request: GPURequest = GPURequest(1)):
        """The devices ``request`` could get now (best first), and the reading: (gpus, inventory)."""
        inventory, listing = await asyncio.gather(self.inventory.snapshot(), self.listing())
        taken = engine.taken(listing, self.hub_id)
        return self.claims.free_gpus(inventory, busy_memory, taken, request), inventory

    def _log_unavailable(self, inventory, listing, busy_memory: int) -> None:
        taken = engine.taken(listing, self.hub_id)
        for gpu, status in self.claims.statuses(inventory, busy_memory, taken):
            if status.status is not Status.FREE:
                self.log.info("GPU %s (%s) not assigned: %s", gpu.index, gpu.uuid or "?", status.reason)

    # ---- reconcile ---------------------------------------------------------------
    def _drop_finished(self, listing, since: int) -> None:
        live = {c.id for c in listing if c.live}
        dropped = self.claims.reconcile(live, since, time.monotonic())
        for key, why in dropped:
            self.log.info("GPU claim of %s dropped: %s", key, why)
        if dropped:
            self.queue.changed()

    def start_reconciling(self) -> None:
        self.record.start_loading()
        if self._reconciler is None and self.reconcile_interval > 0:
            self._reconciler = asyncio.ensure_future(self._reconcile_forever())

    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(self.reconcile_interval)
            try:
                await self.reconcile_once()
            except Exception as error:  # the engine may be down: say so, try again
                self.log.warning("GPU reconcile failed (%s); trying again in %ss", error,
                                 self.reconcile_interval)

    async def reconcile_once(self) -> None:
        since = self.claims.mark()
        listing = await self.listing(max_age=0)
        self._drop_finished(listing, since)
        claimed = set(self.claims.holders())
        untracked = {
            c.id: c
            for c in listing
            if c.live and self.is_ours(c) and c.key not in self._tracked and c.key not in claimed
        }
        # Seen untracked twice in a row: a restarted hub has polled its servers by then.
        forgotten = [c for cid, c in untracked.items() if cid in self._untracked_seen]
        self._untracked_seen = set(untracked) - {c.id for c in forgotten}
        for container in forgotten:
            await self._run(self._stop_forgotten, container.id)
            self.log.warning(
                "Container %s (%s) runs for no server of this hub (left by a hub that "
                "stopped mid-spawn?): %s it%s",
                container.name, container.key,
                "removed" if self.remove_forgotten else "stopped",
                f"; its GPU(s) {','.join(container.gpus)} are free again" if container.gpus else "",
            )
        if forgotten:
            self.forget_listing()

    def _stop_forgotten(self, container_id: str) -> None:
        if self.remove_forgotten:
            self._client.remove_container(container_id, force=True)
        else:
            self._client.stop(container_id, timeout=10)


def _sortable_time(created: str) -> str:
    """'2026-11-22T14:23:50.1234Z' -> '2026-11-22T14:23:50.123400000' (nanoseconds padded)."""
    stamp = created.rstrip("Z")
    whole, _, fraction = stamp.partition(".")
    return f"{whole}.{fraction[:9]:0<9}"
