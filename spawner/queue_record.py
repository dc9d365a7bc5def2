"""The GPU queue on disk: who was waiting when the hub stopped, so each can be told.

Waiting starts live in the hub's memory (``waiting_line.py``); a hub that
stops cancels them. The pool writes the line to ``queue_file`` as it changes
(on the pool's thread, one write per moment of changes); at its next start
the hub reads what was left and tells each of those users, once, on the spawn
form, that their place was lost and nothing is held for them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os

from .allocator import ServerKey
from .waiting_line import WaitingLine


class QueueRecord:
    def __init__(self, path: str, line: WaitingLine, log: logging.Logger, run):
        """``run(function, *args)``: awaits ``function`` on the pool's thread."""
        self.path, self._line, self.log, self._run = path, line, log, run
        self._notices: dict[ServerKey, str] = {}
        self._saving: asyncio.Future | None = None
        self._loading: asyncio.Future | None = None

    def save(self) -> None:
        if self.path and self._saving is None:
            self._saving = asyncio.ensure_future(self._save_soon())

    async def _save_soon(self) -> None:
        try:
            await asyncio.sleep(0)  # the joins and leaves of this moment, in one write
            self._saving = None
            waiting = [
                {"user": t.key.user, "server": t.key.server, "position": n}
                for n, t in enumerate(self._line.tickets(), 1)
            ]
            await self._run(_write_json, self.path, waiting)
        except Exception as error:
            self.log.warning("Could not write the GPU queue to %s: %s", self.path, error)

    def start_loading(self) -> None:
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load())

    async def _load(self) -> None:
        if not self.path:
            return
        try:
            waiting = await self._run(_read_json, self.path)
        except Exception as error:  # a damaged file is reported, and replaced by the next write
            self.log.warning("Could not read the GPU queue left in %s: %s", self.path, error)
            return
        for entry in waiting or []:
            key = ServerKey(entry["user"], entry["server"])
            self._notices[key] = (
                f"The hub restarted while your server{' ' + key.server if key.server else ''} "
                f"was waiting for a GPU (position {entry['position']}): your place in the queue "
                "was lost, and no GPU is held for you. Press Start to join the queue again."
            )
        if self._notices:
            self.log.warning(
                "The hub restarted with %d start(s) waiting for GPUs (%s): their places are "
                "lost; each is told at the next visit", len(self._notices),
                ", ".join(map(str, self._notices)),
            )
            await self._run(_write_json, self.path, [])

    async def notice_for(self, key: ServerKey) -> str:
        """What happened to this server's last start while the hub was away (said once)."""
        if self._loading is not None:
            await asyncio.shield(self._loading)
        return self._notices.pop(key, "")


def _write_json(path: str, value) -> None:
    """Replace the file at once (a hub killed mid-write leaves the old one)."""
    temporary = f"{path}.tmp"
    with open(temporary, "w") as file:
        json.dump(value, file)
    os.replace(temporary, path)


def _read_json(path: str):
    try:
        with open(path) as file:
            return json.load(file)
    except FileNotFoundError:
        return None
