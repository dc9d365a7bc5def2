"""A person in a real browser (Debian's Chromium, driven by Playwright): sign up,
get approved, log in, pick GPUs in the spawn form, land in their notebook.

Screenshots go to tests/artifacts/.
"""

from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.fakes.fake_gpus import FakeNVML
from tests.integration.hubrig import container_of, gpus_of

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "gpuhub-Browser-pass-1"


def browser_login(page, hub, name, password):
    """Sign in on the hub's login page as a person does; returns once the hub let the page on."""
    page.goto(f"{hub.url}/hub/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("#login_submit")
    page.wait_for_url(lambda url: "/login" not in url)


@pytest.fixture
def page():
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_page(viewport={"width": 1100, "height": 800})
        browser.close()


def test_user_picks_gpus_in_the_spawn_form(start_hub, engine, page):
    gpus = FakeNVML.make_gpus(4)
    hub = start_hub(gpus)
    hub.create_users("rita", groups=("researchers",))  # quota 4 through group_overrides
    hub.start_server("rita", {"gpus": 1})

    page.goto(f"{hub.url}/hub/signup")
    page.fill("input[name=username]", "ann")
    page.fill("input[name=signup_password]", PASSWORD)
    page.fill("input[name=signup_password_confirmation]", PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    admin = hub.login("admin")
    assert admin.get(f"{hub.url}/hub/authorize/ann", timeout=30).status_code == 200

    browser_login(page, hub, "ann", PASSWORD)
    page.goto(f"{hub.url}/hub/spawn")

    help_text = page.locator("#gpuhub-gpus-help")
    expect(help_text).to_contain_text("3 of 4 GPUs free right now (NVIDIA H100 80GB HBM3)")
    expect(help_text).to_contain_text("Your quota: 2 GPUs over all your servers")
    options = page.locator("#gpuhub-gpus option").all_inner_texts()
    assert [o.strip() for o in options] == ["0 (CPU only)", "1", "2"]
    page.screenshot(path=ARTIFACTS / "spawn-form.png", full_page=True)

    page.select_option("#gpuhub-gpus", "2")
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url("**/user/ann/**", timeout=120_000)
    page.screenshot(path=ARTIFACTS / "notebook-started.png")

    held = gpus_of(container_of(engine, "ann"))
    assert len(held) == 2 and not set(held) & set(gpus_of(container_of(engine, "rita")))
