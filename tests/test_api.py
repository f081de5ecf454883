"""The retry policy of the API transport, with HTTP mocked by responses and a fake clock."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
import requests
import responses

from exporter.api.auth import TokenProvider
from exporter.api.budget import RequestBudget
from exporter.api.client import PoderoClient
from exporter.api.connections import new_session
from exporter.api.transport import (
    ApiError,
    InvalidResponse,
    RetryPolicy,
    Transport,
    parse_retry_after,
)
from exporter.config.model import AuthConfig
from exporter.state.readings import DataPoint
from tests.conftest import NOON
from tests.fakes import FakeClock
from tests.test_auth import BASE, DATA_URL, TOKEN_URL, Recorder, token_body


def client(attempts: int = 4, max_wait: float = 30.0) -> tuple[PoderoClient, FakeClock, Recorder]:
    clock = FakeClock(NOON)
    recorder = Recorder()
    transport = Transport(
        new_session(4),
        timeout=5,
        policy=RetryPolicy(attempts, max_wait),
        clock=clock,
        observer=recorder,
    )
    auth = AuthConfig(client_id="cid", client_secret="s")  # type: ignore[arg-type]
    return (
        PoderoClient(BASE, transport, TokenProvider(auth, TOKEN_URL, transport, clock)),
        clock,
        recorder,
    )


def data_calls() -> int:
    return sum(1 for c in responses.calls if c.request.url and "/data" in c.request.url)


OK = {"metadata": {}, "data": [{"time": "2026-11-23T12:00:00Z", "solar_production_w": 5}]}


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
@responses.activate
def test_retryable_status_is_retried_until_success(status: int) -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, status=status, json={"error": "busy"})
    responses.get(DATA_URL, status=status, json={"error": "busy"})
    responses.get(DATA_URL, json=OK)
    api, clock, recorder = client()
    points = api.device_data(
        "inverter", "o", "u", "i", start=NOON - 3600, end=NOON, resolution="15MIN"
    )
    assert [p.values for p in points] == [{"solar_production_w": 5.0}]
    assert data_calls() == 3
    assert len(clock.sleeps) == 2  # slept (on the fake clock) before each retry
    assert [c for e, c in recorder.requests if e == "inverter_data"] == [str(status)] * 2 + ["200"]


@pytest.mark.parametrize(
    "error",
    [
        requests.ConnectionError("reset"),
        requests.Timeout("slow"),
        requests.exceptions.ChunkedEncodingError("cut"),
    ],
)
@responses.activate
def test_connection_errors_and_timeouts_are_retried(error: Exception) -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, body=error)
    responses.get(DATA_URL, json=OK)
    api, _, recorder = client()
    assert (
        len(
            api.device_data(
                "inverter", "o", "u", "i", start=NOON - 3600, end=NOON, resolution="15MIN"
            )
        )
        == 1
    )
    codes = [c for e, c in recorder.requests if e == "inverter_data"]
    assert codes[0] in ("connection_error", "timeout") and codes[1] == "200"


@pytest.mark.parametrize("status", [400, 403, 404, 422])
@responses.activate
def test_other_client_errors_are_not_retried(status: int) -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, status=status, json={"error": "No data for the range."})
    api, clock, _ = client()
    with pytest.raises(ApiError) as info:
        api.device_data("inverter", "o", "u", "i", start=NOON - 3600, end=NOON, resolution="15MIN")
    assert data_calls() == 1
    assert clock.sleeps == []
    assert info.value.status == status
    assert str(info.value) == f"inverter_data: HTTP {status}: No data for the range."


@responses.activate
def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, status=503, json={"error": "down"})
    api, clock, _ = client(attempts=3)
    with pytest.raises(ApiError, match="HTTP 503: down"):
        api.device_data("inverter", "o", "u", "i", start=NOON - 3600, end=NOON, resolution="15MIN")
    assert data_calls() == 3
    assert len(clock.sleeps) == 2


@responses.activate
def test_retry_after_seconds_is_honoured() -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, status=429, headers={"Retry-After": "7"}, json={})
    responses.get(DATA_URL, json=OK)
    api, clock, _ = client()
    api.device_data("inverter", "o", "u", "i", start=NOON - 3600, end=NOON, resolution="15MIN")
    assert clock.sleeps == [7.0]


@responses.activate
def test_retry_after_http_date_is_honoured_and_capped() -> None:
    later = format_datetime(datetime.fromtimestamp(NOON + 12, UTC), usegmt=True)
    much_later = format_datetime(datetime.fromtimestamp(NOON + 600, UTC), usegmt=True)
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, status=503, headers={"Retry-After": later}, json={})
    responses.get(DATA_URL, status=503, headers={"Retry-After": much_later}, json={})
    responses.get(DATA_URL, json=OK)
    api, clock, _ = client(max_wait=30)
    api.device_data("inverter", "o", "u", "i", start=NOON - 3600, end=NOON, resolution="15MIN")
    assert clock.sleeps[0] == pytest.approx(12, abs=1)
    assert clock.sleeps[1] == 30  # capped at max_wait_seconds


@responses.activate
@pytest.mark.parametrize("header", ["Retry-After", "Content-Length"])
def test_a_header_number_in_other_digits_is_an_answer_not_a_crash(header: str) -> None:
    # '\xb2' is '²' (a digit to str.isdigit(), not to int()); then a good answer.
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, status=503, headers={header: "\xb2"}, json={})
    responses.get(DATA_URL, headers={header: "\xb2" * 5000}, json=OK)
    api, clock, _ = client(max_wait=2)
    points = api.device_data(
        "inverter", "o", "u", "i", start=NOON - 3600, end=NOON, resolution="15MIN"
    )
    assert points and data_calls() == 2
    assert len(clock.sleeps) == 1 and 0 <= clock.sleeps[0] <= 2  # jittered: no usable wait


@responses.activate
def test_backoff_without_retry_after_is_jittered_and_bounded() -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    for _ in range(5):
        responses.get(DATA_URL, status=500, json={})
    api, clock, _ = client(attempts=6, max_wait=2)
    with pytest.raises(ApiError):
        api.device_data("inverter", "o", "u", "i", start=NOON - 3600, end=NOON, resolution="15MIN")
    assert len(clock.sleeps) == 5
    assert all(0 <= s <= 2 for s in clock.sleeps)


def test_parse_retry_after() -> None:
    assert parse_retry_after("120", NOON) == 120
    assert parse_retry_after(None, NOON) is None
    assert parse_retry_after("soon", NOON) is None
    past = format_datetime(datetime.fromtimestamp(NOON - 50, UTC), usegmt=True)
    assert parse_retry_after(past, NOON) == 0


@responses.activate
def test_non_json_200_is_an_invalid_response_and_counted() -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, body="<html>oops</html>", content_type="text/html")
    api, _, recorder = client()
    with pytest.raises(InvalidResponse, match="is not JSON"):
        api.device_data("inverter", "o", "u", "i", start=NOON - 3600, end=NOON, resolution="15MIN")
    assert recorder.invalid == ["inverter_data"]


@responses.activate
def test_request_carries_range_and_resolution() -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(
        DATA_URL,
        json=OK,
        match=[
            responses.matchers.query_param_matcher(
                {
                    "from_datetime": "2026-11-23T11:07:30Z",
                    "to_datetime": "2026-11-23T12:07:30Z",
                    "resolution": "1HOUR",
                }
            )
        ],
    )
    api, _, _ = client()
    api.device_data("inverter", "o", "u", "i", start=NOON - 3600, end=NOON, resolution="1HOUR")


# --- hostile answers (issue 11): limits, decoding, redirects, deadlines ---------------------
class CountingBudget(RequestBudget):
    """A budget that counts the slots it hands out and the requests that left through it."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(1000, clock)
        self.slots = 0
        self.departures = 0
        self.taken: list[float] = []  # the slots handed out
        self.left: list[float] = []  # the slots requests left with

    def take_slot(self) -> tuple[float, float]:
        self.slots += 1
        slot, waited = super().take_slot()
        self.taken.append(slot)
        return slot, waited

    def depart(self, slot: float = float("-inf")) -> float:
        self.departures += 1
        self.left.append(slot)
        return super().depart(slot)


def hostile_client(
    *, attempts: int = 1, call_timeout: float = 60.0, max_body: int = 1024 * 1024
) -> tuple[PoderoClient, FakeClock, Recorder, CountingBudget]:
    clock = FakeClock(NOON)
    recorder = Recorder()
    budget = CountingBudget(clock)
    transport = Transport(
        new_session(4),
        timeout=5,
        policy=RetryPolicy(attempts, 30.0),
        clock=clock,
        observer=recorder,
        budget=budget,
        max_body_bytes=max_body,
        call_timeout=call_timeout,
    )
    auth = AuthConfig(client_id="cid", client_secret="s")  # type: ignore[arg-type]
    client = PoderoClient(BASE, transport, TokenProvider(auth, TOKEN_URL, transport, clock))
    return client, clock, recorder, budget


def poll(api: PoderoClient) -> list[DataPoint]:
    return api.device_data(
        "inverter", "o", "u", "i", start=NOON - 3600, end=NOON, resolution="15MIN"
    )


OK_BYTES = json.dumps(OK).encode()


@responses.activate
def test_a_gzip_body_is_inflated() -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(
        DATA_URL,
        body=gzip.compress(OK_BYTES),
        headers={"Content-Encoding": "gzip"},
        content_type="application/json",
    )
    api, _, _, _ = hostile_client()
    assert [p.values for p in poll(api)] == [{"solar_production_w": 5.0}]


@responses.activate
def test_a_gzip_bomb_is_inflated_no_further_than_the_limit() -> None:
    bomb = gzip.compress(b" " * (256 * 1024 * 1024), compresslevel=9)  # 256 MiB in 256 kB
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(
        DATA_URL, body=bomb, headers={"Content-Encoding": "gzip"}, content_type="application/json"
    )
    api, _, recorder, _ = hostile_client(max_body=1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(
            InvalidResponse, match=r"body too large: more than 1048576 bytes \(gzip"
        ):
            poll(api)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024  # the limit, a chunk and change: not 256 MiB
    assert recorder.invalid == ["inverter_data"]


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        (b"x" * 2_000_000, {}, "body too large: more than 1048576 bytes on the wire"),
        (OK_BYTES, {"Content-Length": "9999999999"}, "body too large: declares 9999999999"),
        (gzip.compress(OK_BYTES)[:-12], {"Content-Encoding": "gzip"}, "gzip body is cut short"),
        (b"not gzip at all", {"Content-Encoding": "gzip"}, "gzip body does not decode"),
        (OK_BYTES, {"Content-Encoding": "br"}, "content encoding 'br' is not supported"),
        (OK_BYTES, {"Content-Encoding": "gzip, gzip"}, "'gzip, gzip' is not supported"),
        (b"[" * 100_000 + b"]" * 100_000, {}, "body is not valid JSON"),  # RecursionError
        (b"[" + b"0," * 1_000_000 + b"0]", {}, "body has more than 1000000 items"),
    ],
    ids=["large", "declared", "cut-gzip", "bad-gzip", "br", "gzip-twice", "deep", "items"],
)
@responses.activate
def test_bodies_that_cannot_be_had_are_invalid_responses(
    body: bytes, headers: dict[str, str], reason: str
) -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, body=body, headers=headers, content_type="application/json")
    api, _, recorder, _ = hostile_client(max_body=4 * 1024 * 1024 if "items" in reason else 1 << 20)
    with pytest.raises(InvalidResponse) as info:
        poll(api)
    assert reason in info.value.reason
    assert recorder.invalid == ["inverter_data"]


@pytest.mark.parametrize(
    ("content_type", "ok"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON", True),
        ("application/vnd.podero+json", True),
        ("text/html", False),
        ("text/plain; note=json", False),
        ("application/jsonp", False),
    ],
)
@responses.activate
def test_only_json_content_types_are_parsed(content_type: str, ok: bool) -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, body=OK_BYTES, content_type=content_type)
    api, _, _, _ = hostile_client()
    if ok:
        assert len(poll(api)) == 1
    else:
        with pytest.raises(InvalidResponse, match="is not JSON"):
            poll(api)


@responses.activate
def test_a_same_origin_redirect_is_followed_and_every_hop_pays_for_its_slot() -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, status=301, headers={"Location": DATA_URL + "/"})
    responses.get(DATA_URL + "/", json=OK)
    api, _, recorder, budget = hostile_client()
    assert len(poll(api)) == 1
    assert [c for e, c in recorder.requests if e == "inverter_data"] == ["301", "200"]
    assert budget.slots == 3  # token, data, and the redirected data
    assert budget.departures == 3  # each left once (with `responses`, as its exchange ended)
    assert budget.left == budget.taken  # each no earlier than its own slot
    followed = responses.calls[-1].request
    assert followed.headers["Authorization"] == "Bearer tok-1"  # same origin: still ours
    assert "resolution=15MIN" not in (followed.url or "")  # the Location says the query


@pytest.mark.parametrize(
    "location",
    [
        "https://elsewhere.invalid/api/partners/v2.0/org/o/users/u/inverters/i/data",
        "http://podero.invalid/api/partners/v2.0/org/o/users/u/inverters/i/data",  # downgrade
        "https://podero.invalid:8443/api/partners/v2.0/org/o/users/u/inverters/i/data",
        "//elsewhere.invalid/data",
    ],
)
@responses.activate
def test_a_redirect_to_another_origin_is_refused(location: str) -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, status=307, headers={"Location": location})
    api, _, _, _ = hostile_client()
    with pytest.raises(ApiError, match="redirect to another origin") as info:
        poll(api)
    assert info.value.status == 307
    assert len(responses.calls) == 2  # token and the one data request: nothing went there


@responses.activate
def test_a_redirect_loop_ends_after_a_few_hops() -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, status=302, headers={"Location": DATA_URL})
    api, _, recorder, budget = hostile_client()
    with pytest.raises(ApiError, match="more than 3 redirects"):
        poll(api)
    assert [c for e, c in recorder.requests if e == "inverter_data"] == ["302"] * 4
    assert budget.slots == 5


@responses.activate
def test_retries_end_at_the_call_deadline() -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, status=503, headers={"Retry-After": "25"}, json={"error": "busy"})
    api, clock, _, _ = hostile_client(attempts=10, call_timeout=60)
    with pytest.raises(ApiError, match="HTTP 503: busy"):
        poll(api)
    # Two waits of 25 s fit in the 60 s deadline, a third would not: 3 tries, not 10.
    assert [s for s in clock.sleeps if s >= 1] == [25.0, 25.0]  # (the budget spaces by 1 ms)
    assert data_calls() == 3


@responses.activate
def test_each_exchange_gets_at_most_what_is_left_of_the_call_deadline() -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, status=503, headers={"Retry-After": "4"}, json={"error": "busy"})
    api, clock, _, _ = hostile_client(attempts=10, call_timeout=12)
    session = api._transport._session
    timeouts: list[float] = []
    send = session.request

    def request(method: str, url: str, **kwargs: object) -> requests.Response:
        if "/data" in url:
            timeouts.append(float(kwargs["timeout"]))  # type: ignore[arg-type]
        return send(method, url, **kwargs)  # type: ignore[arg-type]

    session.request = request  # type: ignore[method-assign]
    with pytest.raises(ApiError, match="HTTP 503: busy"):
        poll(api)
    # 12 s for the call, 5 s per exchange, 4 s waits: 5, 5 (8 left), 4 (4 left); a wait of
    # 4 s more would reach the deadline, so no fourth try. (The budget spaces by ~1 ms.)
    assert timeouts == pytest.approx([5, 5, 4], abs=0.01)
    assert [s for s in clock.sleeps if s >= 1] == [4.0, 4.0]


@responses.activate
def test_error_text_from_the_body_is_cleaned_and_short() -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, status=400, json={"error": "bad\udc80\x00\n\u202e" + "!" * 5000})
    api, _, _, _ = hostile_client()
    with pytest.raises(ApiError) as info:
        poll(api)
    assert info.value.reason.startswith("HTTP 400: bad\ufffd!!!")
    assert len(info.value.reason) <= 300
    info.value.reason.encode("utf-8")  # no lone surrogate left


@responses.activate
def test_future_points_are_dropped_before_they_are_looked_at() -> None:
    body = (
        b'{"data": [{"time": "2026-11-23T12:00:00Z", "solar_production_w": 5},'
        b' {"time": "2026-11-23T13:00:00Z", "price": NaN, "estimated_consumption": 1e999}]}'
    )
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, body=body, content_type="application/json")
    api, _, _, _ = hostile_client()
    assert [p.values for p in poll(api)] == [{"solar_production_w": 5.0}]
