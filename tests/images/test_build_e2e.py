"""End to end: `gpuhub images build --local --stack rl` in the private test engine,
then the images themselves. Marker image_build; the build runs once per session."""

import json
import re
import subprocess
import sys
import time

import pytest

from gpuhub.images import versions
from gpuhub.images.docker_cli import Docker
from gpuhub.images.startup import check_network, singleuser_env, stand_in_hub
from tests.images.conftest import PREFIX, REPO, run_build

pytestmark = pytest.mark.image_build

LOCAL = versions.load().local
NOTEBOOK = f"{versions.repository()}:{LOCAL.line}"
STACK = f"{versions.repository('rl')}:{LOCAL.line}"
IDE = f"{versions.repository('rl')}-ide:{LOCAL.line}"  # --ide: the IDE layer on the last image built


def hub_version():
    return subprocess.run(
        [sys.executable, "-c", "import jupyterhub; print(jupyterhub.__version__)"], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_build_says_what_it_built_and_measured(built):
    out = built.output
    assert re.search(rf"{re.escape(versions.repository())}:{re.escape(LOCAL.line)}-\d{{8}}(\.\d+)?: [\d,]+ MB, [\d,-]+ MB added over {re.escape(LOCAL.base)}", out), out
    assert re.search(r"validation gate passed", out), out
    assert re.search(r"server ready \d+\.\d+s after docker run", out), out
    assert f"{NOTEBOOK} -> {LOCAL.line}-" in out
    assert f"{STACK} -> {LOCAL.line}-" in out
    assert f"{IDE} -> {LOCAL.line}-" in out


def test_local_build_records_the_cpu_torch_it_really_holds(built):
    record = json.loads(built.docker("run", "--rm", "--entrypoint", "cat", NOTEBOOK, "/etc/gpuhub-image.json"))
    assert record["torch"] == LOCAL.torch
    assert record["cuda"] is None
    assert record["base_kind"] == "local"
    assert record["jupyterhub"] == hub_version()
    labels = json.loads(built.docker("image", "inspect", "-f", "{{json .Config.Labels}}", NOTEBOOK))
    assert labels["org.gpuhub.torch-version"] == LOCAL.torch
    assert labels["org.gpuhub.cuda-version"] == "none"
    assert labels["org.gpuhub.jupyterhub-version"] == hub_version()
    assert labels["org.gpuhub.variant"] == versions.load().default
    for key in ("title", "version", "created", "base.name"):
        assert labels[f"org.opencontainers.image.{key}"], key
    assert labels["org.opencontainers.image.version"].startswith(f"{LOCAL.line}-")


def test_jupyterhub_in_the_image_is_the_hubs(built):
    assert built.docker("run", "--rm", NOTEBOOK, "jupyterhub-singleuser", "--version") == hub_version()


def test_runs_as_jovyan_under_tini_with_nvidia_capabilities_only(built):
    assert built.docker("run", "--rm", NOTEBOOK, "sh", "-c", "id -u; id -g; echo $HOME; id -un") == "1000\n100\n/home/jovyan\njovyan"
    config = json.loads(built.docker("image", "inspect", "-f", "{{json .Config}}", NOTEBOOK))
    assert config["User"] == "1000"
    assert config["Entrypoint"] == ["/usr/bin/tini", "-g", "--"]
    assert config["Cmd"] == ["jupyterhub-singleuser"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility"
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void"  # none unless asked for: the spawner sets UUIDs


def test_tools_a_notebook_needs_are_there(built):
    built.docker("run", "--rm", NOTEBOOK, "sh", "-c", "git --version && less --version && ps -p 1 && python -c 'import ipywidgets, jupyterlab_nvdashboard, torch'")
    # what the SSH entrance runs (hub/ssh): scp/sftp's server and tmux; never an sshd
    shell = built.docker("run", "--rm", NOTEBOOK, "sh", "-c", "test -x /usr/lib/openssh/sftp-server && tmux -V && ls /usr/sbin")
    assert shell.startswith("tmux ") and "sshd" not in shell.split()
    # the status bar's memory against the limit: server side and JupyterLab side, both enabled
    extensions = built.docker("run", "--rm", NOTEBOOK, "sh", "-c", "jupyter server extension list 2>&1; jupyter labextension list 2>&1")
    for name in ("jupyter_resource_usage", "@jupyter-server/resource-usage"):
        assert any(name in line and "enabled" in line for line in extensions.splitlines()), extensions


def test_no_package_caches_or_wheels_are_left(built):
    leftovers = built.docker(
        "run", "--rm", "--user", "0", "--entrypoint", "sh", NOTEBOOK, "-c",
        "ls -d /root/.cache/pip /tmp/wheelhouse 2>/dev/null;"
        " find /var/lib/apt/lists /var/cache/apt -type f -name '*' ! -name lock 2>/dev/null;"
        # /usr/share/python-wheels: Debian's ensurepip wheels (python3-venv), part of the OS.
        " find / -xdev \\( -name '*.whl' -o -name '*.deb' \\) ! -path '/usr/share/python-wheels/*' 2>/dev/null; true",
    )
    assert leftovers == ""


def test_healthcheck_turns_healthy(built, monkeypatch):
    name = f"{PREFIX}health"
    monkeypatch.setenv("DOCKER_HOST", built.env["DOCKER_HOST"])
    with check_network(Docker()) as (network, gateway), stand_in_hub(gateway, hub_version()) as hub_api_url:
        check_health(built, name, network, singleuser_env(hub_api_url))


def check_health(built, name, network, environment):
    env_args = [arg for key, value in environment.items() for arg in ("-e", f"{key}={value}")]
    healthcheck = json.loads(built.docker("image", "inspect", "-f", "{{json .Config.Healthcheck}}", NOTEBOOK))
    assert healthcheck["Test"] == ["CMD", "/opt/notebook/bin/python", "/usr/local/bin/gpuhub-healthcheck"]
    assert healthcheck["Interval"] == 15e9 and healthcheck["StartPeriod"] == 60e9
    # The image's own check, probed every second instead of every 15 s to keep the test short.
    built.docker("run", "-d", "--name", name, "--network", network, "--health-interval", "1s", *env_args, NOTEBOOK)
    try:
        deadline = time.monotonic() + 60
        status = ""
        while time.monotonic() < deadline:
            status = built.docker("inspect", "-f", "{{.State.Health.Status}}", name)
            if status in ("healthy", "unhealthy"):
                break
            time.sleep(0.5)
        assert status == "healthy", built.docker("inspect", "-f", "{{json .State.Health}}", name)
    finally:
        built.docker("rm", "-f", name, check=False)


def test_stack_adds_its_packages_and_keeps_torch(built):
    out = built.docker(
        "run", "--rm", STACK, "python", "-c",
        "import torch, gymnasium, stable_baselines3; print(torch.__version__); print(stable_baselines3.__file__)",
    ).splitlines()
    assert out[0] == LOCAL.torch
    assert out[1].startswith("/opt/stack/")
    notebook_size = int(built.docker("image", "inspect", "-f", "{{.Size}}", NOTEBOOK))
    stack_size = int(built.docker("image", "inspect", "-f", "{{.Size}}", STACK))
    assert 0 < stack_size - notebook_size < 100e6


def test_ide_layer_adds_code_server_and_keeps_the_stack(built):
    """`--ide` (images/ide): code-server on its own Node, jupyter-server-proxy in the
    notebook server's Python with the VS Code entry; the stack and torch unchanged."""
    def run(command: str) -> str:
        return built.docker("run", "--rm", IDE, "sh", "-c", command)

    assert versions.load().ide.code_server in run("/opt/code-server/bin/code-server --version").split()
    assert run("python -c 'import torch, stable_baselines3; print(torch.__version__)'").strip() == LOCAL.torch
    extensions = run("jupyter server extension list 2>&1")
    assert any("jupyter_server_proxy" in line and "enabled" in line for line in extensions.splitlines()), extensions
    entries = run("python -c 'from importlib.metadata import entry_points; "
                  "print(sorted(e.name for e in entry_points(group=\"jupyter_serverproxy_servers\")))'")
    assert entries.strip() == "['vscode']", entries
    user = "{{.Config.User}}"
    assert built.docker("image", "inspect", "-f", user, IDE) == built.docker("image", "inspect", "-f", user, STACK)


def test_reports_are_written_beside_the_image_metadata(built):
    patch = built.docker("image", "inspect", "-f", '{{index .Config.Labels "org.opencontainers.image.version"}}', NOTEBOOK)
    folder = REPO / "images" / "reports" / "pytorch-notebook" / patch
    for name in ("image.json", "pip-freeze.txt", "dpkg.txt", "SUMMARY.md"):
        assert (folder / name).is_file(), name
    assert f"torch=={LOCAL.torch}" in (folder / "pip-freeze.txt").read_text()
    assert "NOT compared" in (folder / "SUMMARY.md").read_text()


def test_cached_rerun_rebuilds_nothing_and_is_quick(built):
    again = run_build(built.env, "--local", "--stack", "rl")
    assert "building" not in again.output, again.output
    assert again.output.count("is up to date") >= 2, again.output
    assert again.seconds < 45, again.output
