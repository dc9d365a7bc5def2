"""Checks of a built image, run in containers: what it records, the validation gate, start-up time.

Containers started here are named gpuhubimg-* and removed afterwards.
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
from dataclasses import dataclass, field
from pathlib import Path

from .docker_cli import Docker, DockerError

GATE_MOUNT = "/opt/gpuhub-validate"
# The gate needs only the standard library and torch: the base's Python has both,
# on the official images and on the local base alike.
GATE_PYTHON = "/opt/conda/bin/python"
IMAGE_RECORD = "/etc/gpuhub-image.json"
# gpuhubimg-* like every image test container; "build-" keeps them apart from the
# tests' own (which remove theirs by prefix).
CONTAINER_PREFIX = "gpuhubimg-build-"
# The environment JupyterHub gives a single-user server, enough for
# jupyterhub-singleuser to start without a real hub. It must reach a hub API at start
# (jupyterhub 5.5.4 retries for ~45 s, then exits): stand_in_hub() answers for it.
SINGLEUSER_USER = "gpuhubimg"
SINGLEUSER_PREFIX = f"/user/{SINGLEUSER_USER}/"


def singleuser_env(hub_api_url: str, port: int = 8888) -> dict[str, str]:
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
def stand_in_hub(docker: Docker, hub_version: str = ""):
    """A stand-in hub API on the host, on the engine's default bridge gateway (where a
    container reaches the host, as it reaches the real hub); yields its API URL."""
    gateway = docker.run(["network", "inspect", "bridge", "-f", "{{range .IPAM.Config}}{{.Gateway}} {{end}}"]).split()
    if not gateway:
        raise VerifyError("the engine's bridge network has no gateway address to serve a stand-in hub on")
    handler = type("Handler", (_StandInHubHandler,), {"hub_version": hub_version})
    server = http.server.ThreadingHTTPServer((gateway[0], 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{gateway[0]}:{server.server_address[1]}/hub/api"
    finally:
        server.shutdown()
        server.server_close()


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
    # No network: the gate needs none, and on a bridge without DNS every c10d connection
    # to 127.0.0.1 waits on a reverse lookup (images/validate/README.md).
    args = ["run", "--rm", "--name", name, "--network", "none", "--shm-size", "512m",
            "-v", f"{gate_dir.resolve()}:{GATE_MOUNT}:ro"]
    if gpus:
        args += ["--gpus", gpus]
    args += [image, GATE_PYTHON, f"{GATE_MOUNT}/gate.py", "--expect-torch", expect_torch, "--json"]
    started = time.monotonic()
    result = docker.call(args, timeout=timeout)
    seconds = time.monotonic() - started
    report = _last_json(result.stdout)
    output = (result.stdout + result.stderr).strip()
    passed = result.returncode == 0 and (not isinstance(report, dict) or report.get("ok", True) is True)
    gate = GateResult(passed, result.returncode, report, output[-4000:], seconds)
    gate.summary = summarize_gate(gate)
    return gate


def summarize_gate(gate: GateResult) -> str:
    """One line: passed/failed, counts of passed/skipped/failed checks (naming the
    skipped and failed ones), the throughput figure."""
    verdict = "passed" if gate.passed else f"FAILED (exit {gate.exit_code})"
    parts = [f"validation gate {verdict} in {gate.seconds:.0f}s"]
    checks = _checks(gate.report)
    if checks:
        by_status = {status: [name for name, s in checks if s == status] for status in ("PASS", "SKIP", "FAIL")}
        counts = f"{len(by_status['PASS'])} checks passed"
        if by_status["SKIP"]:
            counts += f", {len(by_status['SKIP'])} skipped ({', '.join(by_status['SKIP'])})"
        if by_status["FAIL"]:
            counts += f", {len(by_status['FAIL'])} failed ({', '.join(by_status['FAIL'])})"
        parts.append(counts)
    throughput = find_throughput(gate.report)
    if throughput:
        parts.append(f"throughput {throughput}")
    if not gate.passed and not checks:
        last = next((line for line in reversed(gate.output.splitlines()) if line.strip()), "")
        parts.append(last[:200])
    return "; ".join(parts)


def find_throughput(report) -> str | None:
    """The gate's throughput figure: {"throughput": {"steps_per_second", "device"}} as gate.py
    prints it, else the first value under a key naming throughput."""
    if isinstance(report, dict):
        for key, value in report.items():
            if "throughput" not in key.lower() or value is None or isinstance(value, (bool, list)):
                continue
            if isinstance(value, dict):
                if "steps_per_second" in value:
                    return f"{value['steps_per_second']} steps/s on {value.get('device', '?')}"
                if "value" in value:
                    return f"{value['value']} {value.get('unit') or ''}".strip()
                continue
            return f"{value} {report.get(f'{key}_unit') or report.get('unit') or ''}".strip()
        for value in report.values():
            found = find_throughput(value) if isinstance(value, (dict, list)) else None
            if found:
                return found
    elif isinstance(report, list):
        for item in report:
            found = find_throughput(item)
            if found:
                return found
    return None


def measure_startup(docker: Docker, image: str, hub_version: str = "", timeout: float = 60) -> float:
    """Seconds from `docker run` of the image (its own CMD, jupyterhub-singleuser, with
    the environment a spawner gives it and a stand-in hub) until its /api answers 200,
    polled from the host on the container's address."""
    with stand_in_hub(docker, hub_version) as hub_api_url:
        return _measure_startup(docker, image, hub_api_url, timeout)


def _measure_startup(docker: Docker, image: str, hub_api_url: str, timeout: float) -> float:
    name = f"{CONTAINER_PREFIX}startup-{secrets.token_hex(4)}"
    env_args = [arg for key, value in singleuser_env(hub_api_url).items() for arg in ("-e", f"{key}={value}")]
    started = time.monotonic()
    docker.run(["run", "-d", "--name", name, *env_args, image], timeout=60)
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


def _checks(report) -> list[tuple[str, str]]:
    """(name, PASS|SKIP|FAIL) from the gate's JSON: {"checks": [{"name", "status", ...}]} as
    gate.py prints it; also {"checks": {"name": {"status"|"ok"|"passed"}|bool}}."""
    if not isinstance(report, dict):
        return []
    checks = report.get("checks")
    items = checks.items() if isinstance(checks, dict) else ((c.get("name", "?"), c) for c in checks or [] if isinstance(c, dict))
    pairs = []
    for name, value in items:
        if isinstance(value, dict):
            value = value.get("status", value.get("ok", value.get("passed")))
        if isinstance(value, bool):
            value = "PASS" if value else "FAIL"
        value = str(value).upper()
        pairs.append((name, {"OK": "PASS", "PASSED": "PASS", "SKIPPED": "SKIP"}.get(value, value if value in ("PASS", "SKIP") else "FAIL")))
    return pairs


__all__ = [
    "DockerError",
    "GateResult",
    "VerifyError",
    "image_record",
    "measure_startup",
    "run_gate",
    "singleuser_env",
    "stand_in_hub",
]
