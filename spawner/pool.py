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

from . import engine, labels
from .allocator import GPUAllocator, GPURequest, NotEnoughGPUs, OverQuota, ServerKey
from .gpu_status import Status
from .inventory import Inventory, NvmlInventory

# An engine listing this young is good enough for choosing GPUs; a refusal
# always looks again with a fresh one first.
LISTING_MAX_AGE = 2.0


class ClaimConflict(Exception):
    """Another hub's container, made earlier, names one of our GPUs."""


class GPUPool:
    def __init__(
        self,
        hub_id: str,
        prefix: str,
        docker_client,
        log: logging.Logger,
        reconcile_interval: float = 30.0,
        remove_forgotten: bool = True,
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
        return self.claims.release(key)

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
        for key, why in self.claims.reconcile(live, since, time.monotonic()):
            self.log.info("GPU claim of %s dropped: %s", key, why)

    def start_reconciling(self) -> None:
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
