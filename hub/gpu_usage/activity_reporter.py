"""The activity loop: tells the hub about servers whose GPUs are at work
(:mod:`.gpu_activity` decides which), so that jupyterhub-idle-culler does not
stop a long job that runs with nobody connected.

Reads the sampler's latest sample; a request to the hub only for a server that
is due (at most one per ``interval`` seconds per server).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from .gpu_activity import due
from .lifecycle import every
from .reclaimer import HubServers
from .tracker import Sample, Server, holder_name


class ActivityReporter:
    """Every ``period`` seconds, reports the servers that :func:`.gpu_activity.due` names."""

    def __init__(self, latest: Callable[[], Sample | None], hub: HubServers, interval: float,
                 period: float, max_sample_age: float, hub_id: str = "",
                 log: logging.Logger | None = None):
        self.latest = latest
        self.hub = hub
        self.interval = interval
        self.period = period
        self.max_sample_age = max_sample_age
        self.hub_id = hub_id
        self.log = log or logging.getLogger(__name__)
        self.reported: dict[str, float] = {}  # container ID -> the sample time last reported

    async def check(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        sample = self.latest()
        if sample is None or now - sample.time > self.max_sample_age:
            return  # no fresh readings: nobody can say a GPU is in use
        present = {server.container_id for server in sample.servers}
        self.reported = {cid: when for cid, when in self.reported.items() if cid in present}
        servers = due(sample, self.reported, self.interval, self.hub_id)
        for server in servers:
            # tried or not, the next report is an interval later: a hub that refuses
            # (a server deleted meanwhile) is not asked again every period
            self.reported[server.container_id] = sample.time
        await asyncio.gather(*(self.report(server, sample.time) for server in servers))

    async def report(self, server: Server, when: float) -> None:
        try:
            await self.hub.report_activity(server.user, server.server, when)
        except Exception as error:  # one server's trouble must not stop the others' reports
            self.log.warning("Could not tell the hub that %s's GPU is in use (%s): the idle culler "
                             "may stop it; trying again in %.0f s", holder_name(server), error, self.interval)

    async def run(self) -> None:
        await every(self.period, self.check, self.log, "GPU activity check")
