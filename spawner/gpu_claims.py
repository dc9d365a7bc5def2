"""A spawner mixin: the GPUs of a start — claimed from the hub's one GPU pool
(``pool.py``), waited for in its queue with the place reported on the spawn
page, released at the stop — and the start's progress events (``progress.py``)."""

from __future__ import annotations

import time

from traitlets import Float
from traitlets.config import Configurable

from . import progress
from .allocator import GPURequest, NotEnoughGPUs, OverQuota, ServerKey
from .pool import GPUPool, QueueTimeout
from .user_errors import UserMistake, log_user_mistakes_once

# Seconds a start gets beyond its wait in the GPU queue: the turn at the start
# gate, the container, Jupyter coming up. ``start_timeout`` defaults to
# ``queue_timeout`` + this; a wait in line ends this long before start_timeout.
START_ALLOWANCE = 600


class GPUClaims(Configurable):
    queue_wait = Float(0.0, help="Seconds the current start waited in the GPU queue (labels.QUEUE_WAIT_LABEL).")
    _pool: GPUPool | None = None  # one per hub process, shared by every spawner
    _progress: progress.ProgressLog | None = None

    @property
    def pool(self) -> GPUPool:
        cls = GPUClaims
        if cls._pool is None:
            log_user_mistakes_once(self.log)
            cls._pool = GPUPool(
                hub_id=self.hub_id,
                prefix=self.prefix,
                docker_client=self._new_client(),  # for the pool's own thread
                log=self.log,
                reconcile_interval=self.reconcile_interval,
                remove_forgotten=self.remove,
                start_concurrency=self.start_concurrency,
                queue_file=self.queue_file,
            )
        cls._pool.start_reconciling()
        return cls._pool

    @property
    def server_key(self) -> ServerKey:
        return ServerKey(self.user.name, self.name or "")

    async def _claim_gpus(self, prefer=(), wait: float = 0) -> tuple[str, ...]:
        """GPUs for this start; waits in the GPU queue up to ``wait`` seconds
        (how long it waited: ``queue_wait``, for the container's label)."""
        queued_at = None

        def on_wait(place, refusal):
            nonlocal queued_at
            queued_at = queued_at or time.monotonic()
            self._report_queue_place(place, refusal)

        try:
            uuids = await self.pool.claim_or_wait(
                self.server_key,
                GPURequest(
                    self.gpu_request,
                    share=self.gpu_share,
                    model=(self.user_options or {}).get("gpu_model") or None,  # checked by parse_request
                    user_quota=self.gpu_quota,
                    allowed_models=tuple(self.gpu_models),
                ),
                self.busy_memory_threshold,
                # a spawn that dies without giving its GPUs back loses them after this
                expires_in=self.start_timeout + self.reconcile_interval,
                prefer=prefer,
                wait=wait,
                priority=self.queue_priority,
                on_wait=on_wait,
            )
        except (NotEnoughGPUs, OverQuota, QueueTimeout) as error:
            raise UserMistake(409, str(error)) from None
        if queued_at is not None:
            self.queue_wait = time.monotonic() - queued_at
        if uuids:
            self.log.info("Assigned GPU(s) %s to %s", ",".join(uuids), self._log_name)
        return uuids

    def _report_queue_place(self, place: int, refusal: NotEnoughGPUs | None) -> None:
        total = refusal.total if refusal else 0
        free = refusal.free if refusal else 0
        self.log.info("%s waits for %d GPU(s): position %d in the queue", self._log_name,
                      self.gpu_request, place)
        self._report(
            progress.queued(place, total, self.gpu_request, free, self.pool.next_free_in()), 10
        )

    def _queue_allowance(self, began: float) -> float:
        """Seconds this start may wait in line: ``queue_timeout``, and never so long
        that ``start_timeout`` ends the start after the wait."""
        left = self.start_timeout - START_ALLOWANCE - (time.monotonic() - began)
        return max(0.0, min(self.queue_timeout, left))

    def _report(self, message: str, percent: int | None = None) -> None:
        if self._progress is None:
            self._progress = progress.ProgressLog()
        self._progress.report(message, percent)

    async def progress(self):
        if self._progress is None:
            self._progress = progress.ProgressLog()
        async for event in self._progress.follow():
            yield event

    def _release_gpus(self):
        uuids = self.pool.release(self.server_key)
        if uuids:
            self.log.info("Released GPU(s) %s of %s", ",".join(uuids), self._log_name)
        self.gpu_uuids = []

