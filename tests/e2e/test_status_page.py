"""The status page in headless Chromium: the table matches /api/v1/inverters, the filter box
filters, sorting sorts, a home shows all its devices with their values, screenshots are
saved, and a malicious name from the API is inert."""

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
from exporter.base.clock import SystemClock
from exporter.kinds import registry
from exporter.render.status import value_keys
from exporter.serve.web import WebApp, start_web
from exporter.sim import RunningSimulator, SimFleet, SimulatedApi, start_simulator
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
def fleet() -> SimFleet:
    """240 inverters in about 210 homes; every second home has a heat pump, every third an
    electric vehicle with a wallbox."""
    fleet = SimFleet(seed=5, inverters=240, orgs=2)
    # A customer whose external id is an attack: it becomes part of a discovered name.
    evil = dataclasses.replace(fleet.users[0], external_user_id=EVIL)
    fleet.users[0] = evil
    fleet.users_by_id[evil.id] = evil
    return fleet


@pytest.fixture(scope="module")
def site(fleet: SimFleet) -> Iterator[str]:
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
    return [r.get_attribute("data-device-id") or "" for r in rows]


def test_table_matches_the_json_api(browser: webdriver.Chrome, site: str) -> None:
    browser.get(site + "/")
    # The page lists every device (the homes' heat pumps, EVs and wallboxes too).
    listed = api(site, "devices", sort="name", limit="1000")
    assert listed["total"] == len(listed["devices"]) > api(site)["total"] > 200
    first_page = [i["device_id"] for i in listed["devices"][:100]]
    assert table_ids(browser) == first_page
    cells = browser.find_elements(By.CSS_SELECTOR, "#inverters tbody tr:first-child td")
    assert cells[0].text == listed["devices"][0]["name"]
    assert cells[1].text == listed["devices"][0]["kind"]
    assert (
        f"{listed['total']} of {listed['total']} devices"
        in browser.find_element(By.ID, "count").text
    )
    # Long hostile names wrap rather than push the last columns off the window.
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 1600
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
    assert table_ids(browser) == [i["device_id"] for i in wanted["inverters"][:100]]
    assert 0 < wanted["total"] < api(site)["total"]
    assert all("Fronius" in i["manufacturer"] for i in wanted["inverters"])
    browser.save_screenshot(str(ARTIFACTS / "status-page-filtered.png"))


def test_sorting_by_a_column(browser: webdriver.Chrome, site: str) -> None:
    browser.get(site + "/")
    browser.find_element(By.CSS_SELECTOR, "th a[data-sort='solar_w']").click()
    WebDriverWait(browser, 10).until(expected_conditions.url_contains("sort=solar_w"))
    expected = [i["device_id"] for i in api(site, sort="solar_w")["inverters"][:100]]
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


def home_devices(fleet: SimFleet, user_id: str) -> dict[str, str]:
    """A simulated home's devices that are not deleted: id -> kind."""
    found = {i.id: "inverter" for i in fleet.inverters_by_user[user_id] if not i.deleted}
    found.update({d.id: d.kind for d in fleet.devices if d.user_id == user_id and not d.deleted})
    return found


def shown(key: str, row: dict[str, Any]) -> str:
    """How the table shows the JSON row's value of the column `key`."""
    value = row[key]
    if key == "plugged_in" and row["charging"]:  # charging implies plugged in
        return "charging"
    if key == "plugged_in" and value is not None:
        return "plugged in" if value else "unplugged"
    if value is None:
        return "-"
    if key.endswith("_w"):
        return f"{value:,.0f} W"
    if key == "battery_ratio":
        return f"{value * 100:.0f} %"
    if key.endswith("_celsius"):
        return f"{value:.1f} °C"
    return f"{value:g}"


def test_a_home_shows_all_its_devices_with_their_values(
    browser: webdriver.Chrome, site: str, fleet: SimFleet
) -> None:
    # The first home after the hostile one with a device of every kind.
    user = next(
        u.id
        for u in fleet.users[1:]
        if set(home_devices(fleet, u.id).values()) == set(registry.names())
    )
    expected = home_devices(fleet, user)
    owner = fleet.users_by_id[user].external_user_id
    # Reached from the main table: the user of a row links to their home.
    browser.get(site + "/?" + requests.compat.urlencode({"q": owner}))
    browser.find_element(By.CSS_SELECTOR, "#inverters tbody tr:first-child a.home").click()
    WebDriverWait(browser, 10).until(expected_conditions.url_contains(f"user_id={user}"))
    assert browser.find_element(By.CSS_SELECTOR, "#home h2").text == f"Home {owner}"
    assert browser.find_element(By.ID, "owner").text == owner
    counts = {kind: list(expected.values()).count(kind) for kind in registry.names()}
    kinds = browser.find_element(By.ID, "kinds").text
    for kind, n in counts.items():
        name = kind.replace("_", " ")
        assert f"{n} {name}" + ("" if n == 1 else "es" if name.endswith("x") else "s") in kinds
    polled = len(expected) - counts["wallbox"]
    assert kinds.endswith(f" · {polled} of {polled} reporting"), kinds

    listed = api(site, "devices", user_id=user)
    assert listed["home"]["kinds"] == counts
    rows = {r["device_id"]: r for r in listed["devices"]}
    assert {i: r["kind"] for i, r in rows.items()} == expected
    # The simulator's data is current: each polled kind shows its values.
    by_kind = {r["kind"]: r for r in rows.values()}
    assert by_kind["inverter"]["solar_w"] is not None
    assert by_kind["heat_pump"]["hot_water_celsius"] is not None
    assert by_kind["heat_pump"]["inlet_celsius"] is not None
    assert by_kind["electric_vehicle"]["battery_ratio"] is not None
    assert by_kind["electric_vehicle"]["plugged_in"] in (0.0, 1.0)

    columns = [a.get_attribute("data-sort") for a in browser.find_elements(By.CSS_SELECTOR, "th a")]
    table = browser.find_elements(By.CSS_SELECTOR, "#inverters tbody tr")
    assert table_ids(browser) == [r["device_id"] for r in listed["devices"]]
    for tr in table:
        row = rows[tr.get_attribute("data-device-id") or ""]
        cells = dict(
            zip(columns, (td.text for td in tr.find_elements(By.TAG_NAME, "td")), strict=True)
        )
        assert (cells["name"], cells["kind"]) == (row["name"], row["kind"])
        assert tr.get_attribute("data-kind") == row["kind"]
        for key in value_keys():
            if key != "charging":  # in the plugged_in column
                assert cells[key] == shown(key, row), (row["kind"], key)
    # All 16 columns fit a 1600-pixel window: no sideways scrolling.
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 1600
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "status-home.png"))
    assert (ARTIFACTS / "status-home.png").stat().st_size > 10_000


def test_the_hostile_home_is_inert_and_a_bad_user_id_is_refused(
    browser: webdriver.Chrome, site: str, fleet: SimFleet
) -> None:
    evil_home = fleet.users[0].id
    browser.get(site + f"/?user_id={evil_home}")
    assert browser.execute_script("return window.pwned === undefined")
    assert browser.find_element(By.ID, "owner").text == EVIL
    assert len(table_ids(browser)) == len(home_devices(fleet, evil_home))
    refused = requests.get(site + "/", params={"user_id": EVIL}, timeout=10)
    assert refused.status_code == 400 and "<script>" not in refused.text
