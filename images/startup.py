"""The start-up check of a built image: `docker run` of its own CMD (jupyterhub-singleuser)
with the environment a spawner gives it, until its /api answers 200.

jupyterhub-singleuser 5.5.4 asks the hub API for its version at start and exits when
no hub answers, so a stand-in hub API runs on the host for it. The stand-in listens on
the gateway of a network the check creates for itself (a fresh name per run, removed
afterwards) -- not the engine's default bridge: some engines (Debian's docker.io 20.10
once its bridge interface already exists) report no gateway for it, and the check
could not place the stand-in hub at all. Containers are named gpuhubimg-build-* and
removed afterwards.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import secrets
import threading
import time
import urllib.error
import urllib.request

from .docker_cli import Docker, DockerError

# gpuhubimg-build-<random>: each run removes exactly the containers it started.
CONTAINER_PREFIX = "gpuhubimg-build-"
NETWORK_PREFIX = "gpuhubimg-check-"
SINGLEUSER_USER = "gpuhubimg"
SINGLEUSER_PREFIX = f"/user/{SINGLEUSER_USER}/"


class VerifyError(RuntimeError):
    """An image failed a check; the message says which, why, and what to do."""


def singleuser_env(hub_api_url: str, port: int = 8888) -> dict[str, str]:
    """The environment JupyterHub gives a single-user server, enough to start without a real hub."""
    return {
        "JUPYTERHUB_API_TOKEN": secrets.token_hex(16),
        "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{SINGLEUSER_USER}",
        "JUPYTERHUB_API_URL": hub_api_url,
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_USER": SINGLEUSER_USER,
        "JUPYTERHUB_SERVICE_PREFIX": SINGLEUSER_PREFIX,
        "JUPYTERHUB_SERVICE_URL": f"http://0.0.0.0:{port}{SINGLEUSER_PREFIX}",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{SINGLEUSER_PREFIX}oauth_callback",
        "JUPYTERHUB_HOST": "",
    }


@contextlib.contextmanager
def check_network(docker: Docker):
    """A bridge network of the check's own, with a gateway (the host's address on it);
    yields (name, gateway) and removes the network afterwards."""
    name = f"{NETWORK_PREFIX}{secrets.token_hex(4)}"
    try:
        docker.run(["network", "create", "--driver", "bridge", "--label", "org.gpuhub.images-check=1", name], timeout=60)
    except DockerError as e:
        raise VerifyError(f"could not create the check's network {name} ({e}); the engine at {docker.engine} "
                          "must be able to create bridge networks: free an address pool (docker network prune) "
                          "or give dockerd a --default-address-pool") from None
    try:
        gateways = docker.run(["network", "inspect", name, "-f", "{{range .IPAM.Config}}{{.Gateway}} {{end}}"]).split()
        if not gateways:
            raise VerifyError(f"the engine at {docker.engine} created network {name} without a gateway address, "
                              "so no stand-in hub can listen for the image; create networks with --gateway on this engine")
        yield name, gateways[0].split("/")[0]
    finally:
        docker.call(["network", "rm", name])


class _StandInHubHandler(http.server.BaseHTTPRequestHandler):
    """Answers the single-user server's start-up request to the hub API (GET /hub/api)."""

    hub_version = ""

    def do_GET(self):
        body = json.dumps({"version": self.hub_version}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-JupyterHub-Version", self.hub_version)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def stand_in_hub(address: str, hub_version: str = ""):
    """A stand-in hub API on the host at address (a network's gateway); yields its API URL."""
    handler = type("Handler", (_StandInHubHandler,), {"hub_version": hub_version})
    try:
        server = http.server.ThreadingHTTPServer((address, 0), handler)
    except OSError as e:
        raise VerifyError(f"cannot listen on {address} for the stand-in hub ({e}): is this the host the engine runs on?") from None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{address}:{server.server_address[1]}/hub/api"
    finally:
        server.shutdown()
        server.server_close()


def measure_startup(docker: Docker, image: str, hub_version: str = "", timeout: float = 60) -> float:
    """Seconds from `docker run` of the image (its own CMD, jupyterhub-singleuser, with
    the environment a spawner gives it and a stand-in hub) until its /api answers 200,
    polled from the host on the container's address."""
    with check_network(docker) as (network, gateway), stand_in_hub(gateway, hub_version) as hub_api_url:
        return _measure_startup(docker, image, network, hub_api_url, timeout)


def _measure_startup(docker: Docker, image: str, network: str, hub_api_url: str, timeout: float) -> float:
    name = f"{CONTAINER_PREFIX}startup-{secrets.token_hex(4)}"
    env_args = [arg for key, value in singleuser_env(hub_api_url).items() for arg in ("-e", f"{key}={value}")]
    started = time.monotonic()
    docker.run(["run", "-d", "--name", name, "--network", network, *env_args, image], timeout=60)
    try:
        address = container_address(docker, name)
        url = f"http://{address}:8888{SINGLEUSER_PREFIX}api"
        polls = 0
        while time.monotonic() - started < timeout:
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            polls += 1
            if polls % 20 == 0:  # about once a second: did the server die?
                state = docker.run(["inspect", "-f", "{{.State.Status}}", name]).strip()
                if state != "running":
                    raise VerifyError(f"the server exited before answering ({state}); its last log lines: {_logs_tail(docker, name)}")
            time.sleep(0.05)
        raise VerifyError(f"{url} did not answer within {timeout:.0f}s; its last log lines: {_logs_tail(docker, name)}")
    finally:
        docker.call(["rm", "-f", name])


def container_address(docker: Docker, name: str) -> str:
    address = docker.run(["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name]).split()
    if not address:
        raise VerifyError(f"container {name} has no IP address")
    return address[0]


def _logs_tail(docker: Docker, name: str) -> str:
    result = docker.call(["logs", "--tail", "5", name])
    return " | ".join((result.stdout + result.stderr).strip().splitlines())
