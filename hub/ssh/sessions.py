"""What a logged-in SSH connection may do, all of it inside the user's own
container (``docker exec`` as its non-root user): a shell (with a TTY when the
client asks: window size followed), a command with its exit status, the
``sftp`` subsystem (the image's ``sftp-server``, also what ``scp`` uses), and
local port forwards to the container's own loopback, relayed by a small
Python process in the container, so that the connection starts in the user's
network namespace and nowhere else.

The server is started through the hub when it is not running (the hub's
progress messages on the client's stderr).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import asyncssh

from .engine import Container, Engine, EngineError, ExecStream
from .hub_api import HubAPI, StartFailed

log = logging.getLogger("gpuhub.ssh")

# Where Debian, Ubuntu and RHEL put OpenSSH's SFTP server (package openssh-sftp-server).
SFTP_SERVER = r"""
for p in /usr/lib/openssh/sftp-server /usr/lib/sftp-server /usr/libexec/openssh/sftp-server /usr/libexec/sftp-server; do
  [ -x "$p" ] && exec "$p"
done
echo "gpuhub ssh: this server's image has no SFTP server (Debian package openssh-sftp-server): sftp and scp cannot work; ssh and ssh -L do" >&2
exit 127
"""

# A byte stream between its stdin/stdout and 127.0.0.1:PORT, run by the
# container's own Python; b"\0" first means connected.
RELAY = r"""
import os, socket, sys, threading
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
except OSError as e:
    sys.stderr.write(f"{e}\n"); sys.exit(1)
s.settimeout(None)
os.write(1, b"\0")
def up():
    while True:
        d = os.read(0, 65536)
        if not d: break
        s.sendall(d)
    s.shutdown(socket.SHUT_WR)
threading.Thread(target=up, daemon=True).start()
while True:
    d = s.recv(65536)
    if not d: break
    os.write(1, d)
"""
LOOPBACK = {"localhost": "127.0.0.1", "127.0.0.1": "127.0.0.1", "::1": "::1", "ip6-localhost": "::1"}


class SessionError(Exception):
    """Told to the user on stderr; the session ends with exit status 1."""


@dataclass
class UserServer:
    """The one user's server behind one SSH connection: found, or started once."""

    user: str
    engine: Engine
    hub: HubAPI
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def container(self, say) -> Container:
        async with self._lock:  # two channels opened at once start the server once
            found = await self.engine.find(self.user)
            if found is not None:
                return found
            await say(f"Your server is not running: starting it (user {self.user}) …")
            try:
                await self.hub.start_server(self.user, say)
            except StartFailed as error:
                raise SessionError(f"your server could not start: {error}") from None
            found = await self.engine.find(self.user)
            if found is None:
                raise SessionError("the hub says your server runs, but its container is not there; "
                                   "stop and start it from the hub's home page")
            await say("Your server is ready.")
            return found


def exec_command(process: asyncssh.SSHServerProcess, shell: str) -> tuple[list[str], bool]:
    """What to run for this channel, and whether with a TTY. No I/O."""
    tty = process.get_terminal_type() is not None
    if process.subsystem == "sftp":
        return ["/bin/sh", "-c", SFTP_SERVER], False
    if process.subsystem:
        raise SessionError(f"subsystem {process.subsystem!r} is not offered (only sftp)")
    if process.command is not None:
        return [shell, "-c", process.command], tty
    return [shell, "-l"], tty


async def run_session(process: asyncssh.SSHServerProcess, server: UserServer, shell: str) -> None:
    """The handler of one session channel: shell, command or sftp in the user's container."""
    newline = "\r\n" if process.get_terminal_type() else "\n"

    async def say(message: str) -> None:
        process.stderr.write(f"{message}{newline}".encode())

    try:
        command, tty = exec_command(process, shell)
        container = await server.container(say)
        environment = {"TERM": process.get_terminal_type()} if tty else {}
        exec_id, stream = await server.engine.exec(container, command, tty=tty, environment=environment)
    except (SessionError, EngineError) as error:
        await say(f"gpuhub ssh: {error}")
        process.exit(1)
        return
    if tty:
        width, height, _, _ = process.get_terminal_size()
        await server.engine.resize(exec_id, width, height)
    feeding = asyncio.ensure_future(_feed(process, stream, server.engine, exec_id))
    try:
        while (chunk := await stream.read()) is not None:
            fd, data = chunk
            (process.stderr if fd == 2 else process.stdout).write(data)
            await (process.stderr if fd == 2 else process.stdout).drain()
        status = await server.engine.exit_code(exec_id)
    except (asyncssh.Error, ConnectionError, BrokenPipeError):
        status = 255  # the client went away
    finally:
        feeding.cancel()
        stream.close()
    process.exit(status)


async def _feed(process, stream: ExecStream, engine: Engine, exec_id: str) -> None:
    """Client → process: stdin bytes, window size changes, end of input."""
    try:
        while True:
            try:
                data = await process.stdin.read(65536)
            except asyncssh.TerminalSizeChanged as change:
                await engine.resize(exec_id, change.width, change.height)
                continue
            if not data:
                break
            await stream.write(data)
        stream.close_stdin()
    except (asyncssh.Error, ConnectionError, BrokenPipeError):
        stream.close()


def forward_destination(host: str, port: int) -> tuple[str, int]:
    """Where inside the container a local forward (``ssh -L``) may go: its own
    loopback, any port. Anything else is refused. No I/O."""
    if host.lower() not in LOOPBACK or not 0 < port < 65536:
        raise asyncssh.ChannelOpenError(
            asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
            f"only ports of your own server can be forwarded: -L LOCAL:localhost:PORT (not {host}:{port})")
    return LOOPBACK[host.lower()], port


def forward_handler(server: UserServer, host: str, port: int):
    """A stream handler that connects the channel to ``host:port`` inside the container."""
    async def relay(reader: asyncssh.SSHReader, writer: asyncssh.SSHWriter) -> None:
        async def quiet(_message: str) -> None:
            pass  # no terminal to tell: the server starts silently

        stream = None
        try:
            container = await server.container(quiet)
            _exec_id, stream = await server.engine.exec(
                container, ["python3", "-c", RELAY, host, str(port)], tty=False)
            first = await stream.read()
            if first is None or first[0] != 1 or not first[1].startswith(b"\0"):
                log.info("ssh -L for %s to %s:%s: not connected (%s)", server.user, host, port,
                         first[1].decode(errors="replace").strip() if first else "no answer")
                return
            if len(first[1]) > 1:
                writer.write(first[1][1:])
            feeding = asyncio.ensure_future(_copy_in(reader, stream))
            try:
                while (chunk := await stream.read()) is not None:
                    if chunk[0] == 1:
                        writer.write(chunk[1])
                        await writer.drain()
            finally:
                feeding.cancel()
        except (SessionError, EngineError) as error:
            log.info("ssh -L for %s refused: %s", server.user, error)
        except (asyncssh.Error, ConnectionError):
            pass
        finally:
            if stream is not None:
                stream.close()
            writer.close()
    return relay


async def _copy_in(reader: asyncssh.SSHReader, stream: ExecStream) -> None:
    try:
        while data := await reader.read(65536):
            await stream.write(data)
        stream.close_stdin()
    except (asyncssh.Error, ConnectionError):
        stream.close()
