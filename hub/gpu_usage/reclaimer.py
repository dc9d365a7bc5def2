"""The reclaim loop: applies :func:`.reclaim.decide` to every GPU server in the
latest sample, and every server with a cohort end, and stops through the
hub's REST API those whose GPUs are idle or whose lease or cohort has ended
(files kept: the spawner removes the container, never its volumes; the
hub's pool releases the GPUs to the queue).

Cheap when nothing happens: the decision runs first on what the service
already knows (the container's creation time, the activity the hub last
reported, or none), which can only err towards acting, since activity only
moves later (see :func:`.reclaim.decide`); the hub is asked for the server's
``started`` and ``last_activity`` only for servers that this first pass would
warn or stop: a user at work with an idle GPU costs one request per idle timeout.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import time
from typing import Callable
from urllib.parse import quote

from dateutil.parser import isoparse
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from .lifecycle import every
from .reclaim import Action, Verdict, decide
from .reclaim_log import Reclaim, ReclaimLog
from .tracker import Sample, Server, holder_name


def epoch(value: str | None) -> float | None:
    """The hub's ISO 8601 timestamps ("2026-11-22T17:31:22.123456Z") as epoch seconds."""
    return isoparse(value).timestamp() if value else None


def iso(epoch_seconds: float) -> str:
    """Epoch seconds as the hub writes timestamps: "2026-11-22T17:31:22.123456Z"."""
    when = datetime.datetime.fromtimestamp(epoch_seconds, datetime.timezone.utc)
    return when.isoformat().replace("+00:00", "Z")


class HubServers:
    """The hub REST API, as far as the reclaimer and the activity reporter use it
    (scopes: read:servers, read:users:activity, delete:servers, users:activity)."""

    def __init__(self, api_url: str, token: str):
        self.api_url = api_url.rstrip("/")
        self.headers = {"Authorization": f"token {token}"}

    async def server(self, user: str, server: str) -> dict | None:
        """The hub's model of one server (``started``, ``last_activity``,
        ``ready``, ``pending``), or None when the hub knows no such running server."""
        try:
            response = await AsyncHTTPClient().fetch(
                f"{self.api_url}/users/{quote(user, safe='')}", headers=self.headers)
        except HTTPClientError as error:
            if error.code == 404:
                return None
            raise
        return (json.loads(response.body).get("servers") or {}).get(server)

    async def report_activity(self, user: str, server: str, when: float) -> None:
        """Tell the hub that ``user``'s server ``server`` was in use at ``when``
        (the hub keeps the later of this and what it knew)."""
        body = {"servers": {server: {"last_activity": iso(when)}}}
        await AsyncHTTPClient().fetch(f"{self.api_url}/users/{quote(user, safe='')}/activity",
                                      method="POST", headers=self.headers, body=json.dumps(body))

    async def stop(self, user: str, server: str) -> None:
        path = f"users/{quote(user, safe='')}/" + (f"servers/{quote(server, safe='')}" if server else "server")
        await AsyncHTTPClient().fetch(f"{self.api_url}/{path}", method="DELETE", headers=self.headers)


def gpu_idle_since(sample: Sample, server: Server) -> float | None:
    """Since when every GPU of ``server`` has been unused, by the samples; None
    when one has no reading (missing, unhealthy)."""
    since = 0.0
    for uuid in server.gpus:
        device = sample.device(uuid)
        if device is None or not device.gpu.healthy:
            return None
        since = max(since, sample.time if device.active else sample.time - device.idle_seconds)
    return since


class Reclaimer:
    """Every ``interval`` seconds: warn about leases that end soon, stop servers
    that lost their GPUs (only this hub's, labelled ``hub_id``). ``warnings`` (user, server) -> verdict is what the
    pages show."""

    def __init__(self, latest: Callable[[], Sample | None], hub: HubServers, record: ReclaimLog,
                 interval: float, warn_before: float, max_sample_age: float, hub_id: str = "",
                 log: logging.Logger | None = None):
        self.latest = latest
        self.hub = hub
        self.record = record
        self.interval = interval
        self.warn_before = warn_before
        self.max_sample_age = max_sample_age
        self.hub_id = hub_id  # "" : every labelled server (one hub per engine)
        self.log = log or logging.getLogger(__name__)
        self.warnings: dict[tuple[str, str], Verdict] = {}
        self._stopping: set[str] = set()  # container IDs asked to stop, until they are gone
        self._known: dict[str, tuple[float, float | None]] = {}  # container ID -> (started, last_activity)

    async def check(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        sample = self.latest()
        if sample is None or now - sample.time > self.max_sample_age:
            return  # no fresh readings: nobody can say a GPU is idle
        present = {s.container_id for s in sample.servers}
        self._stopping &= present
        self._known = {cid: known for cid, known in self._known.items() if cid in present}
        warnings, stops = {}, []
        for server in sample.servers:
            if self.hub_id and server.hub != self.hub_id:
                continue  # another hub's server on this engine: its user is not ours
            if not (server.gpus or server.ends) or server.container_id in self._stopping:
                continue
            terms = dict(now=now, gpus=len(server.gpus), idle_timeout=server.idle_timeout,
                         lease=server.lease, gpu_idle_since=gpu_idle_since(sample, server),
                         warn_before=self.warn_before, ends=server.ends)
            started, last_activity = self._known.get(server.container_id, (server.created, None))
            if decide(started=started, last_activity=last_activity, **terms).action is Action.KEEP:
                continue
            try:
                model = await self.hub.server(server.user, server.server)
            except Exception as error:  # one server's trouble must not stop the others' checks
                self.log.warning("GPU reclaim: the hub did not say how %s is (%s); asking again "
                                 "at the next check", holder_name(server), error)
                continue
            if model is None or model.get("pending") or not model.get("ready"):
                continue  # starting or stopping: not ours to judge yet
            started = max(server.created, epoch(model.get("started")) or 0.0)
            last_activity = epoch(model.get("last_activity"))
            self._known[server.container_id] = (started, last_activity)
            verdict = decide(started=started, last_activity=last_activity, **terms)
            if verdict.action is Action.WARN:
                key = (server.user, server.server)
                if key not in self.warnings:
                    self.log.info("%s: %s; the user is warned", holder_name(server), verdict.reason)
                warnings[key] = verdict
            elif verdict.action is Action.RECLAIM:
                stops.append(self.reclaim(server, verdict, now))
        self.warnings = warnings
        await asyncio.gather(*stops)  # together: the hub may take 10 s to answer each

    async def reclaim(self, server: Server, verdict: Verdict, now: float) -> None:
        name = holder_name(server)
        self._stopping.add(server.container_id)  # later checks skip it until its container is gone
        try:
            await self.hub.stop(server.user, server.server)
        except HTTPClientError as error:  # e.g. 400: a stop or start is pending; try again next time
            self._stopping.discard(server.container_id)
            self.log.warning("Could not stop %s (%s): %s", name, verdict.reason, error)
            return
        self.log.warning("Stopped %s, holding GPU(s) %s: %s; files kept",
                         name, ", ".join(server.gpus) or "none", verdict.reason)
        record = Reclaim(now, server.user, server.server, server.gpus, verdict.kind.value, verdict.reason)
        await asyncio.to_thread(self.record.write, record)

    async def run(self) -> None:
        await every(self.interval, self.check, self.log, "GPU reclaim check")
