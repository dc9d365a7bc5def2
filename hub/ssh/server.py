"""Who may log in over SSH: asyncssh's server callbacks, one object per connection.

The SSH user name is the hub user name (``alice``: her default server), or
``alice/lab`` for her named server ``lab`` ("/" is never part of a hub user
name). Accepted: a public key listed in
the user's own ``~/.ssh/authorized_keys`` (their home volume, read through
the engine), or one of the user's hub API tokens as the password (the
convention of jupyterhub-ssh). Never the account's password, which the
entrance never sees. A name the hub does not know and a wrong key get the
same answer. Failed attempts are throttled (:mod:`.throttle`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import asyncssh

from .engine import Engine, EngineError
from .hub_api import HubAPI
from .sessions import BridgeSession, UserServer, forward_destination, forward_handler
from .throttle import Throttle

log = logging.getLogger("gpuhub.ssh")
ALLOWED_KEY_OPTIONS = {"from"}  # the others (command=, permitopen=, no-pty…) are not enforced here


@dataclass
class Entrance:
    """What every connection shares."""

    engine: Engine
    hub: HubAPI
    throttle: Throttle
    shell: str


def key_allowed(keys: asyncssh.SSHAuthorizedKeys | None, key: asyncssh.SSHKey, address: str,
                user: str) -> bool:
    """Whether ``key`` is listed for logins from ``address``. A listed key with
    options this entrance does not enforce (command=, permitopen=, no-pty…) is
    refused: a key limited to one command must not open a shell. No I/O."""
    options = keys.validate(key, address, address) if keys is not None else None
    if options is None:
        return False
    unenforced = set(options) - ALLOWED_KEY_OPTIONS
    if unenforced:
        log.warning("%s's key %s is refused: its options %s are not enforced by the SSH entrance "
                    "(only from= is)", user, key.get_fingerprint(), sorted(unenforced))
        return False
    return True


def parse_login(name: str) -> tuple[str, str] | None:
    """(hub user, server name) of an SSH user name: ``alice`` -> ("alice", ""),
    ``alice/lab`` -> ("alice", "lab"); None when it names no server. No I/O."""
    user, slash, server = name.partition("/")
    if not user or (slash and not server) or "/" in server:
        return None
    return user, server


def parse_keys(text: str, user: str) -> asyncssh.SSHAuthorizedKeys | None:
    """The keys of an authorized_keys file; a line asyncssh cannot read is skipped. No I/O."""
    good = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            asyncssh.import_authorized_keys(line)
            good.append(line)
        except (asyncssh.KeyImportError, ValueError) as error:
            log.info("%s's authorized_keys line %d skipped: %s", user, number, error)
    return asyncssh.import_authorized_keys("\n".join(good)) if good else None


class EntranceServer(asyncssh.SSHServer):
    def __init__(self, entrance: Entrance):
        self.entrance = entrance
        self.peer = ("", 0)
        self.user = ""  # the hub user: what failures are counted against
        self.server_name: str | None = None  # None: the SSH user name names no server
        self.server: UserServer | None = None
        self.attempted = False
        self.counted = False  # a password failure was counted: the connection is not counted again
        self.authenticated = False
        self.blocked = False
        self._keys: asyncio.Future | None = None

    # ---- connection ----------------------------------------------------
    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        self.peer = conn.get_extra_info("peername") or ("", 0)

    def connection_lost(self, exc) -> None:
        if self.server is not None:
            self.server.close()
        if self.attempted and not self.authenticated and not self.counted and not self.blocked:
            self.entrance.throttle.record_failure(self.peer[0], self.user, time.monotonic())
            log.info("SSH login as %r from %s failed", self.user, self.peer[0])

    async def begin_auth(self, username: str) -> bool:
        self.user, self.server_name = parse_login(username) or (username, None)
        throttle, now = self.entrance.throttle, time.monotonic()
        wait = throttle.blocked_for(self.peer[0], self.user, now)
        if wait:
            self.blocked = True
            self.conn.send_auth_banner(
                f"Too many failed logins: try again in {int(wait // 60) + 1} min.\n")
            log.warning("SSH login as %r from %s refused: too many failed attempts", username, self.peer[0])
            return True
        await asyncio.sleep(throttle.delay(self.peer[0], self.user, now))
        return True

    def auth_completed(self) -> None:
        self.authenticated = True
        self.server = UserServer(self.user, self.server_name, self.entrance.engine, self.entrance.hub)
        log.info("SSH login as %s%s from %s", self.user, f" (server {self.server_name})" if self.server_name else "",
                 self.peer[0])

    # ---- keys ------------------------------------------------------------
    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        self.attempted = True
        if self.blocked:
            return False
        if self._keys is None:  # once per connection: clients offer several keys
            self._keys = asyncio.ensure_future(self._load_keys())
        keys = await self._keys
        return key_allowed(keys, key, self.peer[0], self.user)

    async def _load_keys(self) -> asyncssh.SSHAuthorizedKeys | None:
        """The keys in the user's home volume (one for all their servers)."""
        user = self.user
        try:
            if self.server_name is None or not await self.entrance.hub.user_exists(user):
                return None
            container = await self.entrance.engine.find(user, self.server_name)  # None: from the volume
            return parse_keys(await self.entrance.engine.authorized_keys(user, container), user)
        except (EngineError, OSError) as error:
            log.warning("%s's authorized_keys could not be read: %s", user, error)
            return None

    # ---- tokens as passwords ---------------------------------------------
    def password_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        self.attempted = True
        throttle, source, user = self.entrance.throttle, self.peer[0], self.user
        if self.blocked or throttle.blocked_for(source, user, time.monotonic()):
            self.blocked = True
            return False
        if self.counted:  # a second try on this connection: begin_auth waited for the first
            await asyncio.sleep(throttle.delay(source, user, time.monotonic()))
        if self.server_name is not None and await self.entrance.hub.token_owner(user, password, self.server_name):
            return True
        throttle.record_failure(source, user, time.monotonic())
        self.counted = True
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    # ---- channels --------------------------------------------------------
    def session_requested(self) -> BridgeSession:
        return BridgeSession(self.server, self.entrance.shell)

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int):
        host, port = forward_destination(dest_host, dest_port)
        return forward_handler(self.server, host, port)

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return False  # ssh -R: nothing listens on the hub for a user
