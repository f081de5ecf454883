"""The simulated homes' heat pumps, electric vehicles and wallboxes: deterministic, separate
from the inverters, realistic curves, and the API's listing, detail and data routes."""

from __future__ import annotations

import requests

from exporter.sim import Faults, RunningSimulator, SimFleet, SimulatedApi
from exporter.sim.devices import device_day
from tests.conftest import NOON
from tests.fakes import FakeClock
from tests.golden import GOLDEN
from tests.test_simulator import get

API = "/api/partners/v2.0"


def test_the_inverters_of_a_seed_do_not_change_with_the_devices() -> None:
    fleet = SimFleet(seed=7, inverters=5)
    # The golden file was written before the devices existed: the same inverter ids.
    golden = GOLDEN.read_text()
    assert all(f'device_id="{i.id}"' in golden for i in fleet.inverters)
    assert fleet.devices and {d.id for d in fleet.devices}.isdisjoint(fleet.by_id)


def test_homes_get_devices_by_their_position_and_deterministically() -> None:
    fleet = SimFleet(seed=3, inverters=12, second_every=0)
    kinds = {(d.user_id, d.kind) for d in fleet.devices}
    for n, user in enumerate(fleet.users):
        assert ((user.id, "heat_pump") in kinds) == (n % 2 == 0)
        assert ((user.id, "electric_vehicle") in kinds) == (n % 3 == 0)
        assert ((user.id, "wallbox") in kinds) == (n % 3 == 0)
    again = SimFleet(seed=3, inverters=12, second_every=0)
    assert [d.id for d in again.devices] == [d.id for d in fleet.devices]
    assert [d.id for d in SimFleet(seed=4, inverters=12).devices] != [d.id for d in fleet.devices]


def test_heat_pump_and_ev_curves_are_realistic() -> None:
    fleet = SimFleet(seed=3, inverters=12, second_every=0)
    day = int(NOON // 86400)
    for device in fleet.devices:
        if device.kind == "heat_pump":
            steps = device_day(device, day)
            inlet = [s["inlet_temp_act"] for s in steps]
            water = [s["hot_water_temp"] for s in steps]
            assert min(inlet) >= 34 and max(inlet) <= 56 and max(inlet) - min(inlet) > 10
            assert min(water) >= 44 and max(water) <= 62
        elif device.kind == "electric_vehicle":
            steps = device_day(device, day)
            by_hour = {k // 4: s for k, s in enumerate(steps)}  # UTC hours
            assert by_hour[20]["is_plugged_in"] and not by_hour[10]["is_plugged_in"]
            night = [s for k, s in enumerate(steps) if s["is_charging"]]
            assert night, "an EV charges overnight"
            assert all(s["is_plugged_in"] for s in night)
            levels = [float(s["battery_level"] or 0) for s in steps[0:20]]
            assert levels[-1] >= levels[0]


def test_users_listing_counts_the_devices_and_older_responses_do_not(
    sim: RunningSimulator,
) -> None:
    info = sim.describe()
    org = info["org_ids"][0]
    users = get(sim, f"{sim.base_url}{API}/org/{org}/users").json()
    fleet = sim.api.fleet
    for user in users:
        devices = [d for d in fleet.devices if d.user_id == user["id"]]
        assert user["num_heat_pumps"] == sum(d.kind == "heat_pump" for d in devices)
        assert user["num_electric_vehicles"] == sum(d.kind == "electric_vehicle" for d in devices)
        assert user["num_wallboxes"] == sum(d.kind == "wallbox" for d in devices)
        assert user["num_inverters"] == len(fleet.inverters_by_user[user["id"]])
    sim.api.faults = Faults(old_users_listing=True)
    old = get(sim, f"{sim.base_url}{API}/org/{org}/users").json()
    assert all("num_heat_pumps" not in u for u in old)


def test_device_routes_list_detail_and_data(sim: RunningSimulator) -> None:
    ev = next(d for d in sim.api.fleet.devices if d.kind == "electric_vehicle")
    home = f"{sim.base_url}{API}/org/{ev.org_id}/users/{ev.user_id}"
    listed = get(sim, f"{home}/electric-vehicles").json()
    assert [d["id"] for d in listed] == [ev.id]
    assert listed[0]["device_model"] == {"manufacturer": ev.manufacturer, "model": ev.model}
    assert listed[0]["actions"] == []
    assert get(sim, f"{home}/electric-vehicles/{ev.id}").json()["id"] == ev.id
    body = get(sim, f"{home}/electric-vehicles/{ev.id}/data").json()
    assert set(body) == {"metadata", "data"}
    measured = [p for p in body["data"] if p["battery_level"] is not None]
    assert measured and all(isinstance(p["is_plugged_in"], bool) for p in measured)
    # A wallbox has no data endpoint; another kind's id is not found.
    box = next(d for d in sim.api.fleet.devices if d.kind == "wallbox")
    assert get(sim, f"{home}/wallboxes/{box.id}/data").status_code == 404
    assert get(sim, f"{home}/heat-pumps/{ev.id}").status_code == 404
    stats = sim.api.stats()["responses"]
    assert stats["electric_vehicles"] == {"200": 1}
    assert stats["electric_vehicle_data"] == {"200": 1}


def test_one_heat_pump_needs_reauthentication_with_a_link() -> None:
    fleet = SimFleet(seed=7, inverters=5)
    api = SimulatedApi(fleet, FakeClock(NOON))
    pump = next(d for d in fleet.devices if d.actions)
    listing = api.device_detail(pump.org_id, pump.user_id, "heat_pump", pump.id)
    assert listing["actions"][0]["code"] == "reauthenticate"
    assert listing["actions"][0]["resolution_link"].startswith("https://")
    assert requests.utils.urlparse(listing["actions"][0]["resolution_link"]).netloc
