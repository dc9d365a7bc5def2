"""The Ansible tests' target: a fresh Debian with systemd as PID 1, in a
container on the private test engine, and the plumbing around it.

- ``base_image()``: Debian bookworm from ``debootstrap`` (no registry), imported
  once and kept in the engine as ``BASE_IMAGE`` (cached: later runs take ~2 s).
- ``Target``: one container of it, started with exactly the options the
  issue names (``--privileged`` fails on this machine), plus ``--sysctl
  net.ipv4.ip_forward=1`` because /proc/sys is read-only in a container and
  the target's own dockerd refuses to start unless forwarding is on already.
- The target reaches the package registries only through ``egress_proxy``
  (the test engine gives containers no route out); the test configures apt
  and pip in the target for that, and the hub's unit gets the fake NVML
  through a drop-in only the test writes. The roles know none of this.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.integration.hubrig import PREFIX, REPO, free_port, wait_for

BASE_IMAGE = "gpuhub-test/ansible-target-base:bookworm"
BASE_PACKAGES = "systemd,systemd-sysv,dbus,python3"
MIRROR = "http://deb.debian.org/debian"
# What the target may reach through the proxy: Debian's and PyPI's hosts.
REGISTRIES = "deb.debian.org,pypi.org,files.pythonhosted.org"
ANSIBLE_BIN = REPO / ".venv-ansible" / "bin"
PLAYBOOK = REPO / "ansible" / "site.yml"
FAKES = "/opt/gpuhub-fakes"

RUN_OPTIONS = [
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--cgroupns", "host", "--stop-signal", "SIGRTMIN+3",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
    "--sysctl", "net.ipv4.ip_forward=1",
]


def docker(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True, **kwargs)


def base_image() -> str:
    """The target's base image, made with debootstrap the first time."""
    if docker("image", "inspect", BASE_IMAGE, check=False).returncode == 0:
        return BASE_IMAGE
    if not shutil.which("debootstrap"):
        raise RuntimeError("debootstrap is missing: apt-get install debootstrap (make test does)")
    with tempfile.TemporaryDirectory(prefix="gpuhub-target-") as rootfs:
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", rootfs, MIRROR],
            check=True, capture_output=True, text=True,
        )
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "import", "-c", 'CMD ["/sbin/init"]', "-", BASE_IMAGE],
            stdin=tar.stdout, check=True, capture_output=True,
        )
        if tar.wait() != 0:
            raise RuntimeError("tar of the debootstrap root failed")
    return BASE_IMAGE


def bridge_gateway() -> str:
    """The host's address on the test engine's default bridge."""
    out = docker("network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}").stdout
    return json.loads(out)[0]["Gateway"]


class EgressProxy:
    """tests/ansible/egress_proxy.py on the bridge address; stopped by its PID."""

    def __init__(self):
        self.address = bridge_gateway()
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.ansible.egress_proxy", self.address, str(self.port), REGISTRIES],
            cwd=REPO,
        )
        wait_for(self._listening, "the egress proxy to listen", timeout=30)

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def _listening(self) -> bool:
        import socket

        with socket.socket() as s:
            return s.connect_ex((self.address, self.port)) == 0

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


@dataclass
class Target:
    """One target container (``<prefix>-ansible-<name>``), with its volume."""

    name: str
    mounts: tuple[str, ...] = ()

    @property
    def container(self) -> str:
        return f"{PREFIX}-ansible-{self.name}"

    def start(self, proxy: EgressProxy | None = None):
        self.remove()
        volume = f"{self.container}-docker"
        docker("volume", "create", volume)
        mounts = [arg for mount in self.mounts for arg in ("-v", mount)]
        docker("run", "-d", "--name", self.container, "--hostname", self.name, *RUN_OPTIONS,
               "-v", f"{volume}:/var/lib/docker", *mounts, base_image())
        wait_for(self._booted, f"systemd in {self.container} to boot", timeout=60)
        if proxy:
            self.write("/etc/apt/apt.conf.d/90gpuhub-test-proxy", f'Acquire::http::Proxy "{proxy.url}";\n')
            self.write("/etc/pip.conf", f"[global]\nproxy = {proxy.url}\ncert = /etc/gpuhub-test/ca-certificates.crt\n")

    def _booted(self) -> bool:
        state = self.exec("systemctl", "is-system-running", check=False).stdout.strip()
        return state in ("running", "degraded")

    def exec(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return docker("exec", self.container, *argv, check=check)

    def write(self, path: str, text: str):
        docker("exec", "-i", self.container, "sh", "-c", f"mkdir -p {Path(path).parent} && cat > {path}", input=text)

    def ip(self) -> str:
        return docker("inspect", "--format", "{{.NetworkSettings.IPAddress}}", self.container).stdout.strip()

    def changes(self) -> list[str]:
        """Files changed against the image (`docker diff`), /var/log and /tmp aside."""
        lines = docker("diff", self.container).stdout.splitlines()
        return sorted(line for line in lines if not line.split(" ", 1)[1].startswith(("/var/log", "/tmp")))

    def remove(self):
        docker("rm", "-f", self.container, check=False)
        docker("volume", "rm", "-f", f"{self.container}-docker", check=False)

    def inventory(self, path: Path, settings: dict) -> Path:
        """An inventory for this target: the docker connection and ``settings`` as host vars."""
        host = {"ansible_connection": "community.docker.docker", "ansible_host": self.container, **settings}
        path.write_text(json.dumps({"gpuhub_servers": {"hosts": {"target": host}}}, indent=2))
        return path


def ansible_playbook(inventory: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run site.yml; output in the result (stdout and stderr together)."""
    if not (ANSIBLE_BIN / "ansible-playbook").exists():
        raise RuntimeError("ansible is missing: make .venv-ansible/.installed")
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible" / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_FORCE_COLOR": "0", "PATH": f"{ANSIBLE_BIN}:{os.environ['PATH']}"}
    started = time.monotonic()
    result = subprocess.run(
        [str(ANSIBLE_BIN / "ansible-playbook"), "-i", str(inventory), str(PLAYBOOK), *args],
        cwd=REPO / "ansible", env=env, capture_output=True, text=True, timeout=timeout,
    )
    result.seconds = time.monotonic() - started
    result.output = result.stdout + result.stderr
    return result


def recap(output: str) -> dict[str, int]:
    """The PLAY RECAP counts of host "target": {"ok": …, "changed": …, "failed": …}."""
    for line in output.splitlines():
        if line.startswith("target ") and "changed=" in line:
            return {k: int(v) for k, v in (pair.split("=") for pair in line.split(":", 1)[1].split())}
    raise AssertionError(f"no PLAY RECAP for target in:\n{output[-3000:]}")
