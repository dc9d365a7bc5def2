"""`gpuhub images` on bad input and on hosts that cannot build: exit 2 and one clear line."""

import os
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]


def images(*args, env=None):
    return subprocess.run(
        [str(Path(sys.executable).with_name("gpuhub")), "images", *args], cwd=REPO, capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {})},
    )


def one_error_line(result):
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_unknown_variant_lists_the_known_ones():
    line = one_error_line(images("build", "9.9-cuda1.0"))
    assert line == "images: error: unknown variant '9.9-cuda1.0'; known variants: 2.6-cuda12.4, 2.9-cuda12.8, 2.15-cuda13.2"


def test_unknown_stack_lists_the_known_ones():
    line = one_error_line(images("build", "--stack", "audio"))
    assert line == "images: error: unknown stack 'audio'; known stacks: cv, nlp, rl"
    line = one_error_line(images("release", "2.6-cuda12.4", "--stack", "audio"))
    assert line.startswith("images: error: unknown stack 'audio'")


def test_no_docker_cli_says_to_install_it(tmp_path):
    line = one_error_line(images("build", "--local", env={"PATH": str(tmp_path)}))
    assert line.startswith("images: error: docker CLI not found on PATH: install Docker")


def test_no_engine_says_where_it_looked_and_what_to_do(tmp_path):
    socket = f"unix://{tmp_path}/missing.sock"
    line = one_error_line(images("build", "--stack", "rl", env={"DOCKER_HOST": socket}))
    assert line.startswith(f"images: error: no Docker engine answers at {socket}; start one")
    assert "tests/rig/engine.sh start" in line


def test_list_names_variants_fallback_and_stacks():
    result = images("list")
    assert result.returncode == 0, result.stderr
    assert "2.6-cuda12.4 (default): torch 2.6.0, CUDA 12.4" in result.stdout
    assert "local fallback 2.13-cpu: torch 2.13.0+cpu (CPU)" in result.stdout
    assert "stack rl: gymnasium==1.4.0, stable-baselines3==2.9.2" in result.stdout
