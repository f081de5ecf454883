"""The exporter in demo mode scraped by a real Prometheus server: every dashboard query returns
data and every dashboard variable has values."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
import requests

from tests.e2e.processes import wait_for
from tests.e2e.stack import Stack, demo_stack, has_data, query
from tests.test_dashboard import dashboard, data_panels

pytestmark = pytest.mark.e2e

# How the test stands in for Grafana: the values Grafana would put in for the variables.
VARIABLES = {"$job": "podero", "$name": ".*", "$__rate_interval": "30s"}


def substitute(expr: str) -> str:
    for key in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(key, VARIABLES[key])
    return expr


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from demo_stack(tmp_path_factory)


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    exprs = {substitute(t["expr"]): p["title"] for p in data_panels() for t in p["targets"]}

    def all_have_data() -> bool:
        return all(has_data(query(stack, e)) for e in exprs)

    try:
        wait_for(all_have_data, 120, "every dashboard query to return data")
    except AssertionError:
        empty = {title: e for e, title in exprs.items() if not has_data(query(stack, e))}
        raise AssertionError(f"queries without data: {json.dumps(empty, indent=1)}") from None


def test_every_dashboard_variable_has_values(stack: Stack) -> None:
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"])
        assert match, variable["query"]
        selector, label = substitute(match.group(1)), match.group(2)

        def values(selector: str = selector, label: str = label) -> list[str] | None:
            r = requests.get(
                f"{stack.prometheus}/api/v1/label/{label}/values",
                params={"match[]": selector},
                timeout=10,
            )
            return list(r.json()["data"]) or None

        found = wait_for(values, 60, f"values of {variable['name']}")
        if variable["name"] == "name":
            listed = requests.get(f"{stack.exporter}/api/v1/inverters", timeout=5).json()
            assert set(found) == {i["name"] for i in listed["inverters"]}
            assert len(found) == 3
