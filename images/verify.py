"""Checks of a built image, run in containers: what it records and the validation gate
(images/validate/gate.py). The start-up check is startup.py.

Containers started here are named gpuhubimg-build-* and removed afterwards.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from .docker_cli import Docker
from .startup import CONTAINER_PREFIX, VerifyError

GATE_MOUNT = "/opt/gpuhub-validate"
# The gate needs only the standard library and torch: the base's Python has both,
# on the official images and on the local base alike.
GATE_PYTHON = "/opt/conda/bin/python"
IMAGE_RECORD = "/etc/gpuhub-image.json"


@dataclass
class GateResult:
    passed: bool
    exit_code: int
    report: dict | None  # the gate's --json output, when it printed JSON
    output: str  # its whole output (stdout and stderr), for the log
    seconds: float
    summary: str = field(default="")
    first_failure: str = ""  # when a check that can fail by chance failed once and passed on a retry


def image_record(docker: Docker, image: str) -> dict:
    """The image's /etc/gpuhub-image.json (what it really holds)."""
    return json.loads(docker.in_image(image, ["cat", IMAGE_RECORD]))


def run_gate(docker: Docker, image: str, gate_dir: Path, expect_torch: str, gpus: str | None = None, timeout: float = 600) -> GateResult:
    """Run the validation gate (images/validate/gate.py) inside the image."""
    gate = gate_dir / "gate.py"
    if not gate.is_file():
        raise VerifyError(f"the validation gate {gate} does not exist yet; an image cannot be released without it")
    # No network (run_in_image): the gate needs none, and on a bridge without DNS a TCP
    # connection to 127.0.0.1 waits on a reverse lookup (images/validate/README.md).
    docker_args = ["--name", f"{CONTAINER_PREFIX}gate-{secrets.token_hex(4)}", "--shm-size", "512m",
                   "-v", f"{gate_dir.resolve()}:{GATE_MOUNT}:ro", *(["--gpus", gpus] if gpus else [])]
    command = [GATE_PYTHON, f"{GATE_MOUNT}/gate.py", "--expect-torch", expect_torch, "--json"]
    started = time.monotonic()
    result = docker.run_in_image(image, command, docker_args, timeout=timeout)
    seconds = time.monotonic() - started
    report = _last_json(result.stdout)
    output = (result.stdout + result.stderr).strip()
    passed = result.returncode == 0 and (not isinstance(report, dict) or report.get("ok", True) is True)
    gate = GateResult(passed, result.returncode, report, output, seconds)
    gate.summary = summarize_gate(gate)
    return gate


# Checks that can fail by chance: two processes and their sockets on a busy host. One
# failure of only these is retried once; the retry and the first failure are recorded.
RETRIED_ONCE = {"ddp"}


def validate(docker: Docker, image: str, gate_dir: Path, expect_torch: str, gpus: str | None = None, log=print) -> GateResult:
    """run_gate, once more when only a check in RETRIED_ONCE failed."""
    gate = run_gate(docker, image, gate_dir, expect_torch, gpus)
    failed = {name for name, status in _checks(gate.report) if status == "FAIL"}
    if gate.passed or not failed or not failed <= RETRIED_ONCE:
        return gate
    first = failure_text(gate)
    log(f"the gate's {', '.join(sorted(failed))} check failed; it can fail by chance, so the gate runs once more:\n{first}")
    again = run_gate(docker, image, gate_dir, expect_torch, gpus)
    if again.passed:
        again.first_failure = first
        again.summary += f" (on a retry: the first run's {', '.join(sorted(failed))} check failed by chance)"
    return again


def failure_message(image: str, kept: str, gate: GateResult, saved_output: Path) -> str:
    """The whole message of a failed gate: what failed, in whole lines, then what to do."""
    return (
        f"{image} failed the validation gate. {kept}.\nFailed:\n{failure_text(gate)}\n"
        "What to do: fix what the failed checks name (images/validate/README.md says what each one needs), "
        f"then run the build again. The gate's whole output is in {saved_output}."
    )


def failure_text(gate: GateResult, lines: int = 40) -> str:
    """What failed, in whole lines: each failed check with its detail, or (when the gate
    printed no report) the last lines of its output."""
    failed = [c for c in (gate.report or {}).get("checks", []) if isinstance(c, dict) and c.get("status") == "FAIL"] \
        if isinstance(gate.report, dict) else []
    if failed:
        return "\n".join(f"  {c.get('name', '?')}: " + str(c.get("detail", "")).replace("\n", "\n    ") for c in failed)
    return "\n".join("  " + line for line in gate.output.splitlines()[-lines:])


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
