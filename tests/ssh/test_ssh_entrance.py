"""The SSH entrance (hub/ssh) on a real hub, engine and containers, with the
system's OpenSSH client (and asyncssh's client where a password is typed).

One hub for the module. Failed logins are throttled per source address, so
the tests that fail on purpose connect from their own loopback addresses
(127.0.0.2, 127.0.0.3): the others stay unslowed.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from pathlib import Path

import asyncssh
import pytest

from tests.fakes.fake_gpus import FakeNVML
from tests.integration.hubrig import PREFIX, Hub, remove_test_objects

ACCOUNT_PASSWORD = "gpuhub-Test-pass-1"


@pytest.fixture(scope="module")
def hub(engine, nvml_library, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ssh-hub")
    nvml = FakeNVML(workdir / "gpus.state")
    nvml.write(FakeNVML.make_gpus(1))
    hub = Hub(workdir=workdir, nvml=nvml, extra_env={"GPUHUB_SSH_MAX_FAILURES": "6"})
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()
        remove_test_objects(engine)


def keypair(folder: Path, name: str) -> Path:
    key = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


def authorize(engine, user: str, key: Path):
    """The user puts a public key into ~/.ssh/authorized_keys of their server (as from JupyterLab)."""
    container = engine.containers.get(f"{PREFIX}-{user}")
    public = key.with_suffix(".pub").read_text().strip()
    result = container.exec_run(
        ["sh", "-c", 'mkdir -p ~/.ssh && chmod 700 ~/.ssh && printf "%s\\n" "$1" >> ~/.ssh/authorized_keys', "sh", public],
        user="1000")
    assert result.exit_code == 0, result.output


def ssh(hub: Hub, user: str, key: Path, *command: str, options=(), source="127.0.0.1", timeout=240):
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}  # only the test's key
    return subprocess.run(
        ["ssh", "-p", str(hub.ssh_port), "-b", source, "-i", str(key), "-o", "IdentitiesOnly=yes",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
         "-o", "LogLevel=ERROR", "-F", "/dev/null", *options, f"{user}@127.0.0.1", *command],
        capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def alice(hub, engine, tmp_path_factory):
    """alice: a server with her key authorized, and a hub account password."""
    hub.login("alice", ACCOUNT_PASSWORD)  # a real account: the password works on the login page
    hub.start_server("alice")
    key = keypair(tmp_path_factory.mktemp("alice-keys"), "alice")
    authorize(engine, "alice", key)
    return key


def test_key_login_lands_in_own_server_as_notebook_user(hub, engine, alice):
    started = time.monotonic()
    result = ssh(hub, "alice", alice, "whoami; echo $JUPYTERHUB_USER; hostname")
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    whoami, name, hostname = result.stdout.split()
    assert (whoami, name) == ("jovyan", "alice")
    # her container (Docker sets the hostname to the id's start), not another one
    assert engine.containers.get(f"{PREFIX}-alice").id.startswith(hostname)
    print(f"ssh alice@hub whoami (server running): {took:.2f} s")
    assert ssh(hub, "alice", alice, "exit 7").returncode == 7  # the command's exit status


def test_stdin_and_stderr(hub, alice):
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    result = subprocess.run(
        ["ssh", "-p", str(hub.ssh_port), "-i", str(alice), "-o", "IdentitiesOnly=yes", "-F", "/dev/null",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
         "-o", "LogLevel=ERROR", "alice@127.0.0.1", "wc -c; echo oops >&2"],
        input="x" * 100_000, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "100000"
    assert "oops" in result.stderr
