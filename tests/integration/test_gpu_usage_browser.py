"""The GPU usage pages in a real browser (Debian's Chromium, driven by
Playwright): a user sees their own GPUs on the hub home page and on "My GPUs";
an admin sees every GPU, its holder, and a job outside the hub. The usage
pages have the hub's own top bar (same items, logo and logout as the hub's pages).

Screenshots go to tests/artifacts/gpu-usage-*.png.
"""

import os

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from tests.fakes.fake_gpus import FakeNVML, FakeProcess
from tests.integration.hubrig import PREFIX, container_of, gpus_of, wait_for
from tests.integration.test_spawn_form_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, browser_login

PASSWORD = "gpuhub-Test-pass-1"  # hubrig's Hub.login default


@pytest.fixture(autouse=True)
def fast_sampler(monkeypatch):
    monkeypatch.setenv("GPUHUB_USAGE_INTERVAL", "1")
    monkeypatch.setenv("GPUHUB_USAGE_CONTAINER_PREFIX", f"{PREFIX}-")


@pytest.fixture
def browser():
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def log_in(browser, hub, name, password=PASSWORD):
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    browser_login(page, hub, name, password)
    return page


NAVBAR = """() => Array.from(document.querySelectorAll('nav.navbar a, nav.navbar button, nav.navbar img'))
    .map(e => [e.tagName, e.id, e.textContent.trim(), e.getAttribute('href') || e.getAttribute('src') || ''])"""


def same_top_bar(page, hub):
    """The usage page's top bar against the hub home page's, item by item."""
    usage_bar = page.evaluate(NAVBAR)
    page.goto(f"{hub.url}/hub/home")
    hub_bar = page.evaluate(NAVBAR)
    assert usage_bar == hub_bar
    texts = [item[2] for item in hub_bar]
    assert "GPU usage" in texts and "Logout" in texts and "Home" in texts
    return hub_bar


def test_user_and_admin_see_gpu_usage(start_hub, engine, browser):
    gpus = FakeNVML.make_gpus(4)
    hub = start_hub(gpus)
    hub.login("rita")  # signs up admin and rita, approves rita
    hub.create_users("bob")
    hub.start_server("rita", {"gpus": 1})
    hub.start_server("bob", {"gpus": 2})
    (rita_gpu,) = gpus_of(container_of(engine, "rita"))
    bob_gpus = gpus_of(container_of(engine, "bob"))
    free = next(g for g in gpus if g.uuid not in {rita_gpu, *bob_gpus})
    for gpu in gpus:
        if gpu.uuid == rita_gpu:
            gpu.util_gpu, gpu.mem_used = 42, 20 * 2**30
    hub.nvml.write(gpus, [FakeProcess(uuid=free.uuid, pid=os.getpid(), mem=2**30)])
    admin_token = hub.user_token("admin")

    def sampled():
        data = requests.get(f"{hub.url}/services/gpu-usage/api/gpus",
                            headers={"Authorization": f"token {admin_token}"}, timeout=10)
        return data.ok and data.json()["totals"]["outside_processes"] == 1 and any(
            g["utilization"] == 42 for g in data.json()["gpus"])

    wait_for(sampled, "the sampler to see the new load", timeout=30)

    # ---- a user: home page, then "My GPUs" ----
    page = log_in(browser, hub, "rita")
    page.goto(f"{hub.url}/hub/home")
    row = page.frame_locator("#gpuhub-home-gpus iframe").locator(f'tr[data-uuid="{rita_gpu}"]')
    expect(row.locator(".gpu-util")).to_have_text("42 %", timeout=15_000)
    expect(row.locator(".gpu-mem")).to_have_text("20.0 GiB / 80.0 GiB")
    page.screenshot(path=ARTIFACTS / "gpu-usage-home.png", full_page=True)

    page.click("#nav-gpu-usage")
    page.wait_for_url("**/services/gpu-usage/")
    rows = page.locator("#my-gpus tr.gpu-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-uuid", rita_gpu)
    expect(rows.first.locator(".gpu-util")).to_have_text("42 %")
    expect(rows.first.locator(".gpu-mem")).to_have_text("20.0 GiB / 80.0 GiB")
    expect(rows.first.locator("svg.gpu-spark")).to_have_count(1)
    expect(page.locator("#gpu-hours-week")).to_be_visible()
    assert "bob" not in page.content()
    page.screenshot(path=ARTIFACTS / "gpu-usage-mine.png", full_page=True)
    assert "Admin" not in [item[2] for item in same_top_bar(page, hub)]
    response = page.goto(f"{hub.url}/services/gpu-usage/all")
    assert response.status == 403
    expect(page.locator("#gpu-usage-error")).to_contain_text("custom:gpu-usage:read-all")

    # ---- an admin: every GPU, its holder, the job outside the hub ----
    page = log_in(browser, hub, "admin", hub.admin_password)
    page.goto(f"{hub.url}/hub/home")
    page.click("#nav-gpu-usage")
    page.wait_for_url("**/services/gpu-usage/")
    page.click("text=All GPUs")
    page.wait_for_url("**/services/gpu-usage/all")
    rows = page.locator("#all-gpus tr.gpu-row")
    expect(rows).to_have_count(4)
    holders = {
        rows.nth(i).get_attribute("data-uuid"): rows.nth(i).locator(".gpu-holder").inner_text().strip()
        for i in range(4)
    }
    # Nobody holds the last GPU, but a job outside the hub runs there: busy, not free.
    assert holders == {rita_gpu: "rita", bob_gpus[0]: "bob", bob_gpus[1]: "bob", free.uuid: "busy"}
    rita_row = page.locator(f'#all-gpus tr[data-uuid="{rita_gpu}"]')
    expect(rita_row.locator(".gpu-util")).to_have_text("42 %")
    expect(page.locator("#total-held")).to_have_text("3 held")
    expect(page.locator("#total-free")).to_have_text("0 free")
    expect(page.locator("#total-busy")).to_have_text("1 busy")
    expect(page.locator("#total-users")).to_have_text("2 users holding GPUs")
    expect(page.locator("#outside-processes tbody tr")).to_have_count(1)
    expect(page.locator("#outside-processes")).to_contain_text(str(os.getpid()))
    page.screenshot(path=ARTIFACTS / "gpu-usage-all.png", full_page=True)
    assert "Admin" in [item[2] for item in same_top_bar(page, hub)]
