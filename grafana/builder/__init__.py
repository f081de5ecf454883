"""The dashboards as code, with grafana-foundation-sdk's builders: common.py holds what they
share, fleet.py, inverter.py and home.py one dashboard each. `python grafana/build_dashboard.py`
writes them to grafana/dashboards/; a test checks that the JSON there is what this produces.

- podero-fleet.json ("Podero fleet"): fleet totals, energy, the devices in trouble (every
  kind), firing alerts and exporter health per replica; nothing repeats per device.
- podero-inverter.json ("Podero inverter"): one inverter, picked by the `device_id` variable
  (listed by name); the home dashboard's device table links to it.
- podero-home.json ("Podero home"): every device of one home (a Podero user), picked by the
  `user_id` variable; the fleet and inverter dashboards link to it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from .fleet import fleet
from .home import home
from .inverter import inverter

DASHBOARDS_DIR = Path(__file__).resolve().parent.parent / "dashboards"
DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "podero-fleet.json": fleet,
    "podero-inverter.json": inverter,
    "podero-home.json": home,
}


def render(name: str) -> str:
    """The JSON of one dashboard, as written to grafana/dashboards/."""
    return json.dumps(DASHBOARDS[name](), cls=JSONEncoder, indent=2) + "\n"


def write() -> list[Path]:
    written = []
    for name in DASHBOARDS:
        path = DASHBOARDS_DIR / name
        path.write_text(render(name))
        written.append(path)
    return written
