"""The hub's REST API as the SSH entrance uses it: whose is a token, and start
a user's default server while telling them how it goes. Async (tornado's
HTTP client), with the service's own token (its role: hub/ssh/wiring.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

REQUEST_TIMEOUT = 30.0
START_TIMEOUT = 24 * 3600.0  # the progress stream: the hub ends it when the spawn ends


class StartFailed(Exception):
    """The hub could not start the user's server: the message says why (the hub's words)."""


def token_allows_server(scopes: list[str], user: str, server: str = "") -> bool:
    """A token opens a shell only if it may use that server of the user
    (``access:servers`` for them or for it): a token limited to, say,
    ``read:users`` does not. No I/O."""
    return bool({"access:servers", f"access:servers!user={user}", f"access:servers!server={user}/{server}"}
                & set(scopes))


def server_path(user: str, server: str) -> str:
    """The REST path of a user's default ("") or named server. No I/O."""
    if not server:
        return f"/users/{quote(user, safe='')}/server"
    return f"/users/{quote(user, safe='')}/servers/{quote(server, safe='')}"


class HubAPI:
    def __init__(self, api_url: str, token: str):
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.http = AsyncHTTPClient()

    async def _request(self, method: str, path: str, token: str | None = None, body=None, **kwargs):
        request = HTTPRequest(
            f"{self.api_url}{path}", method=method,
            headers={"Authorization": f"token {token or self.token}"},
            body=None if body is None else json.dumps(body),
            request_timeout=kwargs.pop("request_timeout", REQUEST_TIMEOUT), **kwargs)
        return await self.http.fetch(request, raise_error=False)

    async def token_owner(self, user: str, token: str, server: str = "") -> bool:
        """Whether ``token`` is a valid hub API token of ``user`` that may use that server of theirs."""
        if not token or len(token) > 256 or not token.isascii() or not token.isprintable():
            return False
        response = await self._request("GET", "/user", token=token)
        if response.code != 200:
            return False
        model = json.loads(response.body)
        return model.get("kind", "user") == "user" and model.get("name") == user \
            and token_allows_server(model.get("scopes") or [], user, server)

    async def report_activity(self, user: str, server: str = "") -> bool:
        """Tell the hub that server of the user is in use now (the idle culler reads it)."""
        now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        response = await self._request("POST", f"/users/{quote(user, safe='')}/activity",
                                       body={"last_activity": now, "servers": {server: {"last_activity": now}}})
        return response.code == 204 or response.code == 200

    async def user_exists(self, user: str) -> bool:
        return (await self._request("GET", f"/users/{quote(user, safe='')}")).code == 200

    async def _check_named_server(self, user: str, server: str) -> None:
        response = await self._request("GET", f"/users/{quote(user, safe='')}?include_stopped_servers=1")
        if response.code != 200:
            raise StartFailed(_hub_message(response))
        servers = sorted(name for name in json.loads(response.body).get("servers") or {} if name)
        if server not in servers:
            yours = f"your named servers: {', '.join(servers)}" if servers else "you have none"
            raise StartFailed(f"you have no server named {server!r} ({yours}); "
                              "make it on the hub's home page first, or log in as "
                              f"{user} for your default server")

    async def start_server(self, user: str, server: str, say: Callable[[str], Awaitable[None]]) -> None:
        """Start the user's default ("") or named server with its default options (or
        join a start under way) and relay the hub's progress messages (the queue
        position included) until it is ready. A named server must exist already
        (SSH never makes a new one: a typo would hold a GPU). Raises StartFailed
        with the hub's reason."""
        if server:
            await self._check_named_server(user, server)
        path = server_path(user, server)
        response = await self._request("POST", path, body={})
        if response.code == 400 and b"already running" in response.body:
            return
        if response.code not in (201, 202):  # 400 "pending stop", 403, 404…
            raise StartFailed(_hub_message(response))
        events: asyncio.Queue = asyncio.Queue()
        buffer = b""

        def on_chunk(chunk: bytes) -> None:
            nonlocal buffer
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
                if line.startswith(b"data:"):
                    events.put_nowait(json.loads(line[5:]))

        # the stream ends with the spawn; the spawner's start_timeout bounds it
        stream = asyncio.ensure_future(self.http.fetch(HTTPRequest(
            f"{self.api_url}{path}/progress", headers={"Authorization": f"token {self.token}"},
            streaming_callback=on_chunk, request_timeout=START_TIMEOUT), raise_error=False))
        stream.add_done_callback(lambda _: events.put_nowait(None))
        try:
            while (event := await events.get()) is not None:
                if event.get("message"):
                    await say(event["message"])
                if event.get("failed"):
                    raise StartFailed(event.get("message") or "your server failed to start")
                if event.get("ready"):
                    return
        finally:
            stream.cancel()


def _hub_message(response) -> str:
    try:
        return json.loads(response.body).get("message") or f"HTTP {response.code}"
    except (ValueError, AttributeError, TypeError):
        return f"the hub answered HTTP {response.code}"

