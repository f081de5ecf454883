"""A simulator of the Podero Partner API on loopback, for `--demo`, the tests and benchmarks.

Loaded only by `--demo`, `podero-simulator` and the tests: the daemon never imports it.
`fleet` models the homes and their data, `api` the API's behaviour (tokens, endpoints,
faults), `server` serves it over HTTP, `process` runs it as a child process.
"""

from exporter.sim.api import Faults, SimulatedApi
from exporter.sim.fleet import SimFleet
from exporter.sim.process import spawn, stop_process
from exporter.sim.server import RunningSimulator, demo_config, start_simulator

__all__ = [
    "Faults",
    "RunningSimulator",
    "SimFleet",
    "SimulatedApi",
    "demo_config",
    "spawn",
    "start_simulator",
    "stop_process",
]
