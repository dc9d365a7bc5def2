"""The README's first command, `make up`, on an engine whose default bridge reports no
gateway (conftest.NoGatewayEngine), up to a login page and a spawned server.

Every address and name comes from the test: DOCKER_HOST (the second engine),
GPUHUB_STATE_DIR (a tmp dir), GPUHUB_BIND_URL / GPUHUB_HUB_PORT / GPUHUB_USAGE_PORT /
GPUHUB_SSH_PORT and the proxy's API port (free ports), GPUHUB_NETWORK (unique). The images come from the
shared engine's e2e build (fixture `built`), copied over once, so `make up` finds them
up to date and runs its checks; the hub is stopped by the process group of the
`make up` the test started."""

import os
import secrets
import signal
import socket
import subprocess
import time

import pytest
import requests

from gpuhub.images import versions
from tests.images.conftest import REPO, TEST_PREFIX
from tests.integration.hubrig import fence

pytestmark = pytest.mark.image_build

CATALOG = versions.load()
NOTEBOOK = f"{versions.repository()}:{CATALOG.local.line}"
UP_TIMEOUT = 600  # a first `make up` runs the image checks (and gives up on the registry after 30 s)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def log_in_as_admin(url, state_dir, name="admin"):
    """The admin logs in as README.md says after `make up`: with the password the
    hub generated at its first start (<state dir>/admin_passwords/<name>).
    Returns a browser-like session."""
    password = (state_dir / "admin_passwords" / name).read_text().strip()
    session = requests.Session()
    session.get(f"{url}/hub/login", timeout=30)  # the _xsrf cookie
    login = session.post(f"{url}/hub/login", data={"username": name, "password": password,
                                                   "_xsrf": session.cookies.get("_xsrf", "")},
                         allow_redirects=False, timeout=60)
    assert login.status_code == 302, login.text
    return session


def wait_for(what, probe, timeout, process, log):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"make up exited with {process.returncode} before {what}:\n{log.read_text()[-6000:]}")
        try:
            if probe():
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    pytest.fail(f"no {what} within {timeout} s:\n{log.read_text()[-6000:]}")


@pytest.fixture
def make_up(built, no_gateway_engine, engine_env, tmp_path):
    """`make up` against the no-gateway engine; yields (hub URL, process, log path)."""
    local = CATALOG.local
    no_gateway_engine.copy_images(engine_env, local.debian_base, local.base, NOTEBOOK)
    port = free_port()
    env = {
        **no_gateway_engine.env,
        "GPUHUB_STATE_DIR": str(tmp_path / "state"),
        "GPUHUB_BIND_URL": f"http://127.0.0.1:{port}",
        "GPUHUB_HUB_PORT": str(free_port()),
        "GPUHUB_PROXY_API_URL": f"http://127.0.0.1:{free_port()}",
        "GPUHUB_USAGE_PORT": str(free_port()),
        "GPUHUB_SSH_PORT": str(free_port()),
        "GPUHUB_NETWORK": f"{TEST_PREFIX}-first-run-{secrets.token_hex(3)}",
    }
    env.pop("GPUHUB_IMAGE", None)
    log = tmp_path / "make-up.log"
    with open(log, "w") as out:
        process = subprocess.Popen(["make", "up"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}", process, log
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        print(f"----- make up -----\n{log.read_text()[-4000:]}")
        # `make up` fenced the network on this host; the rules would outlive the test.
        removed = fence("remove", "--network", env["GPUHUB_NETWORK"])
        assert removed.returncode == 0, removed.stderr


def test_make_up_reaches_a_login_page_and_a_spawned_server(make_up, tmp_path):
    url, process, log = make_up
    wait_for("login page", lambda: requests.get(f"{url}/hub/login", timeout=5).status_code == 200, UP_TIMEOUT, process, log)
    output = log.read_text()
    assert "server ready" in output and "after docker run" in output, output  # the start-up check ran here

    assert "admin_passwords/admin" in output  # the log says where the admin's password is
    session = log_in_as_admin(url, tmp_path / "state")
    xsrf = {"X-XSRFToken": session.cookies.get("_xsrf", "")}
    spawn = session.post(f"{url}/hub/api/users/admin/server", json={}, headers=xsrf, timeout=60)
    assert spawn.status_code in (201, 202), spawn.text

    def ready():
        server = session.get(f"{url}/hub/api/users/admin", headers=xsrf, timeout=10).json()["servers"].get("", {})
        return server.get("ready")

    wait_for("spawned server", ready, 300, process, log)
    api = session.get(f"{url}/user/admin/api", timeout=30)
    assert api.status_code == 200 and "version" in api.json(), api.text
