"""HTTP to the Podero Partner API: the session and its connection pool, deadlines, size
limits, redirects, retries and the request budget. Everything above it speaks in requests
and `Reply`s; it knows nothing of endpoints' meaning or of Prometheus, and reports each
exchange to an `ApiObserver`.

What a hostile or broken server can do, and what it costs here at most:
- trickle headers or a body: every exchange has one deadline for connect, headers and the
  whole body (`_DeadlineSocket`), and every call one for all its tries and waits;
- send an endless or a huge body, or a small one that inflates to gigabytes: the decoded
  body is read in chunks and abandoned at `max_body_bytes` (decompression included);
- send every worker a body at that limit at once: bodies held and parsed at once share one
  byte budget for the process (`bodies.py`), taken before a body is kept and given back
  once its caller has used it (`holding_bodies`);
- redirect: the token endpoint's redirects are never followed; data calls follow at most
  `MAX_REDIRECTS` to the same origin, each hop paying its share of the budget, so that
  no credential ever leaves for another origin;
- put anything into the error text: it is cleaned and cut (`exporter.text`).
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC
from functools import partial
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests
import tenacity
import urllib3
from tenacity import RetryCallState

from exporter.api.bodies import (
    BadBody,
    BodyShare,
    BodyTooLarge,
    ByteBudget,
    read_body,
    whole_number,
)
from exporter.api.budget import RequestBudget
from exporter.api.connections import current_deadline, departing, socket_deadline
from exporter.base.clock import Clock
from exporter.base.logs import kv
from exporter.base.text import clean_text
from exporter.config.model import (
    DEFAULT_CALL_TIMEOUT_SECONDS,
    DEFAULT_MAX_RESPONSE_BYTES,
)

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 429})
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
# Same-origin redirects a data call follows (an API behind a trailing-slash or a moved-path
# redirect); the token endpoint follows none.
MAX_REDIRECTS = 3
# An error body is read for its {"error": ...} text only.
MAX_ERROR_BODY_BYTES = 64 * 1024
# Parsed JSON costs up to ~60 times its text ({} is 2 bytes, a dict 64 and more): a body
# of this many items (commas, braces and brackets, counted without parsing, those in
# strings too) or more is refused unparsed. That bounds parsing at ~120 MB; a real listing
# of 10,000 homes has a few hundred thousand.
MAX_JSON_ITEMS = 1_000_000


class ApiObserver(Protocol):
    """Receives one event per HTTP exchange and per token request."""

    def request_done(self, endpoint: str, code: str, seconds: float) -> None: ...

    def invalid_response(self, endpoint: str) -> None: ...

    def token_result(self, ok: bool, expires_at: float | None) -> None: ...


class ApiError(Exception):
    """A call that did not produce a usable answer; the message is safe to log and show
    (whatever came from the server in it has passed `clean_text`)."""

    def __init__(self, endpoint: str, message: str, status: int | None = None) -> None:
        message = clean_text(message, 300)
        super().__init__(f"{endpoint}: {message}")
        self.endpoint = endpoint
        self.status = status
        self.reason = message


class RetryableError(ApiError):
    """A failure worth another try: connection trouble, timeouts, 408, 429 and 5xx."""

    def __init__(
        self,
        endpoint: str,
        message: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(endpoint, message, status)
        self.retry_after = retry_after


class InvalidResponse(ApiError):
    """A 2xx answer whose body is not what the API documents (or is too large to read)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How many tries a call gets and the longest single wait between them."""

    attempts: int = 4
    max_wait_seconds: float = 30.0
    backoff_multiplier: float = 0.5


@dataclass(frozen=True)
class Reply:
    """One complete HTTP answer: status, headers and the decoded body (read in full, within
    the size limit and the deadline)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if (seconds := whole_number(value)) is not None:
        return float(seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


class StopBeforeDeadline(tenacity.stop.stop_base):
    """tenacity's `stop_before_delay` against the caller's deadline on the injected clock (the
    delay stops measure `time.monotonic()` from the start of one `Retrying`; this deadline is
    shared by both sends of the 401 rule, and tests move a fake clock)."""

    def __init__(self, deadline: float, clock: Clock) -> None:
        self._deadline = deadline
        self._clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._clock.monotonic() + retry_state.upcoming_sleep >= self._deadline


def _log_retry(retry_state: RetryCallState) -> None:
    error = retry_state.outcome.exception() if retry_state.outcome is not None else None
    if isinstance(error, ApiError):
        wait = retry_state.upcoming_sleep
        log.debug("retrying", extra=kv(endpoint=error.endpoint, reason=error.reason, wait=wait))


def media_type(headers: Mapping[str, str]) -> str:
    """The media type of a Content-Type header, lower case, without parameters."""
    return headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


def is_json(headers: Mapping[str, str]) -> bool:
    kind = media_type(headers)
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def _error_text(reply: Reply) -> str:
    if not reply.body or not is_json(reply.headers):
        return f"HTTP {reply.status}"
    try:
        body = json.loads(reply.body)
    except (ValueError, RecursionError):
        return f"HTTP {reply.status}"
    if isinstance(body, dict) and body.get("error") is not None:
        return f"HTTP {reply.status}: {clean_text(str(body['error'])[:1200], 300)}"
    return f"HTTP {reply.status}"


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the port made explicit; what "same origin" compares."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = -1
    return scheme, (parts.hostname or "").lower(), port


def _shown(url: str) -> str:
    scheme, host, port = origin(url)
    return f"{scheme}://{host}:{port}"


class Transport:
    """Sends one logical call: budget slots, deadlines, bounded bodies, redirects, retries,
    and one report per HTTP exchange."""

    def __init__(
        self,
        session: requests.Session,
        *,
        timeout: float,
        policy: RetryPolicy,
        clock: Clock,
        observer: ApiObserver,
        budget: RequestBudget | None = None,
        max_body_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        call_timeout: float = DEFAULT_CALL_TIMEOUT_SECONDS,
        bodies: ByteBudget | None = None,
    ) -> None:
        self._session = session
        self._timeout = timeout
        self._policy = policy
        self._clock = clock
        self._observer = observer
        self._budget = budget
        self._max_body = max_body_bytes
        self._call_timeout = call_timeout
        self._bodies = bodies  # the process's byte budget for bodies held and parsed
        self._held = threading.local()  # .shares: of the bodies this thread's call keeps
        # Try n waits up to multiplier x 2^n (tenacity counts from 2^0 for the first).
        self._jittered = tenacity.wait_random_exponential(
            multiplier=2 * policy.backoff_multiplier, max=policy.max_wait_seconds
        )

    @property
    def observer(self) -> ApiObserver:
        return self._observer

    def call_deadline(self) -> float:
        """The deadline (on the clock's monotonic time) of a call that starts now."""
        return self._clock.monotonic() + self._call_timeout

    def yielding(self) -> AbstractContextManager[None]:
        """Sends in the block take only budget slots free now (`RequestBudget.yielding`)."""
        return self._budget.yielding() if self._budget is not None else nullcontext()

    @contextmanager
    def holding_bodies(self) -> Iterator[None]:
        """Bodies received in the block keep their share of the byte budget until it ends:
        wrap the sending and the parsing of a call in it. (Outside one, a body gives its
        share back as soon as it is read.)"""
        if getattr(self._held, "shares", None) is not None:
            yield  # an enclosing block holds them
            return
        self._held.shares = []
        try:
            yield
        finally:
            self._release_from(0)
            self._held.shares = None

    def _release_from(self, index: int) -> None:
        shares: list[BodyShare] | None = getattr(self._held, "shares", None)
        if shares:
            for share in shares[index:]:
                share.release()
            del shares[index:]

    def send(
        self,
        endpoint: str,
        method: str,
        url: str,
        *,
        deadline: float | None = None,
        follow_redirects: bool = True,
        **kwargs: Any,
    ) -> Reply:
        """The 2xx reply of the first try that is neither retryable nor an error; else
        raises. All tries and the waits between them end by `deadline` (the clock's
        monotonic time; default: `call_timeout` from now)."""
        if deadline is None:
            deadline = self.call_deadline()
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(RetryableError),
            stop=tenacity.stop_after_attempt(self._policy.attempts)
            | StopBeforeDeadline(deadline, self._clock),
            wait=self._wait,
            sleep=self._clock.sleep,  # a fake clock's in tests
            before_sleep=_log_retry,
            reraise=True,  # the last error as it was
        )
        return retrying(self._follow, endpoint, method, url, deadline, follow_redirects, kwargs)

    def _wait(self, retry_state: RetryCallState) -> float:
        """The wait before the next try: what the server asked for in Retry-After (capped),
        else exponential backoff with full jitter."""
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, RetryableError) and error.retry_after is not None:
            return min(error.retry_after, self._policy.max_wait_seconds)
        return float(self._jittered(retry_state))

    def _follow(
        self,
        endpoint: str,
        method: str,
        url: str,
        deadline: float,
        follow_redirects: bool,
        kwargs: Mapping[str, Any],
    ) -> Reply:
        """One try: the exchange, and the same-origin redirects it leads to. A try that
        fails gives back its bodies' share of the byte budget at once."""
        held = len(getattr(self._held, "shares", None) or ())
        try:
            return self._redirected(endpoint, method, url, deadline, follow_redirects, kwargs)
        except BaseException:
            self._release_from(held)
            raise

    def _redirected(
        self,
        endpoint: str,
        method: str,
        url: str,
        deadline: float,
        follow_redirects: bool,
        kwargs: Mapping[str, Any],
    ) -> Reply:
        current, hop_kwargs = url, kwargs
        for _ in range(MAX_REDIRECTS + 1):
            reply = self._exchange(endpoint, method, current, deadline, hop_kwargs)
            if reply.status not in REDIRECT_STATUS:
                return self._checked(endpoint, reply)
            target = urljoin(current, reply.headers.get("Location", ""))
            if not follow_redirects or method != "GET":
                raise ApiError(
                    endpoint,
                    f"HTTP {reply.status}: redirect to {_shown(target)} not followed "
                    "(credentials go only to the configured URL)",
                    reply.status,
                )
            if origin(target) != origin(url):
                raise ApiError(
                    endpoint,
                    f"HTTP {reply.status}: redirect to another origin ({_shown(target)}) refused",
                    reply.status,
                )
            # The Location carries its own query.
            current, hop_kwargs = target, {k: v for k, v in kwargs.items() if k != "params"}
        raise ApiError(endpoint, f"more than {MAX_REDIRECTS} redirects")

    def _checked(self, endpoint: str, reply: Reply) -> Reply:
        status = reply.status
        if status in RETRYABLE_STATUS or status >= 500:
            retry_after = parse_retry_after(reply.headers.get("Retry-After"), self._clock.time())
            raise RetryableError(endpoint, _error_text(reply), status, retry_after)
        if not 200 <= status < 300:
            raise ApiError(endpoint, _error_text(reply), status)
        return reply

    def _exchange(
        self,
        endpoint: str,
        method: str,
        url: str,
        deadline: float,
        kwargs: Mapping[str, Any],
    ) -> Reply:
        """One HTTP request and its whole (bounded) body, within the exchange's deadline."""
        depart = None
        if self._budget is not None:
            slot, _ = self._budget.take_slot()
            depart = partial(self._budget.depart, slot)
        left = min(self._timeout, deadline - self._clock.monotonic())
        if left <= 0:  # nothing is sent: nothing leaves
            raise RetryableError(endpoint, "no time left before the call's deadline")
        started = time.perf_counter()
        code = "connection_error"
        try:
            with socket_deadline(time.monotonic() + left), departing(depart):
                response = self._session.request(
                    method, url, timeout=left, stream=True, allow_redirects=False, **kwargs
                )
                try:
                    code = str(response.status_code)
                    body = self._body(response)
                finally:
                    response.close()
        except BodyTooLarge as exc:
            raise InvalidResponse(endpoint, f"body too large: {exc}") from None
        except BadBody as exc:
            raise InvalidResponse(endpoint, str(exc)) from None
        except _NETWORK_ERRORS as exc:
            if _timed_out(exc) or time.perf_counter() - started >= left:
                code = "timeout"
                raise RetryableError(endpoint, f"no complete answer within {left:.3g}s") from None
            code = "connection_error"
            raise RetryableError(endpoint, f"connection failed: {type(exc).__name__}") from None
        finally:
            self._observer.request_done(endpoint, code, time.perf_counter() - started)
        return Reply(response.status_code, response.headers, body, url)

    def _body(self, response: requests.Response) -> bytes:
        status = response.status_code
        if status in REDIRECT_STATUS or not is_json(response.headers):
            # Not JSON: decode_json says so, without reading what nobody will parse.
            return b""
        if 200 <= status < 300:
            return self._read(response, self._max_body)
        try:
            return self._read(response, MAX_ERROR_BODY_BYTES)
        except BadBody:
            return b""  # the status alone says enough

    def _read(self, response: requests.Response, limit: int) -> bytes:
        """The body within `limit`, covered by the byte budget (if any) until the caller's
        `holding_bodies` block ends."""
        if self._bodies is None:
            return read_body(response.raw, response.headers, limit)
        share = BodyShare(self._bodies, limit, current_deadline())
        try:
            body = read_body(response.raw, response.headers, limit, share)
        except BaseException:
            share.release()
            raise
        shares: list[BodyShare] | None = getattr(self._held, "shares", None)
        if shares is None:
            share.release()
        else:
            shares.append(share)
        return body


# What a failed exchange raises: requests' own errors, urllib3's from reading the body,
# http.client's for a broken status line or headers, the socket's.
_NETWORK_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)


def _timed_out(exc: BaseException) -> bool:
    return isinstance(
        exc, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError | socket.timeout
    )


def decode_json(endpoint: str, reply: Reply) -> Any:
    """The JSON body of a 2xx reply, or InvalidResponse saying why there is none."""
    if not is_json(reply.headers):
        shown = clean_text(reply.headers.get("Content-Type", ""), 60)
        raise InvalidResponse(endpoint, f"content type {shown!r} is not JSON")
    if not reply.body:
        raise InvalidResponse(endpoint, "empty body")
    body = reply.body
    if body.count(b",") + body.count(b"{") + body.count(b"[") >= MAX_JSON_ITEMS:
        raise InvalidResponse(endpoint, f"body has more than {MAX_JSON_ITEMS} items")
    try:
        return json.loads(reply.body)
    except (ValueError, RecursionError):
        raise InvalidResponse(endpoint, "body is not valid JSON") from None
