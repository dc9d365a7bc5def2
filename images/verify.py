"""Checks of a built image, run in containers: what it records, the validation gate, start-up time.

Containers started here are named gpuhubimg-* and removed afterwards.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .docker_cli import Docker, DockerError

GATE_MOUNT = "/opt/gpuhub-validate"
IMAGE_RECORD = "/etc/gpuhub-image.json"
CONTAINER_PREFIX = "gpuhubimg-"
# The environment JupyterHub gives a single-user server, enough for
# jupyterhub-singleuser to start without a hub: the hub API URL points at a closed
# port (the start-up version check only logs a warning when it cannot reach it).
SINGLEUSER_USER = "gpuhubimg"
SINGLEUSER_PREFIX = f"/user/{SINGLEUSER_USER}/"


def singleuser_env(port: int = 8888) -> dict[str, str]:
    return {
        "JUPYTERHUB_API_TOKEN": secrets.token_hex(16),
        "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{SINGLEUSER_USER}",
        "JUPYTERHUB_API_URL": "http://127.0.0.1:1/hub/api",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_USER": SINGLEUSER_USER,
        "JUPYTERHUB_SERVICE_PREFIX": SINGLEUSER_PREFIX,
        "JUPYTERHUB_SERVICE_URL": f"http://0.0.0.0:{port}{SINGLEUSER_PREFIX}",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{SINGLEUSER_PREFIX}oauth_callback",
        "JUPYTERHUB_HOST": "",
    }


class VerifyError(RuntimeError):
    """An image failed a check; the message says which and why."""


@dataclass
class GateResult:
    passed: bool
    exit_code: int
    report: dict | None  # the gate's --json output, when it printed JSON
    output: str  # its raw output (tail), for the log
    seconds: float
    summary: str = field(default="")


def image_record(docker: Docker, image: str) -> dict:
    """The image's /etc/gpuhub-image.json (what it really holds)."""
    out = docker.run(["run", "--rm", "--network", "none", "--entrypoint", "cat", image, IMAGE_RECORD], timeout=60)
    return json.loads(out)


def run_gate(docker: Docker, image: str, gate_dir: Path, expect_torch: str, gpus: str | None = None, timeout: float = 600) -> GateResult:
    """Run the validation gate (images/validate/gate.py) inside the image."""
    gate = gate_dir / "gate.py"
    if not gate.is_file():
        raise VerifyError(f"the validation gate {gate} does not exist yet; an image cannot be released without it")
    name = f"{CONTAINER_PREFIX}gate-{secrets.token_hex(4)}"
    args = ["run", "--rm", "--name", name, "--shm-size", "512m", "-v", f"{gate_dir.resolve()}:{GATE_MOUNT}:ro"]
    if gpus:
        args += ["--gpus", gpus]
    args += ["--entrypoint", "", image, "python", f"{GATE_MOUNT}/gate.py", "--expect-torch", expect_torch, "--json"]
    started = time.monotonic()
    result = docker.call(args, timeout=timeout)
    seconds = time.monotonic() - started
    report = _last_json(result.stdout)
    output = (result.stdout + result.stderr).strip()
    gate = GateResult(result.returncode == 0, result.returncode, report, output[-4000:], seconds)
    gate.summary = summarize_gate(gate)
    return gate


def summarize_gate(gate: GateResult) -> str:
    """One line: passed/failed, the failing checks, the throughput figure if the gate gave one."""
    verdict = "passed" if gate.passed else f"FAILED (exit {gate.exit_code})"
    parts = [f"validation gate {verdict} in {gate.seconds:.0f}s"]
    checks = _checks(gate.report)
    if checks:
        failed = [name for name, ok in checks if not ok]
        parts.append(f"{len(checks) - len(failed)}/{len(checks)} checks ok" + (f", failed: {', '.join(failed)}" if failed else ""))
    throughput = find_throughput(gate.report)
    if throughput:
        parts.append(f"throughput {throughput}")
    if not gate.passed and not checks:
        last = next((line for line in reversed(gate.output.splitlines()) if line.strip()), "")
        parts.append(last[:200])
    return "; ".join(parts)


def find_throughput(report) -> str | None:
    """The gate's throughput figure: the first key naming throughput, anywhere in its JSON."""
    if isinstance(report, dict):
        for key, value in report.items():
            if "throughput" in key.lower() and not isinstance(value, (dict, list)):
                unit = report.get("unit") or report.get(f"{key}_unit") or ""
                return f"{value} {unit}".strip()
            found = find_throughput(value)
            if found:
                return found
    elif isinstance(report, list):
        for item in report:
            found = find_throughput(item)
            if found:
                return found
    return None


def measure_startup(docker: Docker, image: str, timeout: float = 60) -> float:
    """Seconds from `docker run` of the image (its own CMD, jupyterhub-singleuser) until
    its /api answers HTTP 200, polled from the host on the container's address."""
    name = f"{CONTAINER_PREFIX}startup-{secrets.token_hex(4)}"
    env_args = [arg for key, value in singleuser_env().items() for arg in ("-e", f"{key}={value}")]
    started = time.monotonic()
    docker.run(["run", "-d", "--name", name, *env_args, image], timeout=60)
    try:
        address = container_address(docker, name)
        url = f"http://{address}:8888{SINGLEUSER_PREFIX}api"
        while time.monotonic() - started < timeout:
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            state = docker.run(["inspect", "-f", "{{.State.Status}}", name]).strip()
            if state != "running":
                raise VerifyError(f"the server exited before answering ({state}): {_logs_tail(docker, name)}")
            time.sleep(0.05)
        raise VerifyError(f"{url} did not answer within {timeout:.0f}s: {_logs_tail(docker, name)}")
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


def _last_json(text: str):
    """The gate's JSON: the whole stdout, or else its last line that parses."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    for line in reversed(text.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def _checks(report) -> list[tuple[str, bool]]:
    """(name, ok) pairs from the gate's JSON, for the common shapes: {"checks": [{"name", "ok"|"passed"|"status"}]}
    or {"checks": {"name": {...}|bool}}."""
    if not isinstance(report, dict):
        return []
    checks = report.get("checks")
    pairs = []
    items = checks.items() if isinstance(checks, dict) else ((c.get("name", "?"), c) for c in checks or [] if isinstance(c, dict))
    for name, value in items:
        if isinstance(value, bool):
            pairs.append((name, value))
        elif isinstance(value, dict):
            status = value.get("ok", value.get("passed", value.get("status")))
            pairs.append((name, status in (True, "ok", "pass", "passed", "skip", "skipped")))
    return pairs


__all__ = [
    "DockerError",
    "GateResult",
    "VerifyError",
    "image_record",
    "measure_startup",
    "run_gate",
    "singleuser_env",
]
