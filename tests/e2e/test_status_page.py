"""The status page in headless Chromium: the table matches /api/v1/inverters, the filter box
filters, sorting sorts, a screenshot is saved, and a malicious name from the API is inert."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from exporter.app import Exporter
from exporter.clock import SystemClock
from exporter.sim import RunningSimulator, SimFleet, SimulatedApi, start_simulator
from exporter.web import WebApp, start_web
from tests.conftest import require_tool, to_config

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
EVIL = "<script>window.pwned=1</script><img src=x onerror=window.pwned=2>"


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    chromium = require_tool("chromium")
    driver_path = require_tool("chromedriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="chromium-")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1600,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    fleet = SimFleet(seed=5, inverters=240, orgs=2)
    # A customer whose external id is an attack: it becomes part of a discovered name.
    evil = dataclasses.replace(fleet.users[0], external_user_id=EVIL)
    fleet.users[0] = evil
    fleet.users_by_id[evil.id] = evil
    sim: RunningSimulator = start_simulator(SimulatedApi(fleet))
    info = sim.describe()
    config = to_config(
        {
            "podero": {
                "base_url": info["base_url"],
                "max_requests_per_second": 1000,
                "max_concurrency": 16,
                "auth": {"client_id": info["client_id"], "client_secret": info["client_secret"]},
            },
            "discovery": {"org_ids": info["org_ids"]},
        }
    )
    exporter = Exporter(config, SystemClock())
    exporter.refresh_inventory()
    exporter.poller.poll_all()
    web = start_web(
        "127.0.0.1:0",
        WebApp(exporter.page.chunks, lambda: True, lambda: None, exporter.status_view()),
    )
    try:
        yield f"http://127.0.0.1:{web.server_address[1]}"
    finally:
        web.shutdown()
        exporter.stop()
        sim.stop()


def api(site: str, endpoint: str = "inverters", **params: str) -> dict[str, Any]:
    url = f"{site}/api/v1/{endpoint}"
    return dict(requests.get(url, params=params, timeout=10).json())


def table_ids(browser: webdriver.Chrome) -> list[str]:
    rows = browser.find_elements(By.CSS_SELECTOR, "#inverters tbody tr")
    return [r.get_attribute("data-inverter-id") or "" for r in rows]


def test_table_matches_the_json_api(browser: webdriver.Chrome, site: str) -> None:
    browser.get(site + "/")
    # The page lists every device (the homes' heat pumps, EVs and wallboxes too).
    listed = api(site, "devices", sort="name", limit="1000")
    assert listed["total"] == len(listed["devices"]) > api(site)["total"] > 200
    first_page = [i["inverter_id"] for i in listed["devices"][:100]]
    assert table_ids(browser) == first_page
    cells = browser.find_elements(By.CSS_SELECTOR, "#inverters tbody tr:first-child td")
    assert cells[0].text == listed["devices"][0]["name"]
    assert cells[1].text == listed["devices"][0]["kind"]
    assert (
        f"{listed['total']} of {listed['total']} devices"
        in browser.find_element(By.ID, "count").text
    )
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "status-page.png"))
    assert (ARTIFACTS / "status-page.png").stat().st_size > 10_000


def test_filter_box_filters(browser: webdriver.Chrome, site: str) -> None:
    browser.get(site + "/")
    wanted = api(site, q="Fronius")
    box = browser.find_element(By.ID, "q")
    box.send_keys("Fronius")
    WebDriverWait(browser, 10).until(expected_conditions.url_contains("q=Fronius"))
    WebDriverWait(browser, 10).until(lambda b: len(table_ids(b)) == min(100, wanted["total"]))
    assert table_ids(browser) == [i["inverter_id"] for i in wanted["inverters"][:100]]
    assert 0 < wanted["total"] < api(site)["total"]
    assert all("Fronius" in i["manufacturer"] for i in wanted["inverters"])
    browser.save_screenshot(str(ARTIFACTS / "status-page-filtered.png"))


def test_sorting_by_a_column(browser: webdriver.Chrome, site: str) -> None:
    browser.get(site + "/")
    browser.find_element(By.CSS_SELECTOR, "th a[data-sort='solar_w']").click()
    WebDriverWait(browser, 10).until(expected_conditions.url_contains("sort=solar_w"))
    expected = [i["inverter_id"] for i in api(site, sort="solar_w")["inverters"][:100]]
    assert table_ids(browser) == expected


def test_malicious_name_is_rendered_inert(browser: webdriver.Chrome, site: str) -> None:
    browser.get(site + "/?" + "q=" + requests.utils.quote("window.pwned"))
    assert browser.execute_script("return window.pwned === undefined")
    names = [
        e.text for e in browser.find_elements(By.CSS_SELECTOR, "#inverters tbody td:first-child")
    ]
    assert any(EVIL in n for n in names)  # shown as text, not run
    raw = requests.get(site + "/", params={"q": "pwned"}, timeout=10).text
    assert "<script>window.pwned" not in raw and "&lt;script&gt;window.pwned" in raw
    assert os.path.exists(ARTIFACTS / "status-page.png")
