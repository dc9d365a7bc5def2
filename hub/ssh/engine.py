"""The Docker engine side of the SSH entrance: a user's running container
(found by the spawner's labels, never by name), processes started in it with
``docker exec`` as the container's own (non-root) user, and the user's
``~/.ssh/authorized_keys`` read without running anything in the container.

JSON calls go through docker-py in a thread; the exec's byte stream is the
engine's hijacked HTTP connection, read and written with asyncio (docker-py's
socket is blocking and may hold bytes read past the HTTP headers).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import secrets
import string
import tarfile
from dataclasses import dataclass
from urllib.parse import urlparse

import docker
import docker.errors

from gpuhub.spawner.labels import HUB_LABEL, SERVER_LABEL, USER_LABEL

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
MAX_KEYS_BYTES = 64 * 1024  # an authorized_keys file larger than this is refused
ROOT_USERS = {"", "0", "root", "0:0", "root:root"}


class EngineError(Exception):
    """Something the user is told (their server has no such program, runs as root…)."""


@dataclass(frozen=True)
class Container:
    id: str
    user: str  # the container's own user (Config.User): every exec runs as it
    address: str  # its address on the hub's network ("" when none)


def engine_address(docker_host: str | None) -> tuple[str, str]:
    """``("unix", path)`` or ``("tcp", "host:port")`` for the exec streams."""
    url = urlparse(docker_host or DEFAULT_DOCKER_HOST)
    if url.scheme == "unix":
        return "unix", url.path
    if url.scheme in ("tcp", "http") and not os.environ.get("DOCKER_TLS_VERIFY"):
        return "tcp", url.netloc
    raise EngineError(f"DOCKER_HOST={docker_host!r}: the SSH entrance talks to the engine over "
                      "unix:// or plain tcp:// (no TLS, no ssh://)")


def volume_pattern(template: str, prefix: str) -> re.Pattern:
    """The spawner's home volume template (``{prefix}-user-{username}``) as a pattern
    on volume names: the prefix literal, the user fields any text. The volume's
    labels say whose it is; the pattern only tells the home from the user's other volumes."""
    parts = []
    for literal, field_name, _spec, _conversion in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field_name is not None:
            parts.append(re.escape(prefix) if field_name == "prefix" else ".+")
    return re.compile("".join(parts))


class Engine:
    """One Docker client for the service; every blocking call runs in a thread."""

    def __init__(self, hub_id: str, prefix: str, image: str, home: str, home_volume: str):
        self.api = docker.from_env().api
        self.kind, self.where = engine_address(os.environ.get("DOCKER_HOST"))
        self.hub_id, self.prefix, self.image, self.home = hub_id, prefix, image, home
        self.home_volume = volume_pattern(home_volume, prefix)

    async def _call(self, method: str, *args, **kwargs):
        return await asyncio.to_thread(getattr(self.api, method), *args, **kwargs)

    def _owned(self, user: str) -> list[str]:
        return [f"{HUB_LABEL}={self.hub_id}", f"{USER_LABEL}={user}"]

    async def find(self, user: str, server: str = "") -> Container | None:
        """The user's running server of this hub ("": the default one), or None."""
        listed = await self._call(
            "containers", filters={"label": [*self._owned(user), f"{SERVER_LABEL}={server}"], "status": "running"})
        for summary in listed:
            labels = summary.get("Labels") or {}
            # the engine's filter, checked again: an exact match of all three labels
            if (labels.get(HUB_LABEL), labels.get(USER_LABEL), labels.get(SERVER_LABEL)) == (self.hub_id, user, server):
                inspected = await self._call("inspect_container", summary["Id"])
                networks = (inspected.get("NetworkSettings") or {}).get("Networks") or {}
                address = next((n.get("IPAddress") for n in networks.values() if n.get("IPAddress")), "")
                return Container(summary["Id"], inspected["Config"].get("User") or "", address)
        return None

    # ---- authorized_keys -------------------------------------------------
    async def authorized_keys(self, user: str, container: Container | None) -> str:
        """The text of the user's ``~/.ssh/authorized_keys`` ("" when there is none).

        Read with the engine's archive API: from the running container, or from a
        container created (never started: nothing runs) on the user's home volume,
        read-only, without network or capabilities, removed at once.
        """
        path = f"{self.home}/.ssh/authorized_keys"
        if container is not None:
            return await self._read_file(container.id, path)
        volume = await self._home_volume_of(user)
        if volume is None:
            return ""
        host_config = self.api.create_host_config(
            binds={volume: {"bind": self.home, "mode": "ro"}}, network_mode="none",
            cap_drop=["ALL"], security_opt=["no-new-privileges:true"], read_only=True)
        reader = await self._call(
            "create_container", self.image, command=["true"], entrypoint=["true"],
            name=f"{self.prefix}-sshkeys-{secrets.token_hex(4)}", labels={HUB_LABEL: self.hub_id},
            host_config=host_config, network_disabled=True)
        try:
            return await self._read_file(reader["Id"], path)
        finally:
            await self._call("remove_container", reader["Id"], force=True)

    async def _home_volume_of(self, user: str) -> str | None:
        listed = (await self._call("volumes", filters={"label": self._owned(user)})).get("Volumes") or []
        for volume in listed:
            labels = volume.get("Labels") or {}
            if (labels.get(HUB_LABEL), labels.get(USER_LABEL)) == (self.hub_id, user) \
                    and self.home_volume.fullmatch(volume["Name"]):
                return volume["Name"]
        return None

    async def _read_file(self, container_id: str, path: str) -> str:
        def read() -> str:
            try:
                chunks, _stat = self.api.get_archive(container_id, path)
            except docker.errors.NotFound:
                return ""
            data = b""
            for chunk in chunks:
                data += chunk
                if len(data) > MAX_KEYS_BYTES + 4096:  # tar header and padding
                    raise EngineError(f"{path} is larger than {MAX_KEYS_BYTES // 1024} KiB")
            with tarfile.open(fileobj=io.BytesIO(data)) as archive:
                member = archive.next()
                # a link is not followed: the engine would resolve it in the container
                if member is None or not member.isfile():
                    return ""
                return archive.extractfile(member).read().decode("utf-8", errors="replace")
        return await asyncio.to_thread(read)

    # ---- exec ------------------------------------------------------------
    async def exec(self, container: Container, command: list[str], *, tty: bool,
                   environment: dict[str, str] | None = None) -> tuple[str, "ExecStream"]:
        """Start ``command`` in the container as its own user; returns the exec id and its stream."""
        if container.user.strip() in ROOT_USERS:
            raise EngineError("your server runs as root: the SSH entrance never opens a root shell")
        created = await self._call(
            "exec_create", container.id, command, stdin=True, stdout=True, stderr=True, tty=tty,
            user=container.user, environment=environment or {})
        stream = await ExecStream.open(self.kind, self.where, created["Id"], tty)
        return created["Id"], stream

    async def hang_up(self, container: Container, pid: int) -> None:
        """SIGHUP to a process of the container (as its user: only the user's own processes;
        the shell's kill, since images need not have /bin/kill)."""
        try:
            created = await self._call("exec_create", container.id, ["/bin/sh", "-c", 'kill -HUP "$1"', "sh", str(pid)],
                                       user=container.user, stdout=False, stderr=False)
            await self._call("exec_start", created["Id"])
        except docker.errors.APIError:
            pass  # the container is gone, and the process with it

    async def resize(self, exec_id: str, width: int, height: int) -> None:
        if width > 0 and height > 0:
            try:
                await self._call("exec_resize", exec_id, height=height, width=width)
            except docker.errors.APIError:
                pass  # the process may have just ended

    async def exit_code(self, exec_id: str) -> int:
        for _ in range(50):  # the stream can close a moment before the engine records the exit
            inspected = await self._call("exec_inspect", exec_id)
            if not inspected.get("Running") and inspected.get("ExitCode") is not None:
                return int(inspected["ExitCode"])
            await asyncio.sleep(0.1)
        return 255


class ExecStream:
    """The hijacked connection of ``POST /exec/{id}/start``: stdin in, stdout and
    stderr out (multiplexed in 8-byte frames unless the exec has a TTY)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tty: bool):
        self.reader, self.writer, self.tty = reader, writer, tty

    @classmethod
    async def open(cls, kind: str, where: str, exec_id: str, tty: bool) -> "ExecStream":
        if kind == "unix":
            reader, writer = await asyncio.open_unix_connection(where)
        else:
            host, _, port = where.rpartition(":")
            reader, writer = await asyncio.open_connection(host.strip("[]"), int(port))
        body = json.dumps({"Detach": False, "Tty": tty}).encode()
        writer.write(
            f"POST /exec/{exec_id}/start HTTP/1.1\r\nHost: docker\r\n"
            "Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1:2]
        if status not in ([b"101"], [b"200"]):
            writer.close()
            raise EngineError(f"the engine refused to start the process: {head.splitlines()[0].decode(errors='replace')}")
        return cls(reader, writer, tty)

    async def read(self) -> tuple[int, bytes] | None:
        """``(1, bytes)`` for stdout, ``(2, bytes)`` for stderr; None at the end."""
        try:
            if self.tty:
                data = await self.reader.read(65536)
                return (1, data) if data else None
            header = await self.reader.readexactly(8)
            return header[0], await self.reader.readexactly(int.from_bytes(header[4:], "big"))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def close_stdin(self) -> None:
        if self.writer.can_write_eof() and not self.writer.is_closing():
            self.writer.write_eof()

    def close(self) -> None:
        self.writer.close()
