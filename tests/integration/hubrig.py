"""A real JupyterHub process for the tests: config/jupyterhub_config.py plus a
test override dropped into its jupyterhub_config.d, the real
configurable-http-proxy, the private Docker engine, and fake GPUs (NVML only).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import docker
import jupyterhub
import requests
from jupyterhub.utils import exponential_backoff

from tests.fakes.fake_gpus import FakeNVML

REPO = Path(__file__).resolve().parents[2]
# Containers and volumes the tests create (and remove); set GPUHUB_TEST_PREFIX
# to run two test sessions side by side on one engine.
PREFIX = os.environ.get("GPUHUB_TEST_PREFIX", "gpuhubtest")
NETWORK = "gpuhub-test"


def local_port_range() -> str:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return f"{low}:{high}"


# Test hubs take their hub port from free_port(), i.e. the kernel's ephemeral
# range; the test network's fence opens that range on its gateway, so every
# test hub on it (several sessions share it) passes the start-up fence check.
HUB_PORTS = local_port_range()
IMAGE = f"gpuhub/test-notebook:{jupyterhub.__version__}"  # same jupyterhub as the hub

OVERRIDE = """
# Test overrides: written by tests/integration/hubrig.py
c.JupyterHub.services.append({{"name": "gpuhub-tests", "api_token": {token!r}}})
c.JupyterHub.load_roles.append({{
    "name": "gpuhub-tests",
    "scopes": ["admin:users", "admin:servers", "admin:groups", "tokens", "access:servers"],
    "services": ["gpuhub-tests"],
}})
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.GPUDockerSpawner.image = {image!r}
c.GPUDockerSpawner.prefix = {prefix!r}
c.GPUDockerSpawner.gpu_quota = 2
c.GPUDockerSpawner.mem_limit = "1G"
c.GPUDockerSpawner.cpu_limit = 1.0
c.GPUDockerSpawner.default_url = "/tree"
c.GPUDockerSpawner.group_overrides = {{
    "10-researchers": {{
        "groups": ["researchers"],
        "spawner_override": {{"gpu_quota": 4, "mem_limit": "2G", "pids_limit": 2048}},
    }},
}}
"""


# A hub without the GPU queue: a start that finds no free GPU is refused at once (409).
NO_QUEUE = "c.GPUDockerSpawner.queue_timeout = 0\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, what: str, timeout: float = 60):
    """Poll ``predicate`` with JupyterHub's exponential backoff until truthy.

    Runs its own event loop on a worker thread, so it also works where the
    calling thread already runs one (Playwright's sync API does).
    """
    backoff = exponential_backoff(predicate, f"Timed out after {timeout}s: {what}", timeout=timeout)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, backoff).result()


@dataclass
class Hub:
    workdir: Path
    nvml: FakeNVML
    extra_config: str = ""
    prefix: str = PREFIX  # another hub on the engine: other_prefix()
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    port: int = field(default_factory=free_port)
    hub_port: int = field(default_factory=free_port)  # stable: servers keep talking to it
    proxy_api_port: int = field(default_factory=free_port)
    usage_port: int = field(default_factory=free_port)  # the gpu-usage service
    ssh_port: int = field(default_factory=free_port)  # the SSH entrance
    network: str = NETWORK
    hub_ports: str = HUB_PORTS  # what the network's fence opens (GPUHUB_FENCE_HUB_PORTS)
    extra_env: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    _admin_session: requests.Session | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "hub.log"

    def write_config(self):
        config_d = self.workdir / "config.d"
        config_d.mkdir(parents=True, exist_ok=True)
        override = OVERRIDE.format(
            token=self.token,
            proxy_api_port=self.proxy_api_port,
            image=IMAGE,
            prefix=self.prefix,
        )
        (config_d / "90-tests.py").write_text(override + textwrap.dedent(self.extra_config))

    def environment(self) -> dict:
        env = self.nvml.env()
        env.update(
            GPUHUB_STATE_DIR=str(self.workdir / "state"),
            GPUHUB_CONFIG_D=str(self.workdir / "config.d"),
            GPUHUB_NETWORK=self.network,
            GPUHUB_FENCE_HUB_PORTS=self.hub_ports,
            GPUHUB_BIND_URL=self.url,
            GPUHUB_HUB_PORT=str(self.hub_port),
            GPUHUB_USAGE_PORT=str(self.usage_port),
            GPUHUB_SSH_PORT=str(self.ssh_port),
            GPUHUB_SERVICE_ENV="FAKE_NVML_STATE",  # the fake GPUs reach the gpu-usage service
            GPUHUB_ADMIN="admin",
            PYTHONFAULTHANDLER="1",  # a crash of the hub prints its Python stack in its log
            PATH=f"{REPO / 'node_modules' / '.bin'}:{Path(sys.executable).parent}:{env['PATH']}",
        )
        env.update(self.extra_env)
        return env

    def start(self):
        self.write_config()
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(REPO / "config" / "jupyterhub_config.py")],
            cwd=self.workdir,
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._answers, f"hub at {self.url} (log: {self.log_path})", timeout=60)
        return self

    def _answers(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"hub exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            return requests.get(f"{self.url}/hub/api/", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self):
        """Kill the hub the hard way; its proxy and servers keep running."""
        self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    def log_tail(self, lines: int = 80) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # ---- REST API ----------------------------------------------------------
    def api(self, method: str, path: str, token: str | None = None, **kwargs):
        headers = {"Authorization": f"token {token or self.token}"}
        return requests.request(
            method, f"{self.url}/hub/api{path}", headers=headers, timeout=120, **kwargs
        )

    def create_users(self, *names: str, groups: tuple[str, ...] = ()):
        response = self.api("POST", "/users", json={"usernames": list(names)})
        assert response.status_code in (201, 409), response.text
        for group in groups:
            self.api("POST", f"/groups/{group}")
            response = self.api("POST", f"/groups/{group}/users", json={"users": list(names)})
            assert response.status_code == 200, response.text

    def user_token(self, name: str) -> str:
        response = self.api("POST", f"/users/{name}/tokens", json={"note": "tests"})
        assert response.status_code == 201, response.text
        return response.json()["token"]

    @property
    def admin_password(self) -> str:
        """The admin's password, generated by the hub at its first start."""
        return (self.workdir / "state" / "admin_passwords" / "admin").read_text().strip()

    def login(self, name: str, password: str = "gpuhub-Test-pass-1") -> requests.Session:
        """A browser-like session: sign up through NativeAuthenticator, get the
        admin's approval, log in. Returns the session (cookies, _xsrf).
        The admin logs in with the password the hub generated (``password`` unused)."""
        session = requests.Session()
        session.get(f"{self.url}/hub/login", timeout=30)  # the _xsrf cookie
        if name == "admin":
            password = self.admin_password
        else:
            signup = {"username": name, "signup_password": password,
                      "signup_password_confirmation": password}
            assert self.form_post(session, "/hub/signup", signup).status_code == 200
            admin = self._admin_session or self.login("admin")
            self._admin_session = admin
            approved = admin.get(f"{self.url}/hub/authorize/{name}", timeout=30)
            assert approved.status_code == 200, approved.text
        response = self.form_post(session, "/hub/login", {"username": name, "password": password})
        assert response.status_code == 302, response.text
        return session

    def form_post(self, session: requests.Session, path: str, fields: dict) -> requests.Response:
        """POST a form the way a browser does, with the _xsrf token."""
        return session.post(
            f"{self.url}{path}",
            data={**fields, "_xsrf": session.cookies.get("_xsrf", "")},
            allow_redirects=False,
            timeout=60,
        )

    def spawn(self, name: str, options=None) -> requests.Response:
        return self.api("POST", f"/users/{name}/server", json=options or {})

    def server(self, name: str) -> dict | None:
        return self.api("GET", f"/users/{name}").json()["servers"].get("")

    def wait_spawn(self, name: str, timeout: float = 180) -> tuple[str, str]:
        """Wait until a requested spawn is ready or failed: ("ready"|"failed", message)."""
        message = ""
        for event in progress_events(self.api("GET", f"/users/{name}/server/progress", stream=True)):
            message = event.get("message", message)
            if event.get("ready"):
                return "ready", message
            if event.get("failed"):
                return "failed", message
        server = self.server(name)
        return ("ready" if server and server["ready"] else "failed"), message

    def start_server(self, name: str, options=None) -> dict:
        response = self.spawn(name, options)
        assert response.status_code in (201, 202), f"{response.status_code} {response.text}"
        state, message = self.wait_spawn(name)
        assert state == "ready", message
        return self.server(name)

    def stop_server(self, name: str):
        response = self.api("DELETE", f"/users/{name}/server")
        assert response.status_code in (202, 204), response.text
        wait_for(lambda: self.server(name) is None, f"{name}'s server to stop", timeout=60)


def progress_events(response: requests.Response):
    """The events of a progress stream (``GET …/server/progress``), as they come."""
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("data:"):
            yield json.loads(line[5:])


POSITION = re.compile(r"position (\d+) in the queue")


class Progress:
    """Follows one pending spawn's progress events (the spawn page's EventSource)."""

    def __init__(self, hub, name: str):
        self.events: list[dict] = []
        self._response = hub.api("GET", f"/users/{name}/server/progress", stream=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            for event in progress_events(self._response):
                self.events.append(event)
        except Exception:  # the hub went away: the events so far stay
            pass

    def position(self) -> int | None:
        for event in reversed(self.events):
            found = POSITION.search(event.get("message", ""))
            if found:
                return int(found.group(1))
        return None

    def messages(self) -> list[str]:
        return [event.get("message", "") for event in self.events]

    def close(self):
        self._response.close()


def other_prefix(n: int = 2) -> str:
    """The prefix of a further hub in one test: disjoint from PREFIX's names
    ("x-ann" must not start with "x-"), removed by remove_test_objects."""
    return f"{PREFIX}{n}"


_TEST_NAMES = re.compile(rf"^{re.escape(PREFIX)}[0-9]?-")


FENCE_COMMAND = [sys.executable, "-m", "gpuhub.hub.cli", "fence"]


def fence(*args: str) -> subprocess.CompletedProcess:
    """Run ``gpuhub fence …`` (the real command; needs root, like the hub's check)."""
    return subprocess.run(
        [*FENCE_COMMAND, *args],
        capture_output=True, text=True, timeout=120,
    )


def fence_test_network():
    """Create the tests' network and fence it (idempotent; left in place after
    the session, since test sessions side by side share the network)."""
    result = fence("apply", "--network", NETWORK, "--hub-ports", HUB_PORTS)
    if result.returncode != 0:
        raise RuntimeError(f"gpuhub fence apply failed:\n{result.stdout}{result.stderr}")


def docker_client() -> docker.DockerClient:
    return docker.from_env()


def container_of(client: docker.DockerClient, user: str):
    return client.containers.get(f"{PREFIX}-{user}")


def gpus_of(container) -> list[str]:
    requests_ = container.attrs["HostConfig"].get("DeviceRequests") or []
    return [uuid for request in requests_ for uuid in request.get("DeviceIDs") or []]


@contextlib.contextmanager
def running_hub(workdir: Path, gpus: int, **hub_fields):
    """A module's hub on ``gpus`` fake GPUs of its own (``hub_fields`` go to Hub);
    stopped after, with the engine's test objects. The test-scoped twin is
    tests/conftest.py's ``start_hub``."""
    nvml = FakeNVML(workdir / "gpus.state")
    nvml.write(FakeNVML.make_gpus(gpus))
    hub = Hub(workdir=workdir, nvml=nvml, **hub_fields)
    try:
        yield hub.start()
    finally:
        hub.stop()
        remove_test_objects(docker_client())


def remove_test_objects(client: docker.DockerClient):
    """Remove the tests' containers, then their volumes.

    A container may already be on its way out (auto-remove after a stop):
    Docker then answers 404 or 409, and we wait for it to be gone.
    """
    def containers():
        listed = client.containers.list(all=True, filters={"name": f"^{PREFIX}"})
        return [c for c in listed if _TEST_NAMES.match(c.name)]

    for container in containers():
        try:
            container.remove(force=True)
        except docker.errors.APIError as error:
            if error.status_code not in (404, 409):
                raise
    wait_for(lambda: not containers(), f"{PREFIX}-* containers to be removed", timeout=60)
    for volume in client.volumes.list(filters={"name": PREFIX}):
        if not _TEST_NAMES.match(volume.name):
            continue
        try:
            volume.remove(force=True)
        except docker.errors.NotFound:
            pass
