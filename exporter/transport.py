"""HTTP to the Podero Partner API: the session and its connection pool, timeouts, retries and
the request budget. Everything above it speaks in requests and responses; it knows nothing of
endpoints' meaning or of Prometheus, and reports each exchange to an `ApiObserver`."""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from exporter.budget import RequestBudget
from exporter.clock import Clock
from exporter.logs import kv

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 429})


class ApiObserver(Protocol):
    """Receives one event per HTTP exchange and per token request."""

    def request_done(self, endpoint: str, code: str, seconds: float) -> None: ...

    def invalid_response(self, endpoint: str) -> None: ...

    def token_result(self, ok: bool, expires_at: float | None) -> None: ...


class ApiError(Exception):
    """A call that did not produce a usable answer; the message is safe to log and show."""

    def __init__(self, endpoint: str, message: str, status: int | None = None) -> None:
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
    """A 2xx answer whose body is not what the API documents."""


@dataclass(frozen=True)
class RetryPolicy:
    """How many tries a call gets and the longest single wait between them."""

    attempts: int = 4
    max_wait_seconds: float = 30.0
    backoff_multiplier: float = 0.5


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


class _RetryAfterOrBackoff:
    """Wait what the server asked for (capped), else exponential backoff with full jitter."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._max = policy.max_wait_seconds
        self._backoff = wait_random_exponential(multiplier=policy.backoff_multiplier, max=self._max)

    def __call__(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryableError) and error.retry_after is not None:
            return min(error.retry_after, self._max)
        return float(self._backoff(state))


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict) and body.get("error") is not None:
        return f"HTTP {response.status_code}: {str(body['error'])[:300]}"
    return f"HTTP {response.status_code}"


def new_session(pool_size: int) -> requests.Session:
    """A keep-alive session whose pool holds one connection per concurrent worker."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = "podero-exporter"
    return session


class Transport:
    """Sends one logical request: budget slot, timeout, retries, and one report per try."""

    def __init__(
        self,
        session: requests.Session,
        *,
        timeout: float,
        policy: RetryPolicy,
        clock: Clock,
        observer: ApiObserver,
        budget: RequestBudget | None = None,
    ) -> None:
        self._session = session
        self._timeout = timeout
        self._policy = policy
        self._clock = clock
        self._observer = observer
        self._budget = budget
        self._wait = _RetryAfterOrBackoff(policy)

    @property
    def observer(self) -> ApiObserver:
        return self._observer

    def send(self, endpoint: str, method: str, url: str, **kwargs: Any) -> requests.Response:
        """The response of the first try that is neither retryable nor an error; else raises."""
        retrying = Retrying(
            stop=stop_after_attempt(self._policy.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(RetryableError),
            sleep=self._clock.sleep,
            reraise=True,
            before_sleep=lambda state: log.debug(
                "retrying",
                extra=kv(
                    endpoint=endpoint,
                    reason=str(state.outcome and state.outcome.exception()),
                ),
            ),
        )
        response: requests.Response = retrying(self._send_once, endpoint, method, url, kwargs)
        return response

    def _send_once(
        self, endpoint: str, method: str, url: str, kwargs: Mapping[str, Any]
    ) -> requests.Response:
        if self._budget is not None:
            self._budget.acquire()
        started = time.perf_counter()
        try:
            response = self._session.request(method, url, timeout=self._timeout, **kwargs)
        except requests.Timeout:
            self._observer.request_done(endpoint, "timeout", time.perf_counter() - started)
            raise RetryableError(endpoint, f"timed out after {self._timeout:g}s") from None
        except requests.RequestException as exc:
            self._observer.request_done(endpoint, "connection_error", time.perf_counter() - started)
            raise RetryableError(endpoint, f"connection failed: {type(exc).__name__}") from None
        status = response.status_code
        self._observer.request_done(endpoint, str(status), time.perf_counter() - started)
        if status in RETRYABLE_STATUS or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock.time())
            raise RetryableError(endpoint, _error_text(response), status, retry_after)
        if status >= 400:
            raise ApiError(endpoint, _error_text(response), status)
        return response


def decode_json(endpoint: str, response: requests.Response) -> Any:
    """The JSON body of a 2xx response, or InvalidResponse saying why there is none."""
    content_type = response.headers.get("Content-Type", "")
    if "json" not in content_type.lower():
        raise InvalidResponse(endpoint, f"content type {content_type[:60]!r} is not JSON")
    if not response.content:
        raise InvalidResponse(endpoint, "empty body")
    try:
        return response.json()
    except ValueError:
        raise InvalidResponse(endpoint, "body is not valid JSON") from None
