"""The Podero Partner API as the exporter reads it: endpoints, bearer tokens with the 401-once
rule, and parsing of the answers. Sits on the transport; knows nothing of Prometheus."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

from exporter.api.auth import TokenProvider
from exporter.api.transport import InvalidResponse, Reply, Transport, decode_json
from exporter.base.text import clean_text
from exporter.config.savings import UnitsConfig
from exporter.kinds import registry
from exporter.kinds.kind import Field, InvalidData
from exporter.state.readings import DataPoint, parse_data_response
from exporter.state.savings import Answer, PriceUnits, parse_savings_response, price_units

log = logging.getLogger(__name__)

API_PREFIX = "/api/partners/v2.0"
Parsed = TypeVar("Parsed")


def iso(epoch: float) -> str:
    """Epoch seconds as the API's date-time form, `2021-01-01T00:15:00Z`."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PoderoClient:
    """The Partner API endpoints the exporter reads, with bearer tokens and the 401-once rule."""

    def __init__(self, base_url: str, transport: Transport, tokens: TokenProvider) -> None:
        self._base = base_url.rstrip("/") + API_PREFIX
        self._transport = transport
        self._tokens = tokens

    @property
    def token_expires_at(self) -> float | None:
        return self._tokens.expires_at

    def yielding(self) -> AbstractContextManager[None]:
        """Calls in the block take only request slots nobody else wants (see
        `RequestBudget.yielding`): for work that must never delay the data polls."""
        return self._transport.yielding()

    def holding_bodies(self) -> AbstractContextManager[None]:
        """Bodies read in the block keep their share of the byte budget until it ends (see
        `Transport.holding_bodies`): for a caller that uses what it got before letting go."""
        return self._transport.holding_bodies()

    def get_json(
        self,
        endpoint: str,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        deadline: float | None = None,
    ) -> Any:
        """GET a path below the API prefix; a 401 tries once more with a renewed token. Every
        try and wait of the call (both sends) ends by one deadline (default: the transport's
        call timeout from now)."""
        return self.get_parsed(endpoint, path, params, lambda body: body, deadline=deadline)

    def get_parsed(
        self,
        endpoint: str,
        path: str,
        params: Mapping[str, str] | None,
        parse: Callable[[Any], Parsed],
        *,
        deadline: float | None = None,
    ) -> Parsed:
        """`get_json`, then `parse` of the JSON: the body holds its share of the transport's
        byte budget until `parse` is done, so bodies parsed at once stay within it."""
        url = self._base + path
        if deadline is None:
            deadline = self._transport.call_deadline()
        with self._transport.holding_bodies():
            try:
                reply = self._send_authorized(endpoint, url, params, deadline)
                body = decode_json(endpoint, reply)
            except InvalidResponse:
                self._transport.observer.invalid_response(endpoint)
                raise
            del reply  # the text goes before parsing, not after
            parsed = parse(body)
            del body  # and the JSON before the share is given back
        return parsed

    def _send_authorized(
        self, endpoint: str, url: str, params: Mapping[str, str] | None, deadline: float
    ) -> Reply:
        # A 401 is tried once more with a newer token, as the token provider rations them.
        return self._tokens.authorized(
            endpoint,
            lambda token: self._transport.send(
                endpoint, "GET", url, params=params, headers=_bearer(token), deadline=deadline
            ),
        )

    def device_data(
        self,
        kind: str,
        org_id: str,
        user_id: str,
        device_id: str,
        *,
        start: float,
        end: float,
        resolution: str,
    ) -> list[DataPoint]:
        """The points of a device of `kind` (one with a data series) in [start, end], sorted
        by time."""
        return self.device_series(
            kind, org_id, user_id, device_id, start=start, end=end, resolution=resolution
        )[0]

    def device_series(
        self,
        kind: str,
        org_id: str,
        user_id: str,
        device_id: str,
        *,
        start: float,
        end: float,
        resolution: str,
        units: UnitsConfig | None = None,
    ) -> tuple[list[DataPoint], PriceUnits | None]:
        """`device_data`, and what its prices are counted in (the metadata's units, else the
        `units` fallback)."""
        found = registry.get(kind)
        path = _device_path(found.path, org_id, user_id, device_id)
        fallback = units or UnitsConfig()
        return self._data(found.data_endpoint, path, found.fields, start, end, resolution, fallback)

    def device_savings(
        self,
        kind: str,
        org_id: str,
        user_id: str,
        device_id: str,
        *,
        now: float,
        resolution: str,
        units: UnitsConfig,
        stale_at: float,
    ) -> Answer:
        """What the optimisation saved a heat pump or vehicle in the period of `resolution`
        (1DAY, 1MONTH) that holds `now`."""
        found = registry.get(kind)
        path = _device_path(found.path, org_id, user_id, device_id) + "/savings"
        return self._savings(found.savings_endpoint, path, now, resolution, units, stale_at)

    def organization_savings(
        self, org_id: str, *, now: float, resolution: str, units: UnitsConfig, stale_at: float
    ) -> Answer:
        """What the optimisation saved all the organization's devices in the period that
        holds `now`."""
        path = f"/org/{_segment(org_id)}/devices/savings"
        return self._savings("organization_savings", path, now, resolution, units, stale_at)

    def _savings(
        self,
        endpoint: str,
        path: str,
        now: float,
        resolution: str,
        units: UnitsConfig,
        stale_at: float,
    ) -> Answer:
        # From a whole period back: the bucket that holds now, however the API reads a range.
        back = 31 * 86400 if resolution == "1MONTH" else 86400

        def parse(body: Any) -> Answer:
            try:
                return parse_savings_response(
                    body, now=now, resolution=resolution, fallback=units, stale_at=stale_at
                )
            except InvalidData as exc:
                self._transport.observer.invalid_response(endpoint)
                raise InvalidResponse(endpoint, clean_text(str(exc), 300)) from None

        params = {
            "from_datetime": iso(now - back),
            "to_datetime": iso(now),
            "resolution": resolution,
        }
        return self.get_parsed(endpoint, path, params, parse)

    def _data(
        self,
        endpoint: str,
        path: str,
        fields: tuple[Field, ...],
        start: float,
        end: float,
        resolution: str,
        units: UnitsConfig,
    ) -> tuple[list[DataPoint], PriceUnits | None]:
        def parse(body: Any) -> tuple[list[DataPoint], PriceUnits | None]:
            price = price_units(body, units)
            if isinstance(body, dict) and isinstance(body.get("data"), list):
                body["data"] = _LetGo(body["data"])
            try:
                return parse_data_response(body, until=end, fields=fields), price
            except InvalidData as exc:
                self._transport.observer.invalid_response(endpoint)
                raise InvalidResponse(endpoint, clean_text(str(exc), 300)) from None

        return self.get_parsed(
            endpoint,
            path + "/data",
            {"from_datetime": iso(start), "to_datetime": iso(end), "resolution": resolution},
            parse,
        )


class _LetGo(list[Any]):
    """A body's list of points that lets go of each point's JSON as it is iterated: its
    DataPoint exists by then, so parsing never holds every point twice."""

    def __iter__(self) -> Iterator[Any]:
        for index in range(len(self)):
            item = self[index]
            self[index] = None
            yield item


def _device_path(path: str, org_id: str, user_id: str, device_id: str) -> str:
    return f"/org/{_segment(org_id)}/users/{_segment(user_id)}/{path}/{_segment(device_id)}"


def _segment(value: str) -> str:
    """An id as one path segment: whatever it holds cannot leave its place in the path."""
    return quote(value, safe="")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
