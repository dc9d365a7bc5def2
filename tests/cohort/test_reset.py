"""Reset my environment on a real hub, proxy and containers: from the home
page in Chromium, with `gpuhub reset` (admin yes, another user no), at the
next start of a stopped server, and bad names answered with a message.

One hub for the module; each test has its own users.
"""

import subprocess
import sys

import pytest
from playwright.sync_api import expect, sync_playwright

from gpuhub.hub.cohort import names
from tests.integration.hubrig import IMAGE, PREFIX, container_of, running_hub, wait_for
from tests.integration.test_spawn_form_browser import CHROMIUM, CHROMIUM_ARGS, browser_login
PASSWORD = "gpuhub-Reset-pass-1"
TORCH = ".local/lib/python3.11/site-packages/torch/__init__.py"
BROKEN_HOME = (
    f"mkdir -p $(dirname ~/{TORCH}) && echo 'raise ImportError(\"broken\")' > ~/{TORCH}"
    " && mkdir -p ~/.jupyter && echo '{}' > ~/.jupyter/jupyter_server_config.json"
    " && echo 'my work' > ~/notes.txt"
)


# cohort ml-101 (member max, instructor ivy) as `gpuhub cohort import` makes it (hub/cohort/names.py)
COHORT = f"""
c.GPUDockerSpawner.default_gpus = 0
c.JupyterHub.load_groups = {{
    "ml-101": {{"users": ["max"]}},
    {names.instructors_group("ml-101")!r}: {{"users": ["ivy"]}},
}}
c.JupyterHub.load_roles.append({{
    "name": {names.instructor_role_name("ml-101")!r},
    "scopes": {names.instructor_scopes("ml-101")!r},
    "groups": [{names.instructors_group("ml-101")!r}],
}})
"""


@pytest.fixture(scope="module")
def hub(engine, nvml_library, tmp_path_factory):
    with running_hub(tmp_path_factory.mktemp("reset-hub"), 2, extra_config=COHORT) as hub:
        yield hub


def in_home(engine, user: str, command: str) -> str:
    result = container_of(engine, user).exec_run(["sh", "-c", f"cd ~ && {command}"], user="1000")
    assert result.exit_code == 0, result.output
    return result.output.decode()


def home_listing(engine, user: str) -> list[str]:
    return in_home(engine, user, "ls -A").split()


def reset_folders(listing):
    return [name for name in listing if name.startswith(".reset-")]


def gpuhub_reset(hub, *args, token):
    return subprocess.run(
        [sys.executable, "-m", "gpuhub.hub.cli", "reset", *args, "--hub-url", hub.url, "--token", token],
        capture_output=True, text=True, timeout=300,
    )


def assert_reset(engine, user: str, old_id: str):
    """A new container; .local and .jupyter moved into one .reset-* folder with their
    content (the new server may make a fresh ~/.local: Jupyter's runtime files); the
    home file where it was."""
    assert container_of(engine, user).id != old_id
    listing = home_listing(engine, user)
    assert in_home(engine, user, f"test -e ~/{TORCH} || echo gone") == "gone\n"
    assert ".jupyter" not in listing
    assert "notes.txt" in listing and in_home(engine, user, "cat notes.txt") == "my work\n"
    (folder,) = reset_folders(listing)
    assert in_home(engine, user, f"cat {folder}/{TORCH}") == 'raise ImportError("broken")\n'
    assert {".jupyter", ".local"} <= set(in_home(engine, user, f"ls -A {folder}").split())


def test_a_user_resets_their_server_from_the_home_page(hub, engine):
    hub.login("ann", PASSWORD)  # signed up and approved
    hub.start_server("ann")
    in_home(engine, "ann", BROKEN_HOME)
    old_id = container_of(engine, "ann").id

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        browser_login(page, hub, "ann", PASSWORD)
        page.goto(f"{hub.url}/hub/home")
        page.click("#gpuhub-reset")
        moves = page.locator("#gpuhub-reset-moves")
        for name in (".local", ".jupyter", ".ipython", ".config", ".cache", ".conda", ".condarc"):
            expect(moves).to_contain_text(f"~/{name}")
        expect(moves).to_contain_text("~/.reset-")
        page.click("#gpuhub-reset-confirm")
        page.wait_for_url("**/user/ann/**", timeout=180_000)  # through the spawn-pending page
        browser.close()

    assert hub.server("ann")["ready"]
    assert_reset(engine, "ann", old_id)
    assert hub.api("GET", "/users/ann/server/reset").json()["pending"] is None


def test_gpuhub_reset_as_admin_and_refused_to_another_user(hub, engine):
    hub.create_users("bob", "carl")
    hub.start_server("bob")
    in_home(engine, "bob", BROKEN_HOME)
    old_id = container_of(engine, "bob").id

    refused = gpuhub_reset(hub, "bob", token=hub.user_token("carl"))
    assert refused.returncode == 1
    assert "403" in refused.stderr and "needs the 'servers' scope" in refused.stderr
    assert container_of(engine, "bob").id == old_id
    assert ".local" in home_listing(engine, "bob") and not reset_folders(home_listing(engine, "bob"))
    assert hub.api("GET", "/users/bob/server/reset").json()["pending"] is None

    done = gpuhub_reset(hub, "bob", token=hub.user_token("admin"))
    assert done.returncode == 0, done.stderr
    assert "bob's server is starting again in a fresh container" in done.stdout
    assert "~/.local -> ~/.reset-" in done.stdout
    state, message = hub.wait_spawn("bob")
    assert state == "ready", message
    assert_reset(engine, "bob", old_id)


def test_a_stopped_server_is_reset_at_its_next_start(hub, engine):
    hub.create_users("dora")
    hub.start_server("dora")
    in_home(engine, "dora", BROKEN_HOME)
    old_id = container_of(engine, "dora").id
    hub.stop_server("dora")

    done = gpuhub_reset(hub, "dora", token=hub.user_token("dora"))  # her own
    assert done.returncode == 0, done.stderr
    assert "dora's server is stopped" in done.stdout
    pending = hub.api("GET", "/users/dora/server/reset").json()["pending"]
    assert pending
    assert hub.server("dora") is None  # not started by the request
    hub.restart()  # the request is in the server's state in the hub's database
    assert hub.api("GET", "/users/dora/server/reset").json()["pending"] == pending

    hub.start_server("dora")
    assert_reset(engine, "dora", old_id)
    assert reset_folders(home_listing(engine, "dora")) == [f".reset-{pending}"]
    assert hub.api("GET", "/users/dora/server/reset").json()["pending"] is None


def test_bad_names_get_a_message_not_a_500(hub):
    hub.create_users("erin")
    for path, status, message in [
        ("/users/nobody-here/server/reset", 404, "No user named 'nobody-here'"),
        ("/users/erin/servers/no-such-server/reset", 404, "erin has no server named 'no-such-server'"),
    ]:
        answer = hub.api("POST", path, json={})
        assert answer.status_code == status, answer.text
        assert answer.json()["message"] == message


def test_a_move_that_fails_changes_nothing_and_can_be_cancelled(hub, engine):
    hub.create_users("finn")
    hub.start_server("finn")
    in_home(engine, "finn", BROKEN_HOME)
    hub.stop_server("finn")
    # a folder the notebook user cannot move (root's, as an old image might leave it)
    engine.containers.run(IMAGE, ["mkdir", "/h/.cache"], user="0", remove=True,
                          volumes={f"{PREFIX}-user-finn": {"bind": "/h", "mode": "rw"}})
    token = hub.user_token("finn")
    assert gpuhub_reset(hub, "finn", token=token).returncode == 0

    assert hub.spawn("finn").status_code in (202, 409)
    state, message = hub.wait_spawn("finn")
    assert state == "failed"
    assert ("Your environment was not reset and nothing was moved: ~/.cache could not be moved "
            "(Permission denied). To start without the reset, cancel it on /hub/reset/finn") in message
    assert hub.api("GET", "/users/finn/server/reset").json()["pending"]

    cancelled = gpuhub_reset(hub, "finn", "--cancel", token=token)
    assert cancelled.returncode == 0 and "cancelled the waiting reset" in cancelled.stdout
    hub.start_server("finn")
    after = home_listing(engine, "finn")  # nothing moved, nothing lost
    assert {".cache", ".jupyter", ".local", "notes.txt"} <= set(after) and not reset_folders(after)
    assert in_home(engine, "finn", f"cat ~/{TORCH}") == 'raise ImportError("broken")\n'


def test_an_instructor_resets_a_member_and_not_others(hub, engine):
    hub.create_users("gus")  # in no cohort
    token = hub.user_token("ivy")
    hub.start_server("max")
    in_home(engine, "max", BROKEN_HOME)
    old_id = container_of(engine, "max").id

    refused = hub.api("POST", "/users/gus/server/reset", token=token, json={})
    assert refused.status_code == 403
    assert "needs the 'servers' scope" in refused.json()["message"]
    assert hub.api("GET", "/users/gus/server/reset").json()["pending"] is None

    done = gpuhub_reset(hub, "max", token=token)
    assert done.returncode == 0, done.stderr
    state, message = hub.wait_spawn("max")
    assert state == "ready", message
    assert_reset(engine, "max", old_id)


def test_the_page_form_needs_its_xsrf_token_and_can_cancel(hub):
    hub.create_users("hana")  # never started: the reset waits for her first start
    admin = hub.login("admin")
    forged = admin.post(f"{hub.url}/hub/reset/hana", data={"action": "reset"}, allow_redirects=False,
                        timeout=60)
    assert forged.status_code == 403
    assert hub.api("GET", "/users/hana/server/reset").json()["pending"] is None

    asked = hub.form_post(admin, "/hub/reset/hana", {"action": "reset"})
    assert asked.status_code == 302 and asked.headers["Location"].endswith("/hub/spawn/hana")
    pending = hub.api("GET", "/users/hana/server/reset").json()["pending"]
    assert pending
    page = admin.get(f"{hub.url}/hub/reset/hana", timeout=60).text
    assert "already waiting" in page and f"~/.reset-{pending}/.local" in page

    cancelled = hub.form_post(admin, "/hub/reset/hana", {"action": "cancel"})
    assert cancelled.status_code == 302 and cancelled.headers["Location"].endswith("/hub/home")
    assert hub.api("GET", "/users/hana/server/reset").json()["pending"] is None


def test_a_named_server_is_reset_on_its_own_path(hub, engine):
    hub.create_users("ines")

    def named_ready():
        server = hub.api("GET", "/users/ines").json()["servers"].get("two")
        return bool(server and server["ready"])

    assert hub.api("POST", "/users/ines/servers/two", json={}).status_code in (201, 202)
    wait_for(named_ready, "ines's server 'two' to start", timeout=180)
    container = engine.containers.get(f"{PREFIX}-ines--two")
    assert container.exec_run(["sh", "-c", f"cd ~ && {BROKEN_HOME}"], user="1000").exit_code == 0

    answer = hub.api("POST", "/users/ines/servers/two/reset", json={})
    assert answer.status_code == 202 and answer.json()["restarted"], answer.text
    wait_for(named_ready, "ines's server 'two' to start again", timeout=180)
    fresh = engine.containers.get(f"{PREFIX}-ines--two")
    assert fresh.id != container.id
    listing = fresh.exec_run(["ls", "-A", "/home/jovyan"], user="1000").output.decode().split()
    assert "notes.txt" in listing and len(reset_folders(listing)) == 1
