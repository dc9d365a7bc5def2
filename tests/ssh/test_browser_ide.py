"""VS Code in the browser: code-server in the user's server, started by
jupyter-server-proxy, reached through the real hub and proxy.

The image is the IDE layer on the test image (gpuhub/test-notebook-ide:<hub
version>), built here the way `gpuhub images build-test --ide` builds it
(images/ide_layer.py; reused when its recipe is unchanged). One hub for the module.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from playwright.sync_api import sync_playwright

from gpuhub.images import ide_layer, versions
from tests.integration.hubrig import IMAGE, Hub, container_of, running_hub, wait_for
from tests.integration.test_spawn_form_browser import CHROMIUM, CHROMIUM_ARGS, browser_login

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PASSWORD = "gpuhub-Test-pass-1"
IDE = ide_layer.PROXY_PATH


@pytest.fixture(scope="module")
def ide_image(engine) -> str:
    return ide_layer.build_test_ide(versions.load(), IMAGE)


@pytest.fixture(scope="module")
def hub(engine, nvml_library, ide_image, tmp_path_factory):
    extra_config = f"c.GPUDockerSpawner.image = {ide_image!r}\n"
    with running_hub(tmp_path_factory.mktemp("ide-hub"), 2, extra_config=extra_config) as hub:
        yield hub


@pytest.fixture(scope="module")
def alice(hub) -> requests.Session:
    """alice, logged in (a browser-like session), with her server running."""
    session = hub.login("alice", PASSWORD)
    hub.start_server("alice")
    return session


def get(hub: Hub, path: str, token: str, **kwargs) -> requests.Response:
    return requests.get(f"{hub.url}{path}", headers={"Authorization": f"token {token}"}, timeout=120, **kwargs)


def test_code_server_answers_through_the_proxy(hub, alice):
    token = hub.user_token("alice")
    response = get(hub, f"/user/alice/{IDE}/", token)
    assert response.status_code == 200, response.text[:500]
    # code-server sends a new window to its folder: the home directory.
    assert "folder=/home/jovyan" in response.url
    assert "workbench-web-configuration" in response.text and "code-server" in response.text


def test_vs_code_uses_the_notebook_servers_python(hub, engine, alice):
    """The launcher's first start writes the user settings: the Python extension (when
    installed) takes JupyterLab's interpreter; telemetry and update checks are off."""
    assert get(hub, f"/user/alice/{IDE}/", hub.user_token("alice")).status_code == 200
    container = container_of(engine, "alice")
    settings = json.loads(container.exec_run(["cat", "/home/jovyan/.local/share/code-server/User/settings.json"]).output)
    python = container.exec_run(["python3", "-c", "import sys, jupyter_server; print(sys.executable)"]).output.decode().strip()
    assert settings["python.defaultInterpreterPath"] == python == "/opt/venv/bin/python3"
    assert settings["telemetry.telemetryLevel"] == "off" and settings["update.mode"] == "none"
    assert settings["security.workspace.trust.enabled"] is False  # or the terminal asks first


def test_the_logged_in_browser_session_reaches_it(hub, alice):
    response = alice.get(f"{hub.url}/user/alice/{IDE}/", timeout=120)
    assert response.status_code == 200 and "workbench-web-configuration" in response.text


def test_another_users_token_is_refused(hub, alice):
    hub.create_users("bob")
    response = get(hub, f"/user/alice/{IDE}/", hub.user_token("bob"), allow_redirects=False)
    # A valid token without access to alice's server: the notebook server refuses it
    # before jupyter-server-proxy (and so code-server) sees the request.
    assert response.status_code == 403, response.status_code
    assert "workbench" not in response.text


def test_jupyterlabs_launcher_lists_vs_code(hub, alice):
    response = get(hub, "/user/alice/server-proxy/servers-info", hub.user_token("alice"))
    assert response.status_code == 200, response.text[:300]
    servers = {s["name"]: s for s in response.json()["server_processes"]}
    entry = servers[IDE]["launcher_entry"]
    assert entry["enabled"] and entry["title"] == "VS Code"
    icon = get(hub, entry["icon_url"] if entry["icon_url"].startswith("/") else f"/user/alice/{entry['icon_url']}",
               hub.user_token("alice"))
    assert icon.status_code == 200 and b"<svg" in icon.content


def shells(container) -> int:
    """How many bash processes run in the container."""
    return container.exec_run(["ps", "-eo", "comm="]).output.decode().split().count("bash")


def test_the_browser_ide_opens_from_jupyterlab(hub, engine, alice):
    """A person's view: JupyterLab's launcher card "VS Code" opens a tab with the
    workbench, its Explorer on the home directory (a file the notebook side wrote)."""
    ARTIFACTS.mkdir(exist_ok=True)
    container = container_of(engine, "alice")
    container.exec_run(["sh", "-c", "echo hello > /home/jovyan/written-by-jupyter.txt"])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        try:
            page = context.new_page()
            browser_login(page, hub, "alice", PASSWORD)
            page.goto(f"{hub.url}/user/alice/lab")
            card = page.locator(".jp-LauncherCard[title='VS Code'], .jp-LauncherCard:has-text('VS Code')").first
            card.wait_for(timeout=120_000)
            with context.expect_page(timeout=60_000) as opened:
                card.click()
            ide = opened.value
            ide.wait_for_selector(".monaco-workbench", timeout=120_000)
            assert f"/user/alice/{IDE}/" in ide.url
            ide.get_by_text("written-by-jupyter.txt").first.wait_for(timeout=60_000)
            # The integrated terminal: a shell in alice's container, through node-pty (a
            # native module the layer ships prebuilt) under code-server's pty host.
            before = shells(container)
            ide.keyboard.press("Control+Shift+Backquote")
            ide.wait_for_selector(".terminal-wrapper .xterm", timeout=60_000)
            wait_for(lambda: shells(container) > before, "a shell for VS Code's terminal", timeout=60)
            ide.screenshot(path=ARTIFACTS / "vscode-workbench.png")
        finally:
            browser.close()
