"""One service per state dir, none without its hub: the pid-file take-over and
the parent watch, with real processes."""

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from gpuhub.hub.gpu_usage import lifecycle

LOG = logging.getLogger("test")


def sleeper(*marker: str) -> subprocess.Popen:
    """A process that sleeps, with ``marker`` in its command line."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", *marker])


def gone(process: subprocess.Popen, timeout: float = 15) -> bool:
    try:
        process.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def test_a_starting_service_stops_the_older_copy(tmp_path):
    old = sleeper("-m", "gpuhub.hub.gpu_usage")
    pid_file = tmp_path / "gpu_usage.pid"
    pid_file.write_text(f"{old.pid}\n")
    try:
        lifecycle.take_over(pid_file, LOG)
        assert gone(old, timeout=1) and old.returncode == -signal.SIGTERM
    finally:
        old.kill()
    assert pid_file.read_text().strip() == str(os.getpid())
    assert pid_file.stat().st_mode & 0o777 == 0o600


def test_an_older_copy_that_ignores_sigterm_is_killed(tmp_path):
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(120)"
    old = subprocess.Popen([sys.executable, "-c", code, "gpuhub.hub.gpu_usage"], stdout=subprocess.PIPE)
    old.stdout.readline()  # SIGTERM is ignored from here on
    pid_file = tmp_path / "gpu_usage.pid"
    pid_file.write_text(str(old.pid))
    try:
        lifecycle.take_over(pid_file, LOG, timeout=0.5)
        assert gone(old, timeout=1) and old.returncode == -signal.SIGKILL
    finally:
        old.kill()


@pytest.mark.parametrize("argument", ["something-else", "tests/unit/test_gpuhub.hub.gpu_usage.py"])
def test_another_program_with_a_reused_pid_is_left_alone(tmp_path, argument):
    other = sleeper(argument)  # not the service, even if its command line mentions it
    pid_file = tmp_path / "gpu_usage.pid"
    pid_file.write_text(str(other.pid))
    try:
        lifecycle.take_over(pid_file, LOG)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
    assert pid_file.read_text().strip() == str(os.getpid())


def test_stale_or_garbled_pid_files_are_replaced(tmp_path):
    pid_file = tmp_path / "gpu_usage.pid"
    for content in ("", "not a pid", "999999999"):
        pid_file.write_text(content)
        lifecycle.take_over(pid_file, LOG)
        assert pid_file.read_text().strip() == str(os.getpid())
    lifecycle.release(pid_file)
    assert not pid_file.exists()
    pid_file.write_text("1")
    lifecycle.release(pid_file)  # not ours: kept
    assert pid_file.read_text() == "1"


CHILD = textwrap.dedent("""
    import asyncio, logging, os, sys
    from gpuhub.hub.gpu_usage import lifecycle

    async def main():
        stop = asyncio.Event()
        parent = os.getppid()
        open(sys.argv[1], "w").write("watching")
        await lifecycle.watch_parent(parent, stop, logging.getLogger(), interval=0.1)
        open(sys.argv[1], "w").write("stopped")

    asyncio.run(main())
""")
PARENT = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]]); time.sleep(120)"


def test_the_service_stops_when_its_hub_is_killed(tmp_path):
    marker = tmp_path / "child-stopped"
    hub = subprocess.Popen([sys.executable, "-c", PARENT, CHILD, str(marker)])
    def wait_for(text):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if marker.exists() and marker.read_text() == text:
                return True
            time.sleep(0.1)
        return False

    try:
        assert wait_for("watching")
        hub.send_signal(signal.SIGKILL)
        hub.wait()
        assert wait_for("stopped")
    finally:
        hub.kill()

