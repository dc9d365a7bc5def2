"""`gpuhub images build-test` (what `make test-images` runs): the integration tests'
image is a target of the same Python pipeline as the notebook lines."""

import json
import subprocess
import sys
from pathlib import Path

from gpuhub.images import versions
from gpuhub.images.recipe import RECIPE_LABEL
from tests.images.conftest import REPO

SPEC = versions.load().test_notebook


def build_test(engine_env):
    result = subprocess.run([str(Path(sys.executable).with_name("gpuhub")), "images", "build-test"], cwd=REPO,
                            env=engine_env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def docker(engine_env, *args):
    return subprocess.run(["docker", *args], env=engine_env, capture_output=True, text=True, check=True, timeout=120).stdout.strip()


def test_build_test_makes_the_integration_image_and_reuses_it(engine_env):
    hub = subprocess.run([sys.executable, "-c", "import jupyterhub; print(jupyterhub.__version__)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    build_test(engine_env)
    tag = f"{SPEC.repository}:{hub}"
    labels = json.loads(docker(engine_env, "image", "inspect", "-f", "{{json .Config.Labels}}", tag))
    assert labels[RECIPE_LABEL]
    assert docker(engine_env, "run", "--rm", "--network", "none", tag, "jupyterhub-singleuser", "--version") == hub
    assert docker(engine_env, "run", "--rm", "--network", "none", tag, "id", "-u") == "1000"
    lab = SPEC.packages[0].split("==")
    assert docker(engine_env, "run", "--rm", "--network", "none", tag, "python", "-c",
                  f"import importlib.metadata as m; print(m.version({lab[0]!r}))") == lab[1]
    assert docker(engine_env, "image", "inspect", "-f", "{{.Id}}", f"{SPEC.repository}:latest") == \
        docker(engine_env, "image", "inspect", "-f", "{{.Id}}", tag)

    again = build_test(engine_env)
    assert f"{tag} is up to date" in again and "building" not in again, again
    assert not (REPO / "images" / "test-notebook" / "build.sh").exists()  # one pipeline, no bash twin
