"""Reset my environment, the pure parts: names, the home volume, the helper's
create request (checked whole, and by the same check as servers' requests),
and the move script itself, run by sh on this machine as a non-root user."""

import os
import shutil
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from gpuhub.hub.reset_cli import reset_path
from gpuhub.spawner import environment_reset, hardening
from gpuhub.spawner.environment_reset import (
    ENVIRONMENT_DIRECTORIES,
    MOVE_SCRIPT,
    ResetFailed,
    helper_request,
    home_volume,
    reset_folder,
    stamp,
)

WHEN = datetime(2026, 11, 22, 20, 38, 5, tzinfo=timezone.utc)


def test_the_folder_is_named_after_the_utc_time_of_the_request():
    assert stamp(WHEN) == "20261122T203805Z"
    assert reset_folder(stamp(WHEN)) == ".reset-20261122T203805Z"


@pytest.mark.parametrize("bad", ["", "../x", "20261122T203805Z/..", "2026-11-22"])
def test_a_stamp_that_is_not_a_time_is_refused(bad):
    with pytest.raises(ValueError, match="20261122T203800Z"):
        reset_folder(bad)


def test_the_list_is_the_documented_one():
    assert list(ENVIRONMENT_DIRECTORIES) == [
        ".local", ".jupyter", ".ipython", ".config", ".cache", ".conda", ".condarc",
    ]
    readme = (Path(__file__).resolve().parents[2] / "hub" / "README.md").read_text()
    for name in ENVIRONMENT_DIRECTORIES:
        assert f"`~/{name}`" in readme


def test_the_home_volume_is_the_one_mounted_at_home():
    binds = {
        "datasets": {"bind": "/home/jovyan/datasets", "mode": "ro"},
        "gpuhub-user-ann": {"bind": "/home/jovyan/", "mode": "rw"},
    }
    assert home_volume(binds, "/home/jovyan") == "gpuhub-user-ann"


@pytest.mark.parametrize("binds", [
    {},  # the home is the container's own layer: a move there keeps nothing
    {"/srv/homes/ann": {"bind": "/home/jovyan", "mode": "rw"}},  # a host path
    {"gpuhub-user-ann": {"bind": "/home/jovyan", "mode": "ro"}},
])
def test_a_home_that_is_not_a_writable_volume_is_refused(binds):
    with pytest.raises(ResetFailed, match="c.GPUDockerSpawner.volumes"):
        home_volume(binds, "/home/jovyan")


def request():
    return helper_request(image="img", volume="gpuhub-user-ann", home="/home/jovyan", user="1000",
                          folder=".reset-20261122T203805Z", hub="hub1", name="gpuhub-ann.reset")


def test_the_helper_is_the_notebook_user_with_nothing_but_the_home():
    assert request() == {
        "image": "img",
        "name": "gpuhub-ann.reset",
        "entrypoint": ["sh", "-c", MOVE_SCRIPT, "reset"],
        "command": [".reset-20261122T203805Z", *ENVIRONMENT_DIRECTORIES],
        "user": "1000",
        "environment": {"HOME": "/home/jovyan"},
        "working_dir": "/home/jovyan",
        "labels": {"gpuhub.hub": "hub1"},
        "network_disabled": True,
        "host_config": {
            "Binds": ["gpuhub-user-ann:/home/jovyan:rw"],
            "NetworkMode": "none",
            "CapDrop": ["ALL"],
            "CapAdd": [],
            "SecurityOpt": ["no-new-privileges:true"],
        },
    }


def test_the_helper_passes_the_servers_own_check():
    assert hardening.refusals(request()) == []


def test_the_api_paths_of_the_command():
    assert reset_path("ann", "") == "/users/ann/server/reset"
    assert reset_path("a b", "gpu/x") == "/users/a%20b/servers/gpu%2Fx/reset"


# ---- the move script, on this machine, as uid 1000 (like the notebook user) ----
NOTEBOOK_UID = 1000


def run_script(home: Path, folder: str = ".reset-20261122T203805Z"):
    return subprocess.run(
        ["setpriv", f"--reuid={NOTEBOOK_UID}", f"--regid={NOTEBOOK_UID}", "--clear-groups",
         "sh", "-c", MOVE_SCRIPT, "reset", folder, *ENVIRONMENT_DIRECTORIES],
        env={"HOME": str(home), "PATH": os.environ["PATH"]}, capture_output=True, text=True,
        timeout=30,
    )


@pytest.fixture
def home():
    if os.geteuid() != 0:
        pytest.skip("needs root to run the script as another user (uid 1000)")
    # not under tmp_path: pytest's folders are root's own (0700), closed to uid 1000
    home = Path(tempfile.mkdtemp(prefix="gpuhub-reset-home-"))
    home.chmod(0o755)
    (home / "notes.txt").write_text("my work")
    torch = home / ".local/lib/python3.11/site-packages/torch"
    torch.mkdir(parents=True)
    (torch / "__init__.py").write_text("raise ImportError('broken')\n")
    (home / ".condarc").write_text("envs_dirs: [/nowhere]\n")
    for path in [home, *home.rglob("*")]:
        os.chown(path, NOTEBOOK_UID, NOTEBOOK_UID)
    yield home
    shutil.rmtree(home)


def test_the_script_moves_what_exists_and_keeps_the_rest(home):
    result = run_script(home)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "moved .local .condarc"
    folder = home / ".reset-20261122T203805Z"
    assert (folder / ".local/lib/python3.11/site-packages/torch/__init__.py").read_text().startswith("raise")
    assert (folder / ".condarc").is_file()
    assert sorted(p.name for p in home.iterdir()) == [".reset-20261122T203805Z", "notes.txt"]
    assert (home / "notes.txt").read_text() == "my work"


def test_the_script_with_nothing_to_move_makes_no_folder(tmp_path):
    result = subprocess.run(["sh", "-c", MOVE_SCRIPT, "reset", ".reset-x", *ENVIRONMENT_DIRECTORIES],
                            env={"HOME": str(tmp_path), "PATH": os.environ["PATH"]},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.strip() == "nothing to move"
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_move_puts_back_what_moved(home):
    # a root-owned ~/.cache: the notebook user may not move a directory it cannot write
    (home / ".cache").mkdir()
    result = run_script(home)
    assert result.returncode == environment_reset.FAILED
    assert result.stdout.strip().splitlines()[-1] == "~/.cache could not be moved (Permission denied)"
    assert sorted(p.name for p in home.iterdir()) == [".cache", ".condarc", ".local", "notes.txt"]
    assert (home / ".local/lib/python3.11/site-packages/torch/__init__.py").is_file()


def test_an_existing_reset_folder_is_not_reused(home):
    (home / ".reset-20261122T203805Z").mkdir()
    result = run_script(home)
    assert result.returncode == environment_reset.FAILED
    assert (home / ".local").is_dir() and not any((home / ".reset-20261122T203805Z").iterdir())
