"""The install layout: one top-level package, a light neutral core, one command."""

import re
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE_FOLDERS = ("spawner", "hub", "images", "config", "tests", "benchmarks")


def test_wheel_holds_only_the_gpuhub_namespace(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path), str(REPO)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = tmp_path.glob("gpuhub-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"gpuhub"}
    for package in ("spawner", "hub", "images"):
        assert f"gpuhub/{package}/__init__.py" in names
    # package data comes along: the spawn form, the service's pages, the Dockerfiles
    assert "gpuhub/spawner/templates/options_form.html" in names
    assert "gpuhub/hub/gpu_usage/templates/all.html" in names
    assert "gpuhub/images/pytorch-notebook/Dockerfile" in names
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "gpu-docker = gpuhub.spawner.gpu_docker:GPUDockerSpawner" in entry_points
    assert "gpuhub = gpuhub.hub.cli:main" in entry_points


def test_no_code_imports_the_bare_folder_names():
    """`import spawner` would load a second copy of a module next to gpuhub.spawner."""
    bare = re.compile(r"^\s*(from|import)\s+(spawner|hub|images)\b", re.MULTILINE)
    offenders = [
        str(path.relative_to(REPO))
        for folder in SOURCE_FOLDERS
        for path in (REPO / folder).rglob("*.py")
        if bare.search(path.read_text())
    ]
    assert offenders == []


def test_neutral_gpu_core_loads_neither_dockerspawner_nor_tornado():
    code = (
        "import sys, gpuhub.spawner.inventory, gpuhub.spawner.labels;"
        "print(sorted(m for m in ('dockerspawner', 'tornado', 'docker') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


def test_gpuhub_command_lists_its_subcommands():
    gpuhub = Path(sys.executable).with_name("gpuhub")
    out = subprocess.run([str(gpuhub), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "images" in out.stdout
    bad = subprocess.run([str(gpuhub), "frobnicate"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown command 'frobnicate'" in bad.stderr
