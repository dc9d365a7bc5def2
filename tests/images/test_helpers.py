"""Pure pieces of the build: wheel platform options, recipe hashes, gate summaries,
the HEALTHCHECK's URL, report folders. Fast, no Docker, no network."""

import importlib.util
import shutil
from pathlib import Path

import pytest

from gpuhub.images import recipe, report, startup, verify, wheelhouse

NOTEBOOK = Path(__file__).resolve().parents[2] / "images" / "pytorch-notebook"


def test_wheels_are_chosen_for_the_image_not_the_host():
    args = wheelhouse.Target("3.11", "2.35", "x86_64").pip_args()
    assert args[:5] == ["--only-binary=:all:", "--implementation", "cp", "--python-version", "3.11"]
    platforms = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    assert platforms[0] == "manylinux_2_35_x86_64"
    assert "manylinux_2_28_x86_64" in platforms and "manylinux_2_5_x86_64" in platforms
    assert "manylinux_2_36_x86_64" not in platforms
    assert platforms[-3:] == ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def test_wheelhouse_keys_change_with_what_decides_the_content():
    target = wheelhouse.Target("3.11", "2.35", "x86_64")
    key = wheelhouse.wheelhouse_key("full", ["a==1", "b==2"], target)
    assert key == wheelhouse.wheelhouse_key("full", ["b==2", "a==1"], target)
    assert key != wheelhouse.wheelhouse_key("full", ["a==1"], target)
    assert key != wheelhouse.wheelhouse_key("full", ["a==1", "b==2"], wheelhouse.Target("3.12", "2.35", "x86_64"))
    assert key != wheelhouse.wheelhouse_key("on-top", ["a==1", "b==2"], target, {"torch": "2.6.0"})
    assert wheelhouse.canonical("Stable_Baselines3") == "stable-baselines3"


@pytest.fixture
def recipe_inputs(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "Dockerfile").write_text("FROM x\n")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "a-1-py3-none-any.whl").write_text("")
    (wheels / "requirements.txt").write_text("a==1\n")
    (wheels / ".complete").write_text("")
    return source, wheels


def test_recipe_hash_covers_source_wheels_args_and_base(recipe_inputs):
    source, wheels = recipe_inputs
    args = {"BASE_IMAGE": "b:1", "CREATED": "2026-11-22T00:00:00Z"}
    first = recipe.recipe_hash(source, wheels, args, "sha256:1")
    # Volatile arguments (dates, tags, revisions) do not make a new image.
    assert recipe.recipe_hash(source, wheels, {**args, "CREATED": "later", "IMAGE_VERSION": "x"}, "sha256:1") == first
    assert recipe.recipe_hash(source, wheels, {**args, "BASE_IMAGE": "b:2"}, "sha256:1") != first
    assert recipe.recipe_hash(source, wheels, args, "sha256:2") != first
    (wheels / "requirements.txt").write_text("a==1\nb==2\n")
    second = recipe.recipe_hash(source, wheels, args, "sha256:1")
    assert second != first
    (wheels / "b-2-py3-none-any.whl").write_text("")
    third = recipe.recipe_hash(source, wheels, args, "sha256:1")
    assert third != second
    (source / "Dockerfile").write_text("FROM y\n")
    assert recipe.recipe_hash(source, wheels, args, "sha256:1") != third


def test_recipe_hash_covers_extra_context_files(recipe_inputs, tmp_path):
    source, wheels = recipe_inputs
    script, tarball = tmp_path / "glibc.py", tmp_path / "code-server.tar"
    script.write_text("print(1)\n")
    tarball.write_bytes(b"x" * 1_000_001)
    extra = {"glibc.py": script, "code-server.tar": tarball}
    first = recipe.recipe_hash(source, wheels, {}, "sha256:1", extra)
    assert first != recipe.recipe_hash(source, wheels, {}, "sha256:1")
    script.write_text("print(2)\n")  # small files count by content
    second = recipe.recipe_hash(source, wheels, {}, "sha256:1", extra)
    assert second != first
    tarball.write_bytes(b"y" * 1_000_001)  # a big one by name and size (its version is a build argument)
    assert recipe.recipe_hash(source, wheels, {}, "sha256:1", extra) == second
    tarball.write_bytes(b"y" * 1_000_002)
    assert recipe.recipe_hash(source, wheels, {}, "sha256:1", extra) != second


def test_the_context_holds_the_extra_files(recipe_inputs, tmp_path):
    source, wheels = recipe_inputs
    extra_file = tmp_path / "node.whl"
    extra_file.write_text("wheel")
    context = recipe.stage_context(source, wheels, "ide", {"nodejs-1.whl": extra_file})
    try:
        assert sorted(p.name for p in context.iterdir()) == ["Dockerfile", "nodejs-1.whl", "wheelhouse"]
        assert (context / "nodejs-1.whl").read_text() == "wheel"
        assert sorted(p.name for p in (context / "wheelhouse").iterdir()) == ["a-1-py3-none-any.whl", "requirements.txt"]
    finally:
        shutil.rmtree(context.parent)


def test_gate_summary_counts_checks_and_gives_the_throughput():
    # The shape gate.py prints with --json.
    gate_json = {
        "ok": False,
        "checks": [
            {"name": "torch_version", "status": "PASS", "detail": "", "seconds": 0.1},
            {"name": "cuda_devices", "status": "SKIP", "detail": "no GPU visible", "seconds": 0.0},
            {"name": "cudnn", "status": "SKIP", "detail": "no GPU visible", "seconds": 0.0},
            {"name": "ddp", "status": "FAIL", "detail": "timeout", "seconds": 90},
        ],
        "throughput": {"device": "cpu", "steps_per_second": 41.5, "steps": 207},
    }
    gate = verify.GateResult(False, 1, gate_json, "", 92.3)
    assert verify.summarize_gate(gate) == (
        "validation gate FAILED (exit 1) in 92s; 1 checks passed, 2 skipped (cuda_devices, cudnn), "
        "1 failed (ddp); throughput 41.5 steps/s on cpu"
    )
    other = {"checks": {"torch": {"ok": True}, "shm": False}, "results": [{"throughput": 3, "unit": "img/s"}]}
    gate = verify.GateResult(False, 1, other, "", 5)
    assert verify.summarize_gate(gate) == "validation gate FAILED (exit 1) in 5s; 1 checks passed, 1 failed (shm); throughput 3 img/s"
    broken = verify.GateResult(False, 2, None, "Traceback...\nImportError: no torch\n", 1)
    assert verify.summarize_gate(broken) == "validation gate FAILED (exit 2) in 1s; ImportError: no torch"


def test_gate_json_is_found_after_other_output():
    assert verify._last_json('starting\n{"passed": true}\n') == {"passed": True}
    assert verify._last_json("no json") is None


@pytest.fixture
def healthcheck():
    spec = importlib.util.spec_from_file_location("gpuhub_healthcheck", NOTEBOOK / "healthcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.server_port_from_cmdline = lambda default: default  # no jupyter process on the test host
    return module


def test_healthcheck_url_follows_the_hub_environment(healthcheck, monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_SERVICE_URL", raising=False)
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    assert healthcheck.api_url() == "http://127.0.0.1:8888/api"
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
    assert healthcheck.api_url() == "http://127.0.0.1:8888/user/alice/api"
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", "http://0.0.0.0:9999/user/bob/")
    assert healthcheck.api_url() == "http://127.0.0.1:9999/user/bob/api"


def test_singleuser_env_is_what_jupyterhub_singleuser_needs():
    env = startup.singleuser_env("http://172.31.240.1:4242/hub/api")
    assert env["JUPYTERHUB_SERVICE_URL"] == "http://0.0.0.0:8888/user/gpuhubimg/"
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == "/user/gpuhubimg/"
    assert env["JUPYTERHUB_API_TOKEN"] and env["JUPYTERHUB_CLIENT_ID"]
    assert env["JUPYTERHUB_API_URL"] == "http://172.31.240.1:4242/hub/api"


def test_report_folders_are_named_by_repository_and_tag(tmp_path):
    assert report.folder_for("gpuhub/pytorch-notebook:2.13-cpu-20261122", tmp_path) == tmp_path / "pytorch-notebook" / "2.13-cpu-20261122"
    assert report.folder_for("gpuhub/pytorch-notebook-rl:2.6-cuda12.4-20261122.2", tmp_path) == (
        tmp_path / "pytorch-notebook-rl" / "2.6-cuda12.4-20261122.2"
    )


def gate_with(*statuses, exit_code=1, output=""):
    checks = [{"name": name, "status": status, "detail": f"{name} says\nsecond line"} for name, status in statuses]
    ok = all(status != "FAIL" for _, status in statuses)
    return verify.GateResult(ok, 0 if ok else exit_code, {"ok": ok, "checks": checks}, output, 1.0)


def test_a_check_that_can_fail_by_chance_is_retried_once_and_recorded(monkeypatch):
    runs = iter([gate_with(("ddp", "FAIL"), ("user_id", "PASS")), gate_with(("ddp", "PASS"), ("user_id", "PASS"))])
    monkeypatch.setattr(verify, "run_gate", lambda *args: next(runs))
    logged = []
    gate = verify.validate(None, "img", NOTEBOOK, "2.13.0", log=logged.append)
    assert gate.passed
    assert gate.first_failure == "  ddp: ddp says\n    second line"
    assert "the first run's ddp check failed by chance" in gate.summary
    assert "runs once more" in logged[0]


def test_other_failures_are_not_retried(monkeypatch):
    runs = iter([gate_with(("ddp", "FAIL"), ("user_id", "FAIL")), gate_with(("ddp", "PASS"), ("user_id", "PASS"))])
    monkeypatch.setattr(verify, "run_gate", lambda *args: next(runs))
    gate = verify.validate(None, "img", NOTEBOOK, "2.13.0", log=print)
    assert not gate.passed and gate.first_failure == ""


def test_gate_failure_text_is_whole_lines():
    broken = verify.GateResult(False, 2, None, "".join(f"line {i} " + "x" * 300 + "\n" for i in range(100)), 1)
    text = verify.failure_text(broken)
    assert text.splitlines()[0] == "  line 60 " + "x" * 300
    assert text.splitlines()[-1] == "  line 99 " + "x" * 300


def test_gate_failure_message_names_each_failure_whole_and_ends_with_what_to_do(tmp_path):
    gate = gate_with(("ddp", "FAIL"), ("cudnn", "FAIL"), ("user_id", "PASS"))
    message = verify.failure_message("repo:1-20261122", "repo:1 still points at the previous build", gate, tmp_path / "gate.log")
    lines = message.splitlines()
    assert lines[0] == "repo:1-20261122 failed the validation gate. repo:1 still points at the previous build."
    assert lines[1:6] == ["Failed:", "  ddp: ddp says", "    second line", "  cudnn: cudnn says", "    second line"]
    assert lines[-1].startswith("What to do: fix what the failed checks name")
    assert lines[-1].endswith(f"The gate's whole output is in {tmp_path / 'gate.log'}.")
    assert "not moved" not in message
