"""The SSH entrance's application: settings (traitlets), the host key, the listener.

Started by the hub (``c.JupyterHub.services``, :mod:`.wiring`) as
``python -m gpuhub.hub.ssh``; the hub gives it JUPYTERHUB_API_URL and its
token. Settings on the command line (``--SshEntranceApp.port=8022``, what the
wiring passes) or the variables of :data:`ENVIRONMENT` (used only when set).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import asyncssh
from traitlets import Float, Int, Unicode, default
from traitlets.config import Application, Config

from gpuhub.hub.environment import settings_from_environment
from gpuhub.hub.gpu_usage.lifecycle import watch_parent

from . import SERVICE_NAME
from .engine import Engine, EngineError
from .hub_api import HubAPI
from .server import Entrance, EntranceServer
from .throttle import Throttle

LOGIN_TIMEOUT = 60  # seconds from connect to logged in


def ensure_host_key(path: Path) -> asyncssh.SSHKey:
    """The entrance's host key: made once (Ed25519, 0600), then always the same,
    so clients' known_hosts stay valid across restarts."""
    if not path.exists():
        key = asyncssh.generate_private_key("ssh-ed25519", comment=f"{SERVICE_NAME} host key")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(key.export_private_key())
    return asyncssh.read_private_key(str(path))


class SshEntranceApp(Application):
    name = SERVICE_NAME
    description = "SSH into your own gpuhub server: keys from ~/.ssh/authorized_keys, or a hub API token."

    port = Int(8022, min=1, max=65535, help="""TCP port of the SSH entrance, one for every user.
        Default 8022 (GPUHUB_SSH_PORT).

        c.SshEntranceApp.port = 8022
        """).tag(config=True)

    ip = Unicode("", help="""Address the entrance listens on; "" (the default): every address
        of the host (GPUHUB_SSH_IP).

        c.SshEntranceApp.ip = "10.0.0.2"
        """).tag(config=True)

    host_key_file = Unicode("", help="""The entrance's private host key (Ed25519), created at
        the first start (0600). The wiring puts it in the hub's state dir.

        c.SshEntranceApp.host_key_file = "/srv/gpuhub/ssh_host_ed25519_key"
        """).tag(config=True)

    hub_id = Unicode("", help="""This hub's id (label gpuhub.hub): only its containers are entered.

        c.SshEntranceApp.hub_id = "gpuhub-3f2a"
        """).tag(config=True)

    prefix = Unicode("gpuhub", help="""The spawner's name prefix (GPUDockerSpawner.prefix).

        c.SshEntranceApp.prefix = "gpuhub"
        """).tag(config=True)

    image = Unicode("", help="""An image on the engine with which the user's home volume is
        opened (never started) to read authorized_keys when their server is stopped: the
        spawner's image.

        c.SshEntranceApp.image = "gpuhub/pytorch-notebook:2.6-cuda12.4"
        """).tag(config=True)

    home = Unicode("/home/jovyan", help="""The home directory in the user's container (where
        the home volume is mounted); keys are read from HOME/.ssh/authorized_keys.

        c.SshEntranceApp.home = "/home/jovyan"
        """).tag(config=True)

    home_volume = Unicode("{prefix}-user-{username}", help="""The spawner's volume name template
        of the home volume; with the labels gpuhub.hub and gpuhub.user it finds the
        volume of a stopped server.

        c.SshEntranceApp.home_volume = "{prefix}-user-{username}"
        """).tag(config=True)

    shell = Unicode("/bin/bash", help="""The shell run in the user's container (login shell for
        ssh without a command; SHELL -c COMMAND with one).

        c.SshEntranceApp.shell = "/bin/bash"
        """).tag(config=True)

    free_failures = Int(3, min=0, help="""Failed logins (per address, per user name) answered
        without delay; each further one doubles the wait (1 s, 2 s, … max_delay).
        Default 3.

        c.SshEntranceApp.free_failures = 3
        """).tag(config=True)

    max_failures = Int(10, min=1, help="""Failed logins from one address in failure_window
        after which it is refused until the window passes (a user name: 3 times as many).
        Default 10 (GPUHUB_SSH_MAX_FAILURES).

        c.SshEntranceApp.max_failures = 10
        """).tag(config=True)

    failure_window = Float(900.0, min=1, help="""Seconds a failed login counts. Default 900.

        c.SshEntranceApp.failure_window = 900
        """).tag(config=True)

    max_delay = Float(10.0, min=0, help="""Longest wait before a login attempt is answered. Default 10 s.

        c.SshEntranceApp.max_delay = 10
        """).tag(config=True)

    @default("log_level")
    def _default_log_level(self):
        return logging.INFO  # the start line names the port and the host key's fingerprint

    def initialize(self, argv=None):
        environment = Config()  # environment first, so the command line (the hub's wiring) wins
        try:
            settings_from_environment(environment, ENVIRONMENT, os.environ)
        except ValueError as error:
            self.exit_with(str(error))
        self.update_config(environment)
        super().initialize(argv)
        for name in ("host_key_file", "hub_id", "image"):
            if not getattr(self, name):
                self.exit_with(f"{name} is not set: the hub starts this service (hub/ssh/wiring.py)")
        if not os.environ.get("JUPYTERHUB_API_URL") or not os.environ.get("JUPYTERHUB_API_TOKEN"):
            self.exit_with("JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN are not set: "
                           "the hub starts this service (hub/ssh/wiring.py)")
        logging.getLogger("gpuhub.ssh").setLevel(logging.INFO)
        logging.basicConfig(format="[%(levelname)1.1s %(asctime)s gpuhub-ssh] %(message)s")
        logging.getLogger("asyncssh").setLevel(logging.WARNING)

    def exit_with(self, message: str):
        self.log.critical(message)
        self.exit(1)

    async def serve(self):
        try:
            engine = Engine(self.hub_id, self.prefix, self.image, self.home, self.home_volume)
        except EngineError as error:
            self.exit_with(str(error))
        entrance = Entrance(
            engine=engine,
            hub=HubAPI(os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"]),
            throttle=Throttle(free_failures=self.free_failures, max_failures=self.max_failures,
                              window=self.failure_window, max_delay=self.max_delay),
            shell=self.shell)
        host_key = ensure_host_key(Path(self.host_key_file))
        listener = await asyncssh.create_server(
            lambda: EntranceServer(entrance), self.ip or None, self.port,
            server_host_keys=[host_key],
            encoding=None, line_editor=False, allow_pty=True,
            agent_forwarding=False, x11_forwarding=False, login_timeout=LOGIN_TIMEOUT)
        # users compare this with what their client shows at the first connection
        self.log.info("SSH entrance on port %s (ssh -p %s USER@HUB), host key %s", self.port, self.port,
                      host_key.get_fingerprint())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        watcher = asyncio.ensure_future(watch_parent(os.getppid(), stop, self.log, service=SERVICE_NAME))
        await stop.wait()
        watcher.cancel()
        listener.close()
        await listener.wait_closed()

    def start(self):
        asyncio.run(self.serve())


ENVIRONMENT = {
    "GPUHUB_SSH_PORT": (SshEntranceApp, "port"),
    "GPUHUB_SSH_IP": (SshEntranceApp, "ip"),
    "GPUHUB_SSH_MAX_FAILURES": (SshEntranceApp, "max_failures"),
}

main = SshEntranceApp.launch_instance
