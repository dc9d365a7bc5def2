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
# A TTY's process sets the window size itself before the user's command runs (a
# resize through the engine comes after the exec has started, too late for a
# command that reads the size at once; Docker 20.10's exec start takes no console
# size), then says its PID (the same through exec). The client's resizes are
# applied only after the PID is read, so none is overwritten by this first size.
SAY_PID = 'stty rows "$1" cols "$2" 2>/dev/null; echo "$$"; shift 2; exec "$@"'
ACTIVITY_INTERVAL = 300  # seconds; the idle culler's timeout is an hour by default
LOOPBACK = {"localhost": "127.0.0.1", "127.0.0.1": "127.0.0.1", "::1": "::1", "ip6-localhost": "::1"}


class SessionError(Exception):
    """Told to the user on stderr; the session ends with exit status 1."""


@dataclass
class UserServer:
    """The one user's server behind one SSH connection: found, or started once."""

    user: str
    name: str  # "": the default server
    engine: Engine
    hub: HubAPI
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _activity: asyncio.Task | None = None

    async def container(self, say) -> Container:
        async with self._lock:  # two channels opened at once start the server once
            found = await self.engine.find(self.user, self.name)
            if found is None:
                found = await self._start(say)
            if self._activity is None:
                self._activity = asyncio.ensure_future(self._report_activity())
            return found

    async def _report_activity(self) -> None:
        """While the connection is open, the server counts as in use for the idle
        culler (an SSH session does not pass the proxy, which records the browser's)."""
        while True:
            if not await self.hub.report_activity(self.user, self.name):
                log.warning("Could not report %s's SSH activity to the hub", self.user)
            await asyncio.sleep(ACTIVITY_INTERVAL)

    def close(self) -> None:
        if self._activity is not None:
            self._activity.cancel()

    async def _start(self, say) -> Container:
        await say(f"Your server {self.name + ' ' if self.name else ''}is not running: "
                  f"starting it (user {self.user}) …")
        try:
            await self.hub.start_server(self.user, self.name, say)
        except StartFailed as error:
            raise SessionError(f"your server could not start: {error}") from None
        found = await self.engine.find(self.user, self.name)
        if found is None:
            raise SessionError("the hub says your server runs, but its container is not there; "
                               "stop and start it from the hub's home page")
        await say("Your server is ready.")
        return found


class BridgeSession(asyncssh.SSHServerSession):
    """One session channel (asyncssh's callback API, which leaves the ``sftp``
    subsystem to us): collects what the client asks for (pty, shell, command,
    subsystem), then runs it in the user's container and copies both ways with
    flow control (the client's window, the engine connection's buffer)."""

    def __init__(self, server: UserServer, shell: str):
        self.server, self.shell = server, shell
        self.chan: asyncssh.SSHServerChannel | None = None
        self.term: str | None = None
        self.size = (0, 0)
        self.command: str | None = None
        self.subsystem: str | None = None
        self.stream: ExecStream | None = None
        self.exec_id = ""
        self.inbox: asyncio.Queue = asyncio.Queue()  # bytes, ("size", w, h), or None (end of input)
        self.writable = asyncio.Event()
        self.writable.set()
        self.task: asyncio.Task | None = None

    # ---- what the client asks -----------------------------------------------
    def connection_made(self, chan) -> None:
        self.chan = chan

    def pty_requested(self, term_type, term_size, term_modes) -> bool:
        self.term, self.size = term_type, (term_size[0], term_size[1])
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self.command = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        self.subsystem = subsystem
        return subsystem == "sftp"

    def session_started(self) -> None:
        self.task = asyncio.ensure_future(self.run())
        self.task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("SSH session of %s failed", self.server.user, exc_info=task.exception())
            try:
                self.chan.write_stderr(b"gpuhub ssh: internal error (in the entrance's log)\n")
                self.chan.exit(255)
            except (BrokenPipeError, OSError):
                pass  # the client has gone

    # ---- client → process ---------------------------------------------------
    def data_received(self, data: bytes, datatype) -> None:
        self.inbox.put_nowait(data)
        if self.inbox.qsize() > 64:  # the engine side is slower: hold the client back
            self.chan.pause_reading()

    def eof_received(self) -> bool:
        self.inbox.put_nowait(None)
        return True  # half-open: the process's output still comes back

    def terminal_size_changed(self, width, height, pixwidth, pixheight) -> None:
        self.inbox.put_nowait(("size", width, height))

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc) -> None:
        if self.task is not None:
            self.task.cancel()

    # ---- the process --------------------------------------------------------
    def what_to_run(self) -> tuple[list[str], bool]:
        """The command for this channel, and whether with a TTY. No I/O."""
        tty = self.term is not None
        if self.subsystem == "sftp":
            return ["/bin/sh", "-c", SFTP_SERVER], False
        if self.command is not None:
            return [self.shell, "-c", self.command], tty
        return [self.shell, "-l"], tty

    async def say(self, message: str) -> None:
        self.chan.write_stderr(f"{message}{chr(13) if self.term else ''}\n".encode())

    async def run(self) -> None:
        try:
            command, tty = self.what_to_run()
            container = await self.server.container(self.say)
            environment = {"TERM": self.term} if tty else {}
            if tty:  # its PID: hung up when the client goes (below)
                width, height = self.size
                command = ["/bin/sh", "-c", SAY_PID, "sh", str(height), str(width), *command]
            self.exec_id, self.stream = await self.server.engine.exec(
                container, command, tty=tty, environment=environment)
        except (SessionError, EngineError) as error:
            await self.say(f"gpuhub ssh: {error}")
            self.chan.exit(1)
            return
        pid = await self.read_pid() if tty else None
        feeding = asyncio.ensure_future(self.feed())
        ended = False
        try:
            while (chunk := await self.stream.read()) is not None:
                await self.writable.wait()
                fd, data = chunk
                (self.chan.write_stderr if fd == 2 else self.chan.write)(data)
            ended = True
            status = await self.server.engine.exit_code(self.exec_id)
        except (asyncssh.Error, ConnectionError, BrokenPipeError):
            status = 255
        finally:
            feeding.cancel()
            self.stream.close()
            if pid and not ended:
                # The client went first. Closing the engine's stream does not hang up
                # an exec's terminal (the shell would stay): do what sshd does, SIGHUP.
                await self.server.engine.hang_up(container, pid)
        self.chan.exit(status)

    async def read_pid(self) -> int | None:
        """The PID line SAY_PID prints; output after it goes to the client."""
        buffer = b""
        while b"\n" not in buffer and len(buffer) < 64:
            chunk = await self.stream.read()
            if chunk is None:
                break
            buffer += chunk[1]
        line, _, rest = buffer.partition(b"\n")
        if rest:
            self.chan.write(rest)
        try:
            return int(line.strip())
        except ValueError:
            self.chan.write(buffer if not rest else line)
            return None

    async def feed(self) -> None:
        try:
            while (item := await self.inbox.get()) is not None:
                if isinstance(item, tuple):
                    await self.server.engine.resize(self.exec_id, item[1], item[2])
                    continue
                await self.stream.write(item)
                if self.inbox.qsize() < 16:
                    self.chan.resume_reading()
            self.stream.close_stdin()
        except (ConnectionError, BrokenPipeError):
            self.stream.close()


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
