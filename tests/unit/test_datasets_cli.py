"""``gpuhub datasets``: what it refuses before it talks to Docker (the copy
itself: tests/cohort/test_cohort_spaces.py)."""

import pytest

from gpuhub.hub.cli import main


@pytest.mark.parametrize("args, said", [
    (["add", "/no/such/dir"], "/no/such/dir: no such file or folder on this host"),
    (["add", "{tmp}", "--name", ".hidden"], "--name '.hidden': a name is letters, digits and . _ + -"),
    (["add", "{tmp}", "--name", "a/b"], "--name 'a/b': a name is letters"),
    (["add", "{tmp}/a:b"], "Docker cannot mount a path with ':' or ','"),
])
def test_a_bad_path_or_name_is_refused_before_docker(args, said, tmp_path, capsys, monkeypatch):
    (tmp_path / "a:b").mkdir()
    monkeypatch.setenv("GPUHUB_IMAGE", "img")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # never reached
    assert main(["datasets", *(a.format(tmp=tmp_path) for a in args)]) == 2
    assert said in capsys.readouterr().err


def test_without_an_image_it_says_how_to_name_one(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GPUHUB_IMAGE", raising=False)
    assert main(["datasets", "add", str(tmp_path)]) == 2
    assert "--image or GPUHUB_IMAGE" in capsys.readouterr().err
