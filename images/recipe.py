"""The steps every image target shares: the recipe hash that decides whether an image
is up to date, the private build context, the Debian base, wheelhouses, `docker build`.

Used by build.py (the notebook lines and stacks) and test_notebook.py (the
integration tests' image): one pipeline, several targets.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import wheelhouse
from .docker_cli import Docker

IMAGES = Path(__file__).resolve().parent
REPO = IMAGES.parent
CACHE = REPO / ".cache" / "images"
RECIPE_LABEL = "org.gpuhub.recipe-hash"
# Build arguments that change with every build without changing the image's content.
VOLATILE_ARGS = {"IMAGE_VERSION", "CREATED", "REVISION"}


class BuildError(RuntimeError):
    """A step failed; the message says which and what to do."""


class SetupError(RuntimeError):
    """The host is not set up for building (e.g. no hub Python); exit code 2."""


def log(message: str) -> None:
    print(f"images: {message}", flush=True)


def ensure_debian_base(image: str, packages: list[str] = (), cache_dir: Path | None = None, fresh: bool = False) -> None:
    """images/base/build.sh for image (a no-op when it exists with the same recipe)."""
    env = {**os.environ, "IMAGE": image}
    if packages:
        env["BASE_PACKAGES"] = " ".join(packages)
    if cache_dir:
        env["BASE_CACHE_DIR"] = str(cache_dir)
    if fresh:
        env["NO_CACHE"] = "1"  # re-debootstrap: today's Debian packages
    log(f"making sure {image} exists (images/base/build.sh{' with ' + env['BASE_PACKAGES'] if packages else ''})")
    result = subprocess.run([str(IMAGES / "base" / "build.sh")], env=env, capture_output=True, text=True)
    output = (result.stderr + result.stdout).strip().splitlines()
    if result.returncode != 0:
        raise BuildError("images/base/build.sh failed:\n  " + "\n  ".join(output[-12:]) +
                         "\nWhat to do: it needs root and debootstrap for a first build (images/README.md, base).")
    if output:
        log(output[-1].removeprefix("base/build.sh: "))


def ensure_tools_base(catalog, fresh: bool = False) -> str:
    """The local line's Debian base ([local].debian_base): gpuhub/debian-base with the
    notebook's apt tools ([notebook].apt_packages) added at debootstrap time, in its own
    rootfs cache. The local CPU base and the test image both start from it, so the tests
    run the image line's shell tools (sftp-server, tmux)."""
    ensure_debian_base(catalog.local.debian_base, catalog.apt_packages, REPO / ".cache" / "base-tools", fresh)
    return catalog.local.debian_base


def fill(how, *args) -> Path:
    """A wheelhouse under .cache/images/wheels (wheelhouse.fill or fill_on_top)."""
    try:
        return how(CACHE / "wheels", *args, log=log)
    except wheelhouse.WheelhouseError as e:
        raise BuildError(str(e)) from None


def image_id(docker: Docker, ref: str) -> str:
    info = docker.inspect_image(ref)
    if info is None:
        raise BuildError(f"image {ref} is not in the engine at {docker.engine}")
    return info["Id"]


def build_image(docker: Docker, source: Path, wheels: Path, tags: list[str], args: dict[str, str], recipe: str,
                fresh: bool = False, extra: dict[str, Path] | None = None) -> float:
    """`docker build` of source plus the wheelhouse (and extra files: context name -> host
    path), labelled with its recipe; returns seconds."""
    name = source.name
    started = time.monotonic()
    context = stage_context(source, wheels, name, extra)
    try:
        docker.build(context, tags, args, {RECIPE_LABEL: recipe}, CACHE / "logs" / f"{name}.log", no_cache=fresh)
    finally:
        shutil.rmtree(context.parent, ignore_errors=True)
    return time.monotonic() - started


def recipe_hash(source: Path, wheels: Path, args: dict[str, str], base_id: str, extra: dict[str, Path] | None = None) -> str:
    """Everything that decides an image's content: its source folder, the wheels and
    package lists, the build arguments (less the volatile ones), the base image id, and
    the extra files of the context (by content up to 1 MB; a bigger one, such as a
    downloaded tarball, by name and size: its version is a build argument)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes() + b"\0")
    for path in sorted(wheels.iterdir()):
        if path.suffix == ".whl":
            digest.update(path.name.encode() + b"\0")
        elif path.suffix == ".txt":
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(json.dumps({k: v for k, v in sorted(args.items()) if k not in VOLATILE_ARGS}).encode())
    digest.update(base_id.encode())
    for name, path in sorted((extra or {}).items()):
        size = path.stat().st_size
        digest.update(name.encode() + b"\0" + (path.read_bytes() if size <= 1_000_000 else str(size).encode()) + b"\0")
    return digest.hexdigest()[:16]


def stage_context(source: Path, wheels: Path, name: str, extra: dict[str, Path] | None = None) -> Path:
    """A private build context (removed by build_image): the source folder plus
    wheelhouse/ and the extra files (hard links where possible)."""
    (CACHE / "context").mkdir(parents=True, exist_ok=True)
    context = Path(tempfile.mkdtemp(dir=CACHE / "context", prefix=f"{name}-")) / name
    shutil.copytree(source, context, ignore=shutil.ignore_patterns("__pycache__"))
    target = context / "wheelhouse"
    target.mkdir()
    files = {f"wheelhouse/{p.name}": p for p in wheels.iterdir() if p.suffix in (".whl", ".txt")}
    for relative, path in {**files, **(extra or {})}.items():
        try:
            os.link(path, context / relative)
        except OSError:
            shutil.copy2(path, context / relative)
    return context


def image_packages(docker: Docker, ref: str) -> dict[str, str]:
    """name -> version of every Python package the image holds (its `python -m pip list`)."""
    out = docker.in_image(ref, ["python", "-m", "pip", "list", "--format=json", "--disable-pip-version-check"])
    return {item["name"]: item["version"] for item in json.loads(out)}


def hub_version() -> str:
    """The hub's jupyterhub version: $HUB_VERSION, else `import jupyterhub` in the hub's
    Python ($HUB_PYTHON, else the repository's .venv, else this interpreter)."""
    if os.environ.get("HUB_VERSION"):
        return os.environ["HUB_VERSION"]
    venv = REPO / ".venv" / "bin" / "python"
    python = os.environ.get("HUB_PYTHON") or (str(venv) if venv.exists() else sys.executable)
    result = subprocess.run([python, "-c", "import jupyterhub; print(jupyterhub.__version__)"], capture_output=True, text=True)
    if result.returncode != 0 or not result.stdout.strip():
        raise SetupError(f"{python} cannot import jupyterhub; run `make` to create .venv, or set HUB_PYTHON or HUB_VERSION")
    return result.stdout.strip()


def git_revision() -> str:
    result = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    if result.returncode != 0:
        return ""
    dirty = subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD", "--", "images"], capture_output=True).returncode
    return result.stdout.strip() + ("-dirty" if dirty else "")


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def mb(size: int) -> str:
    return f"{size / 1e6:,.0f} MB"
