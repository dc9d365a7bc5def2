"""The docker CLI, run as a subprocess against whatever engine DOCKER_HOST names.

The CLI rather than the Python SDK: builds use the legacy builder exactly as
`DOCKER_BUILDKIT=0 docker build` does (the CLI may have no buildx, and the SDK's
build would bypass the CLI's handling of a Dockerfile and .dockerignore).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path


class DockerUnavailable(RuntimeError):
    """No docker CLI, or no engine answering; the message says what to do."""


class DockerError(RuntimeError):
    """A docker command failed; the message holds its output's last lines."""


START_ENGINE_HINT = 'start one (for the tests: tests/rig/engine.sh start && eval "$(tests/rig/engine.sh env)") or set DOCKER_HOST'


class Docker:
    """Thin wrapper over the docker CLI. Every call inherits DOCKER_HOST from the environment."""

    def __init__(self, executable: str = "docker"):
        self.executable = executable

    @property
    def engine(self) -> str:
        return os.environ.get("DOCKER_HOST") or "the default socket (DOCKER_HOST is not set)"

    def check(self, timeout: float = 15) -> str:
        """Return the engine's version, or raise DockerUnavailable saying what to do."""
        if shutil.which(self.executable) is None:
            raise DockerUnavailable(
                "docker CLI not found on PATH: install Docker (on Debian: apt-get install docker.io; "
                "for the tests tests/rig/engine.sh start installs it)"
            )
        try:
            result = self.call(["version", "--format", "{{.Server.Version}}"], timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DockerUnavailable(f"the Docker engine at {self.engine} does not answer within {timeout:.0f}s; {START_ENGINE_HINT}") from None
        version = result.stdout.strip()
        if result.returncode != 0 or not version:
            raise DockerUnavailable(f"no Docker engine answers at {self.engine}; {START_ENGINE_HINT}")
        return version

    def run(self, args: list[str], timeout: float | None = None, input: str | None = None) -> str:
        """Run `docker ARGS`; return stdout, raise DockerError with the output's tail on failure."""
        try:
            result = self.call(args, timeout=timeout, input=input)
        except subprocess.TimeoutExpired:
            raise DockerError(f"docker {' '.join(args[:3])} … took longer than {timeout:.0f}s") from None
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise DockerError(f"docker {' '.join(args[:4])} … failed: {' | '.join(tail)}")
        return result.stdout

    def in_image(self, image: str, command: list[str], timeout: float = 120) -> str:
        """Run command in a throwaway container of image (no network, no entrypoint: the
        command alone, as the image's default user); return its stdout, DockerError on failure."""
        result = self.run_in_image(image, command, entrypoint=command[0], timeout=timeout)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise DockerError(f"{' '.join(command[:3])} … in {image} failed (exit {result.returncode}): {' | '.join(tail)}")
        return result.stdout

    def run_in_image(self, image: str, command: list[str], docker_args: list[str] = (), entrypoint: str | None = None,
                     timeout: float | None = None) -> subprocess.CompletedProcess:
        """`docker run --rm --network none [docker_args] image command`, whatever its exit code:
        the one way the pipeline runs commands in images. entrypoint replaces the image's
        (the command's own program, "" for none); None keeps it (tini in the notebook images)."""
        args = ["run", "--rm", "--network", "none", *docker_args]
        if entrypoint is not None:
            args += ["--entrypoint", entrypoint]
            command = command[1:] if entrypoint == command[0] else command
        try:
            return self.call([*args, image, *command], timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DockerError(f"{' '.join(command[:3])} … in {image} took longer than {timeout:.0f}s") from None

    def inspect_image(self, ref: str) -> dict | None:
        """`docker image inspect` as a dict, or None when the engine has no such image."""
        result = self.call(["image", "inspect", ref])
        if result.returncode != 0:
            return None
        return json.loads(result.stdout)[0]

    def labels(self, ref: str) -> dict[str, str]:
        info = self.inspect_image(ref)
        return dict((info or {}).get("Config", {}).get("Labels") or {})

    def tag(self, source: str, target: str) -> None:
        self.run(["tag", source, target])

    def images_labelled(self, repository: str, label: str, value: str) -> list[dict]:
        """Images of repository carrying label=value: [{"id", "tags"}], newest first."""
        out = self.run(["images", "--no-trunc", "--filter", f"label={label}={value}", "--format", "{{json .}}", repository])
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        by_id: dict[str, list[str]] = {}
        for row in rows:
            tags = by_id.setdefault(row["ID"], [])
            if row.get("Tag") and row["Tag"] != "<none>":
                tags.append(row["Tag"])
        return [{"id": image_id, "tags": tags} for image_id, tags in by_id.items()]

    def pull(self, ref: str, stall_timeout: float) -> tuple[bool, str]:
        """`docker pull ref`: (True, "") when done, (False, why) when it failed or made no
        progress within stall_timeout seconds (no registry reachable). A pull that makes
        progress may take as long as it needs."""
        process = subprocess.Popen(
            [self.executable, "pull", ref], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
        reader.start()
        started = time.monotonic()
        progress_words = ("Pulling fs layer", "Downloading", "Already exists", "Digest:")
        while process.poll() is None:
            progress = any(word in line for line in list(lines) for word in progress_words)
            if not progress and time.monotonic() - started > stall_timeout:
                process.kill()
                process.wait()
                return False, f"no answer from the registry within {stall_timeout:.0f}s"
            time.sleep(0.2)
        reader.join(timeout=5)
        if process.returncode != 0:
            last = next((line for line in reversed(lines) if line.strip()), "docker pull failed")
            return False, last.strip()
        return True, ""

    def build(
        self,
        context: Path,
        tags: list[str],
        build_args: dict[str, str],
        labels: dict[str, str],
        log_path: Path,
        no_cache: bool = False,
    ) -> None:
        """`docker build` with the legacy builder (no buildx needed, no BuildKit frontend to pull).
        The full output goes to log_path; DockerError carries its last lines."""
        args = ["build"]
        for key, value in build_args.items():
            args += ["--build-arg", f"{key}={value}"]
        for key, value in labels.items():
            args += ["--label", f"{key}={value}"]
        for tag in tags:
            args += ["--tag", tag]
        if no_cache:
            args.append("--no-cache")
        args.append(str(context))
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as log:
            result = subprocess.run(
                [self.executable, *args], stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "DOCKER_BUILDKIT": "0"}
            )
        if result.returncode != 0:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
            raise DockerError("docker build failed:\n  " + "\n  ".join(tail) + f"\n  (full log: {log_path})")

    def call(self, args: list[str], timeout: float | None = None, input: str | None = None) -> subprocess.CompletedProcess:
        """Run `docker ARGS` and return the finished process, whatever its exit code."""
        return subprocess.run(
            [self.executable, *args], capture_output=True, text=True, timeout=timeout, input=input
        )
