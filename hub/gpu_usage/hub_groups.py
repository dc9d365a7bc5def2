"""The hub's cohorts and teams, asked of its REST API every ``interval``
seconds with the service's token (scopes ``list:groups``, ``read:groups``:
names, members, properties; nothing else). Requests read the last answer; a
cohort nobody knows yet is asked for once more, at most every few seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from tornado.httpclient import AsyncHTTPClient

from .cohorts import Cohort, cohorts_from_groups, group_members
from .warn_once import WarnOnce

PAGINATION = "application/jupyterhub-pagination+json"
PAGE = 200
RECHECK = 5.0  # seconds: an unknown cohort asks the hub again at most this often


class HubGroups:
    def __init__(self, api_url: str, token: str, interval: float, log: logging.Logger | None = None):
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.interval = interval
        self.log = log or logging.getLogger(__name__)
        self.cohorts: dict[str, Cohort] = {}
        self.members: dict[str, frozenset[str]] = {}  # cohort and team groups -> members
        self._fetched = float("-inf")  # monotonic
        self._reading: asyncio.Future | None = None  # the reading under way, shared by its callers
        self._state = WarnOnce(self.log)

    async def fetch(self) -> list[dict]:
        """Every group, page by page."""
        groups, offset = [], 0
        while True:
            answer = await AsyncHTTPClient().fetch(
                f"{self.api_url}/groups?offset={offset}&limit={PAGE}",
                headers={"Authorization": f"token {self.token}", "Accept": PAGINATION},
                request_timeout=60,
            )
            page = json.loads(answer.body)
            groups += page["items"]
            following = (page.get("_pagination") or {}).get("next")
            if not following:
                return groups
            offset = following["offset"]

    async def refresh(self) -> None:
        """Read the groups again; callers while a reading is under way share it
        (one request to the hub, however many pages ask at once)."""
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(self._read())
        await asyncio.shield(self._reading)  # a caller that goes away does not cancel the others'

    async def _read(self) -> None:
        try:
            groups = await self.fetch()
        except Exception as error:  # keep the last answer
            self._state.failed("Cannot read the hub's groups (%s): cohorts are from the last "
                               "answer; the service needs list:groups and read:groups", error)
            return
        finally:
            self._fetched = time.monotonic()
        self._state.worked()
        self.cohorts = cohorts_from_groups(groups)
        self.members = group_members(self.cohorts)

    async def find(self, name: str) -> Cohort | None:
        """The cohort ``name``; an unknown one is looked up again when the last answer is old."""
        if name not in self.cohorts and time.monotonic() - self._fetched > RECHECK:
            await self.refresh()
        return self.cohorts.get(name)

    async def run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.interval)
