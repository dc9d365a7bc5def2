"""The notebook Dockerfile's path for an official PyTorch base, built (gate and start-up
check included) on a local stand-in with the official runtime images' layout and
environment (tests/images/official_layout/Dockerfile): no registry here, so the real
pytorch/pytorch images cannot be pulled."""

import dataclasses
import json
import shutil

import pytest

from gpuhub.images import versions
from gpuhub.images.build import Builder, Options
from gpuhub.images.report import folder_for
from gpuhub.images.versions import Variant
from tests.images.conftest import REPO, TEST_PREFIX

LOCAL = versions.load().local
TORCH = versions.public_version(LOCAL.torch)  # what the stand-in holds, as an official line names it
CUDA = "12.4"  # what the stand-in's tag claims; its torch is the CPU build
LINE = versions.line_tag(TORCH, f"cuda{CUDA}")
STAND_IN = f"{TEST_PREFIX}-img/pytorch-official-layout:{TORCH}-cuda{CUDA}-cudnn9-runtime"


@pytest.fixture(scope="module")
def official_build(built, engine_env):
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("DOCKER_HOST", engine_env["DOCKER_HOST"])
    built.docker("build", "--build-arg", f"LOCAL_BASE={LOCAL.base}", "--build-arg", f"PYTORCH_VERSION={TORCH}",
                 "--tag", STAND_IN, str(REPO / "tests/images/official_layout"), timeout=600)
    variant = Variant(LINE, torch=TORCH, cuda=CUDA, cudnn="9.1.0", python=LOCAL.python, glibc=LOCAL.glibc, base=STAND_IN)
    catalog = dataclasses.replace(versions.load(), variants={LINE: variant}, default=LINE)
    try:
        yield Builder(catalog, Options(variant=LINE, base="official")).run()[0]
    finally:
        monkeypatch.undo()
        tags = built.docker("images", "--format", "{{.Repository}}:{{.Tag}}", versions.repository()).split()
        ours = [tag for tag in tags if tag.split(":")[1].startswith(LINE)]
        built.docker("rmi", *ours, STAND_IN, check=False)
        for tag in ours:
            shutil.rmtree(folder_for(tag), ignore_errors=True)


def test_the_official_path_builds_checks_and_tags(official_build):
    image = official_build
    assert image.gate.passed, image.gate.summary
    assert image.startup_seconds is not None
    assert image.record["base_kind"] == "official"
    assert image.record["base_image"] == STAND_IN
    assert versions.public_version(image.record["torch"]) == TORCH


def test_the_official_environment_is_kept_where_it_should_be(official_build, built):
    config = json.loads(built.docker("image", "inspect", "-f", "{{json .Config}}", official_build.moving_ref))
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PATH"].split(":")[:3] == ["/opt/stack/bin", "/opt/notebook/bin", "/opt/conda/bin"]
    assert {"/usr/local/nvidia/bin", "/usr/local/cuda/bin"} <= set(env["PATH"].split(":"))
    assert env["LD_LIBRARY_PATH"] == "/usr/local/nvidia/lib:/usr/local/nvidia/lib64"
    assert env["PYTORCH_VERSION"] == TORCH
    # The official base asks for every GPU; the notebook image asks for none (the spawner
    # names the server's GPUs; `docker run --gpus` overrides it too).
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert config["User"] == "1000" and config["WorkingDir"] == "/home/jovyan"
    assert config["Labels"]["org.gpuhub.base-kind"] == "official"
    who = built.docker("run", "--rm", official_build.moving_ref, "sh", "-c", "id -un; python -c 'import torch, jupyterlab; print(torch.__file__)'")
    assert who.splitlines() == ["jovyan", "/opt/conda/lib/python3.11/site-packages/torch/__init__.py"]
