"""Property-based tests (hypothesis) of every parser that takes outside input: data points,
token responses, listings, bodies on the wire, the config. Whatever comes in, each either
gives a well-formed result or refuses with its own error type: never another exception,
never a string that cannot be shown."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import math
import re
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.api.auth import MAX_LIFETIME, MIN_LIFETIME, token_from_response, token_lifetime
from exporter.api.discovery import default_name, inventory_from, owner_of
from exporter.api.transport import (
    BadBody,
    BodyTooLarge,
    InvalidResponse,
    parse_retry_after,
    read_body,
)
from exporter.base.safeyaml import RefusedYaml, load_yaml
from exporter.base.text import clean_text
from exporter.config.model import Config, ConfigError, parse_config
from exporter.state.readings import InvalidData, field_names, parse_data_response
from tests.conftest import NOON, minimal_config

VALUE_FIELDS = field_names("inverter")

# Any Unicode, lone surrogates included (what json.loads makes of "\udXXX" escapes).
ANY_CHAR = st.characters(exclude_categories=())
ANY_TEXT = st.text(alphabet=ANY_CHAR, max_size=300)
NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, ANY_TEXT)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)
TIMES = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(["2026-11-23T12:00:00Z", "2026-11-23T13:00:00Z", "2026-11-23T11:45:00Z"]),
    ANY_TEXT,
    NUMBERS,
    st.none(),
)
POINTS = st.fixed_dictionaries(
    {"time": TIMES},
    optional={field: st.one_of(NUMBERS, st.none(), ANY_TEXT) for field in VALUE_FIELDS},
)
_SHOWN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")


def shown_safely(text: str, limit: int) -> None:
    """What every string that reaches an output must be."""
    assert len(text) <= limit
    assert not _SHOWN.search(text)
    text.encode("utf-8")


@given(ANY_TEXT, st.integers(min_value=1, max_value=400))
def test_clean_text_always_gives_showable_text(raw: str, limit: int) -> None:
    clean = clean_text(raw, limit)
    shown_safely(clean, limit)
    assert clean_text(clean, limit) == clean  # idempotent
    if len(raw) <= limit and not _SHOWN.search(raw):
        assert clean == raw  # clean text passes unchanged


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        JSON,
        st.fixed_dictionaries({"data": st.lists(POINTS, max_size=6)}),
        st.fixed_dictionaries({"data": st.lists(JSON, max_size=3)}),
    ),
    st.one_of(st.none(), st.just(NOON)),
)
def test_data_responses_parse_to_sorted_finite_points_or_invalid_data(
    body: Any, until: float | None
) -> None:
    try:
        points = parse_data_response(body, until=until)
    except InvalidData as exc:
        assert len(str(exc)) < 400
        return
    times = [p.time for p in points]
    assert times == sorted(times) and len(set(times)) == len(times)
    for point in points:
        assert until is None or point.time <= until
        assert set(point.values) <= set(VALUE_FIELDS)
        assert all(math.isfinite(v) and abs(v) <= 1e9 for v in point.values.values())


@given(
    st.one_of(
        JSON,
        st.fixed_dictionaries(
            {"access_token": st.one_of(ANY_TEXT, st.text("abcXYZ019-._~+/=", min_size=1))},
            optional={
                "expires_in": st.one_of(SCALARS, NUMBERS.map(str)),
                "token_type": st.one_of(st.just("Bearer"), st.just("bearer"), ANY_TEXT),
                "refresh_token": ANY_TEXT,
            },
        ),
    )
)
def test_token_responses_give_a_usable_token_or_are_refused(body: Any) -> None:
    try:
        token, note = token_from_response(body, NOON)
    except InvalidResponse as exc:
        shown_safely(exc.reason, 300)
        return
    assert re.fullmatch(r"[\x21-\x7e]+", token.access_token)
    lifetime = token.expires_at - NOON
    assert MIN_LIFETIME <= lifetime <= MAX_LIFETIME
    assert NOON < token.renew_at < token.expires_at
    assert token.refresh_token is None or re.fullmatch(r"[\x21-\x7e]+", token.refresh_token)
    assert note is None or note.startswith("expires_in is")


@given(st.one_of(SCALARS, JSON))
def test_every_expires_in_gives_a_lifetime_in_the_window(value: Any) -> None:
    lifetime, _ = token_lifetime(value)
    assert MIN_LIFETIME <= lifetime <= MAX_LIFETIME


@given(
    st.one_of(
        st.dictionaries(ANY_TEXT, JSON, max_size=4),
        st.fixed_dictionaries(
            {},
            optional={
                "device_model": st.one_of(
                    JSON, st.fixed_dictionaries({"manufacturer": SCALARS, "model": SCALARS})
                ),
                "price_zone": SCALARS,
                "lifecycle_state": SCALARS,
                "connection_status": SCALARS,
                "monitoring_status": SCALARS,
                "is_authenticated": SCALARS,
                "solar_power_rating_kw": SCALARS,
                "battery_capacity_kwh": SCALARS,
            },
        ),
    ),
    st.fixed_dictionaries({}, optional={"external_user_id": SCALARS, "email": SCALARS}),
    ANY_TEXT,
)
def test_listings_give_only_showable_strings_and_sane_numbers(
    item: dict[str, Any], user: dict[str, Any], inverter_id: str
) -> None:
    owner = owner_of(user)
    if owner is not None:
        shown_safely(owner, 200)
        assert owner
    inventory = inventory_from(item, owner)
    for text in (
        inventory.manufacturer,
        inventory.model,
        inventory.price_zone,
        inventory.lifecycle_state,
        inventory.connection_status,
        inventory.monitoring_status,
    ):
        if text is not None:
            shown_safely(text, 200)
            assert text.strip() == text and text
    for number in (inventory.solar_power_rating_kw, inventory.battery_capacity_kwh):
        assert number is None or (math.isfinite(number) and number >= 0)
    assert inventory.is_authenticated in (None, True, False)
    shown_safely(default_name(owner, inverter_id), 127)


class _Raw:
    """urllib3's raw response as read_body uses it: read(amt) from bytes, in given sizes."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self._data = io.BytesIO(data)
        self._sizes = sizes or [65536]
        self._n = 0

    def read(self, amt: int, decode_content: bool = False) -> bytes:
        assert decode_content is False  # decoding is read_body's, bounded
        size = min(amt, self._sizes[self._n % len(self._sizes)])
        self._n += 1
        return self._data.read(size)


@given(
    st.binary(max_size=5000),
    st.booleans(),
    st.lists(st.integers(min_value=1, max_value=700), max_size=5),
    st.integers(min_value=1, max_value=6000),
)
def test_bodies_are_decoded_whole_within_the_limit_and_refused_beyond(
    body: bytes, gzipped: bool, sizes: list[int], limit: int
) -> None:
    wire = gzip.compress(body) if gzipped else body
    headers = {"Content-Encoding": "gzip"} if gzipped else {}
    try:
        decoded = read_body(_Raw(wire, sizes), headers, limit)
    except BodyTooLarge:
        assert len(body) > limit or len(wire) > limit
        return
    assert decoded == body
    assert len(body) <= limit


@given(st.binary(max_size=300), st.sampled_from(["gzip", "deflate", "br", "x"]))
def test_garbage_claiming_an_encoding_is_refused_not_crashed(data: bytes, encoding: str) -> None:
    with contextlib.suppress(BadBody):
        read_body(_Raw(data, []), {"Content-Encoding": encoding}, 10_000)


# Header values as http.client gives them: bytes decoded as Latin-1 (so '²' is byte 0xB2).
HEADER_TEXT = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=60),
    st.integers(min_value=0, max_value=10**40).map(str),
    st.sampled_from(["\xb2", "\xb9", "1\xb2", "9" * 5000, " 12 ", "-1", "1e3", "0x10"]),
)


@given(HEADER_TEXT)
def test_any_retry_after_is_a_wait_or_none(value: str) -> None:
    wait = parse_retry_after(value, NOON)
    assert wait is None or (math.isfinite(wait) and wait >= 0)


@given(st.binary(max_size=200), HEADER_TEXT)
def test_any_content_length_reads_the_body_or_refuses_it(body: bytes, declared: str) -> None:
    try:
        decoded = read_body(_Raw(body, []), {"Content-Length": declared}, 100)
    except BodyTooLarge:
        return
    assert decoded == body


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=ANY_CHAR, max_size=400))
def test_any_config_text_is_a_config_or_a_config_error(text: str) -> None:
    try:
        parse_config(text, {}, source="c.yaml")
    except ConfigError as exc:
        assert str(exc).strip() and "Traceback" not in str(exc)


YAML_KEYS = st.text("abcdefgh_", min_size=1, max_size=6)
YAML_TREES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text("xyz ", max_size=5)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(YAML_KEYS, inner, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(YAML_KEYS, YAML_TREES, min_size=1, max_size=5), st.data())
def test_a_repeated_key_is_always_refused_and_a_unique_one_never(
    tree: dict[str, Any], data: st.DataObject
) -> None:
    text = yaml.safe_dump(tree, sort_keys=False)
    assert load_yaml(text) == tree
    lines = text.splitlines(keepends=True)
    top = [i for i, line in enumerate(lines) if not line.startswith((" ", "-"))]
    i = data.draw(st.sampled_from(top))
    end = next((j for j in top if j > i), len(lines))
    repeated = "".join(lines) + "".join(lines[i:end])  # the same key (and value) again
    with pytest.raises(RefusedYaml, match="duplicate key"):
        load_yaml(repeated)


@settings(max_examples=50, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "timeout_seconds": st.one_of(NUMBERS, ANY_TEXT),
            "call_timeout_seconds": st.one_of(NUMBERS, ANY_TEXT),
            "max_response_bytes": st.one_of(NUMBERS, ANY_TEXT),
        },
    ),
    st.sampled_from(["15MIN", "1HOUR", "1DAY", "1WEEK", "1MONTH", "5MIN", 15]),
)
def test_config_limits_are_validated_with_a_named_key(
    podero: dict[str, Any], resolution: Any
) -> None:
    raw = minimal_config()
    raw["podero"].update(podero)
    raw["poll"] = {"resolution": resolution}
    try:
        text = yaml.safe_dump(raw, allow_unicode=True)
    except yaml.YAMLError:
        return  # a string YAML cannot write
    try:
        config = parse_config(text, {})
    except ConfigError as exc:
        # A named key, or (a lone surrogate that YAML escapes but cannot read back) the line.
        assert re.match(
            r"^((podero|poll)\.[a-z_.]+: |config: YAML syntax error at line)", str(exc)
        ), str(exc)
        return
    assert isinstance(config, Config)
    assert config.poll.resolution == "15MIN"
    assert config.podero.call_timeout_seconds >= config.podero.timeout_seconds
    assert 64 * 1024 <= config.podero.max_response_bytes <= 1024**3
    json.dumps(config.model_dump(mode="json"))
