"""Fill wheelhouses on the host, for the Python and glibc inside an image.

Builds run with no network, so every Python package an image gets is downloaded
here first, as wheels only (no compiler in the image, no sdist builds), for the
image's interpreter and platform rather than the host's. A wheelhouse is a folder
under .cache/images/wheels/<key>/ holding the wheels, requirements.txt (what to
install) and constraints.txt (what must not change); the key covers everything
that decides its content, so a filled one is reused as it is.

Two ways to fill one:

- fill(): resolve and download everything the requirements need (the base and
  notebook layers; what the base already has is simply not installed again);
- fill_on_top(): for a layer on an existing image (the stacks) -- resolve with
  every package the image holds pinned to its version (so the layer never
  replaces torch or anything else), and download only what the image lacks.
  Resolution reads package metadata only, so torch's CUDA wheels (GBs) are never
  downloaded for it.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

COMPLETE = ".complete"


class WheelhouseError(RuntimeError):
    """pip could not resolve or download; the message holds pip's last lines."""


@dataclass(frozen=True)
class Target:
    """The interpreter and platform inside an image."""

    python: str  # "3.11"
    glibc: str  # "2.35"
    arch: str = platform.machine()

    def pip_args(self) -> list[str]:
        """pip options that select wheels for this target. pip does not expand
        manylinux_2_35 to the older manylinux tags itself, so list them all."""
        minor = int(self.glibc.split(".")[1])
        args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", self.python]
        for m in range(minor, 4, -1):
            args += ["--platform", f"manylinux_2_{m}_{self.arch}"]
        for legacy in ("manylinux2014", "manylinux2010", "manylinux1"):
            args += ["--platform", f"{legacy}_{self.arch}"]
        return args


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheelhouse_key(mode: str, requirements: list[str], target: Target, pins: dict[str, str] | None = None) -> str:
    blob = json.dumps([mode, sorted(requirements), target.python, target.glibc, target.arch, sorted((pins or {}).items())])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def fill(root: Path, requirements: list[str], target: Target, log=print) -> Path:
    """A wheelhouse with wheels for requirements and all they depend on."""
    folder = root / wheelhouse_key("full", requirements, target)
    if (folder / COMPLETE).exists():
        return folder
    log(f"downloading wheels for Python {target.python} / glibc {target.glibc}: {' '.join(requirements)}")
    with _staging(folder) as staging:
        _pip(["download", "--dest", str(staging), *target.pip_args(), *requirements])
        _write_lists(staging, requirements, {})
    return folder


def fill_on_top(root: Path, requirements: list[str], target: Target, installed: dict[str, str], log=print) -> Path:
    """A wheelhouse with what requirements need beyond `installed` (name -> version,
    the image's `pip list`), every installed package pinned as it is."""
    pins = {canonical(name): version for name, version in installed.items()}
    folder = root / wheelhouse_key("on-top", requirements, target, pins)
    if (folder / COMPLETE).exists():
        return folder
    log(f"resolving {' '.join(requirements)} against the image's {len(pins)} packages (kept as they are)")
    with _staging(folder) as staging, tempfile.TemporaryDirectory() as scratch:
        constraints = Path(scratch) / "constraints.txt"
        constraints.write_text("".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
        report = Path(scratch) / "report.json"
        _pip(
            ["install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
             "--target", str(Path(scratch) / "unused"), *target.pip_args(), "-c", str(constraints), *requirements],
            hint="the stack's versions conflict with what the image holds; pick stack versions that accept them",
        )
        resolved = json.loads(report.read_text())["install"]
        missing = sorted(
            f"{item['metadata']['name']}=={item['metadata']['version']}"
            for item in resolved
            if pins.get(canonical(item["metadata"]["name"])) != item["metadata"]["version"]
        )
        log(f"downloading {len(missing)} wheels the image lacks")
        if missing:
            _pip(["download", "--no-deps", "--dest", str(staging), *target.pip_args(), *missing])
        _write_lists(staging, requirements, pins)
    return folder


def _write_lists(folder: Path, requirements: list[str], pins: dict[str, str]) -> None:
    (folder / "requirements.txt").write_text("".join(f"{r}\n" for r in requirements))
    (folder / "constraints.txt").write_text("".join(f"{n}=={v}\n" for n, v in sorted(pins.items())))


class _staging:
    """Fill a private temporary folder and move it into place only when complete, so
    two builds filling the same wheelhouse at once do not trip over each other."""

    def __init__(self, folder: Path):
        self.folder = folder

    def __enter__(self) -> Path:
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(dir=self.folder.parent, prefix=f"{self.folder.name}.tmp-"))
        return self.tmp

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None or (self.folder / COMPLETE).exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        (self.tmp / COMPLETE).touch()
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.tmp.rename(self.folder)
        except OSError:  # another build put it there first
            shutil.rmtree(self.tmp, ignore_errors=True)


def _pip(args: list[str], hint: str = "PyPI (or your pip index) must be reachable from the host") -> None:
    """Run the host's pip (the running interpreter's), quietly; WheelhouseError with its last lines on failure."""
    result = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        # pip.conf may name index folders that are not there; that noise hides the real error.
        lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip() and "is ignored: it is neither" not in line]
        raise WheelhouseError(f"pip {args[0]} failed ({hint}):\n  " + "\n  ".join(lines[-12:]))
