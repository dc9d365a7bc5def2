"""Quotas and limits from JupyterHub group properties, applied at the next spawn
without a hub restart; named servers on, limited by GPUHUB_NAMED_SERVERS; a
bad setting stops the hub with one line. One hub for the REST cases."""

import subprocess
import sys

from playwright.sync_api import expect

from gpuhub.spawner.labels import SERVER_LABEL, USER_LABEL
from tests.fakes.fake_gpus import FakeNVML
from tests.integration.hubrig import REPO, Hub, container_of, gpus_of
from tests.integration.test_spawn_form_browser import ARTIFACTS, browser_login, page  # noqa: F401 (fixture)

GIB = 1 << 30
QUOTA_1 = "gpus must be a whole number from 0 to 1 (your GPU quota), got 2."
BAD_PROPERTY = ("The group 'class' has an invalid property gpu_quota = 'lots': it must be a whole "
                "number of GPUs, 0 or more, e.g. 2. Ask an admin to fix it (admin page, Groups, class).")


def set_properties(hub, group: str, properties: dict):
    response = hub.api("PUT", f"/groups/{group}/properties", json=properties)
    assert response.status_code == 200, response.text


def refusal(response) -> str:
    assert response.status_code == 400, response.text
    return response.json()["message"]


def test_group_properties_apply_at_the_next_spawn_without_a_restart(start_hub, engine):
    hub = start_hub(FakeNVML.make_gpus(4), extra_config="c.GPUDockerSpawner.gpu_quota = 1\n",
                    extra_env={"GPUHUB_NAMED_SERVERS": "2"})
    hub.create_users("pat", groups=("class",))
    assert refusal(hub.spawn("pat", {"gpus": 2})).startswith(QUOTA_1)

    # An admin raises the class's quota and memory; keys of other tools stay alone.
    set_properties(hub, "class", {"gpu_quota": 2, "mem_limit": "1536M", "description": "ML 101"})
    hub.start_server("pat", {"gpus": 2})
    container = container_of(engine, "pat")
    assert len(gpus_of(container)) == 2
    assert container.attrs["HostConfig"]["Memory"] == 1536 << 20
    hub.stop_server("pat")

    # The property removed: the config's quota again, at the next spawn.
    set_properties(hub, "class", {"description": "ML 101"})
    assert refusal(hub.spawn("pat", {"gpus": 2})).startswith(QUOTA_1)

    # Back on the group, but pat left the group: the config's quota.
    set_properties(hub, "class", {"gpu_quota": 2})
    assert hub.api("DELETE", "/groups/class/users", json={"users": ["pat"]}).status_code == 200
    assert refusal(hub.spawn("pat", {"gpus": 2})).startswith(QUOTA_1)

    # A bad value: a 400 naming the group, on the REST API and on the spawn page.
    assert hub.api("POST", "/groups/class/users", json={"users": ["pat"]}).status_code == 200
    set_properties(hub, "class", {"gpu_quota": "lots"})
    log_before = len(hub.log_path.read_text().splitlines())
    assert refusal(hub.spawn("pat", {"gpus": 1})) == BAD_PROPERTY
    form = hub.login("pat").get(f"{hub.url}/hub/spawn", timeout=60)
    assert form.status_code == 400 and BAD_PROPERTY.replace("'", "&#39;") in form.text, form.text
    log = hub.log_path.read_text().splitlines()[log_before:]
    assert not any("Traceback" in line for line in log), "\n".join(log)
    assert any("invalid property gpu_quota" in line for line in log), "\n".join(log)
    assert hub.server("pat") is None

    # Named servers: on, GPUHUB_NAMED_SERVERS=2 of them, the third refused by JupyterHub.
    set_properties(hub, "class", {})
    for name, gpus in (("a", 1), ("b", 0)):
        response = hub.api("POST", f"/users/pat/servers/{name}", json={"gpus": gpus})
        assert response.status_code in (201, 202), response.text
    for name in ("a", "b"):
        events = hub.api("GET", f"/users/pat/servers/{name}/progress", stream=True)
        assert '"ready": true' in events.text, events.text
    named = {c.labels[SERVER_LABEL]: len(gpus_of(c)) for c in engine.containers.list(
        filters={"name": f"^{hub.prefix}-pat", "label": f"{USER_LABEL}=pat"})}
    assert named == {"a": 1, "b": 0}
    assert refusal(hub.api("POST", "/users/pat/servers/c", json={"gpus": 0})).startswith(
        "User pat already has the maximum of 2 named servers.")


def test_an_admin_edits_group_properties_on_the_admin_page(start_hub, page):  # noqa: F811
    """JupyterHub's own admin page stores property values as text: "3" works as 3."""
    hub = start_hub(FakeNVML.make_gpus(4), extra_config="c.GPUDockerSpawner.gpu_quota = 1\n")
    hub.create_users("pat", groups=("class",))
    browser_login(page, hub, "admin", hub.admin_password)
    page.goto(f"{hub.url}/hub/admin#/groups")
    page.get_by_role("link", name="class").click()
    properties = page.locator(".properties-table tbody tr").last.locator("input")
    properties.nth(0).fill("gpu_quota")
    properties.nth(1).fill("3")
    page.get_by_test_id("add-item").click()
    expect(page.locator(".properties-table input[value=gpu_quota]")).to_have_count(1)
    page.screenshot(path=ARTIFACTS / "admin-group-properties.png", full_page=True)
    with page.expect_response(lambda r: r.request.method == "PUT" and "/properties" in r.url) as put:
        page.get_by_test_id("submit").click()  # "Apply"
    assert put.value.status == 200

    assert hub.api("GET", "/groups/class").json()["properties"] == {"gpu_quota": "3"}
    assert refusal(hub.spawn("pat", {"gpus": 4})).startswith(
        "gpus must be a whole number from 0 to 3 (your GPU quota), got 4.")


def test_a_bad_setting_stops_the_hub_with_one_line(engine, tmp_path):
    hub = Hub(workdir=tmp_path, nvml=FakeNVML(tmp_path / "gpus.state"),
              extra_env={"GPUHUB_GPU_SHARE": "0"})
    hub.write_config()
    result = subprocess.run(
        [sys.executable, "-m", "jupyterhub", "-f", str(REPO / "config" / "jupyterhub_config.py")],
        cwd=tmp_path, env=hub.environment(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "gpuhub: GPUHUB_GPU_SHARE='0' is not a valid GPUDockerSpawner.gpu_share" in result.stderr
    assert "fix or unset GPUHUB_GPU_SHARE" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr
