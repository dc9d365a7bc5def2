"""A user's files live on their own volume: they outlive the container and the hub."""

import requests
from jupyterhub.utils import url_escape_path

from tests.fakes.fake_gpus import FakeNVML
from tests.integration.hubrig import PREFIX, container_of


def contents_url(hub, name, path):
    return f"{hub.url}/user/{url_escape_path(name)}/api/contents/{path}"


def test_files_survive_stop_removal_and_hub_restart(start_hub, engine):
    name = "zoë.smith@example.org"  # dots, @ and unicode: all escaped, collision-free
    hub = start_hub(FakeNVML.make_gpus(1))
    hub.create_users(name, "zoë-2esmith@example.org")
    hub.start_server(name, {"gpus": 0})
    token = hub.user_token(name)
    auth = {"Authorization": f"token {token}"}

    saved = requests.put(
        contents_url(hub, name, "notes.txt"),
        json={"type": "file", "format": "text", "content": "epoch 3: loss 0.12"},
        headers=auth,
        timeout=30,
    )
    assert saved.status_code == 201, saved.text
    volume = container_of(engine, "zo-c3-ab-2esmith-40example-2eorg").attrs["Mounts"][0]
    assert volume["Name"] == f"{PREFIX}-user-zo-c3-ab-2esmith-40example-2eorg"

    hub.stop_server(name)
    assert not engine.containers.list(all=True, filters={"label": f"gpuhub.user={name}"})
    hub.restart()
    hub.start_server(name, {"gpus": 0})
    read = requests.get(contents_url(hub, name, "notes.txt"), headers=auth, timeout=30)
    assert read.status_code == 200, read.text
    assert read.json()["content"] == "epoch 3: loss 0.12"

    # A name that escapes to something similar still gets a volume of its own.
    hub.start_server("zoë-2esmith@example.org", {"gpus": 0})
    other = requests.get(
        contents_url(hub, "zoë-2esmith@example.org", "notes.txt"),
        headers={"Authorization": f"token {hub.user_token('zoë-2esmith@example.org')}"},
        timeout=30,
    )
    assert other.status_code == 404
