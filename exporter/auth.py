"""OAuth2 access tokens for the Partner API, shared by every poller thread.

Two documented flows: client credentials (Basic header, JSON body, no refresh token: ask
again) and password (refresh with the refresh token, fall back to the password).
"""

from __future__ import annotations

import base64
import logging
import threading
from dataclasses import dataclass, field, replace
from typing import Any

from exporter.clock import Clock
from exporter.config import AuthConfig
from exporter.logs import kv
from exporter.transport import ApiError, InvalidResponse, Transport, decode_json

log = logging.getLogger(__name__)

# Renew when this share of the lifetime is left, but never more than MAX_RENEW_AHEAD early
# (15 minutes: more than the 10 minutes after which PoderoAuthFailing fires).
RENEW_AHEAD_FRACTION = 0.1
MAX_RENEW_AHEAD = 900.0
DEFAULT_LIFETIME = 36000.0


@dataclass(frozen=True)
class Token:
    """An access token and when to renew it; secrets are kept out of repr."""

    access_token: str = field(repr=False)
    expires_at: float
    renew_at: float
    refresh_token: str | None = field(default=None, repr=False)


def token_from_response(body: Any, now: float) -> Token:
    """A Token from the token endpoint's JSON; raises InvalidResponse for a broken one."""
    if not isinstance(body, dict):
        raise InvalidResponse("token", "token response is not an object")
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise InvalidResponse("token", "token response has no access_token")
    lifetime = body.get("expires_in", DEFAULT_LIFETIME)
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
        raise InvalidResponse("token", "token response has an invalid expires_in")
    refresh = body.get("refresh_token")
    ahead = min(MAX_RENEW_AHEAD, RENEW_AHEAD_FRACTION * float(lifetime))
    return Token(
        access_token=access,
        expires_at=now + float(lifetime),
        renew_at=now + float(lifetime) - ahead,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
    )


class TokenProvider:
    """Hands out a valid access token; renews ahead of expiry, one renewal at a time."""

    def __init__(self, auth: AuthConfig, token_url: str, transport: Transport, clock: Clock):
        self._auth = auth
        self._url = token_url
        self._transport = transport
        self._clock = clock
        self._lock = threading.Lock()
        self._current: Token | None = None

    @property
    def expires_at(self) -> float | None:
        current = self._current
        return current.expires_at if current and current.access_token else None

    def token(self) -> str:
        """A usable access token, fetching or renewing it if needed."""
        current = self._current
        now = self._clock.time()
        if current and current.access_token and now < current.renew_at:
            return current.access_token
        if current and current.access_token and now < current.expires_at:
            # Still valid: one thread renews, the others keep using the old token meanwhile.
            if self._lock.acquire(blocking=False):
                try:
                    if self._current is current:
                        self._current = self._fetch(current)
                except ApiError as exc:
                    log.warning(
                        "token renewal failed, using the current token",
                        extra=kv(reason=exc.reason, status=exc.status),
                    )
                finally:
                    self._lock.release()
            return (self._current or current).access_token
        with self._lock:
            current = self._current
            if current and current.access_token and self._clock.time() < current.renew_at:
                return current.access_token
            self._current = self._fetch(current)
            return self._current.access_token

    def invalidate(self, access_token: str) -> None:
        """Forget a token the API refused; the next caller fetches a new one (only once)."""
        with self._lock:
            current = self._current
            if current and current.access_token == access_token:
                # Keep the refresh token: the password flow can still use it.
                self._current = replace(current, access_token="", expires_at=0.0, renew_at=0.0)

    def _fetch(self, previous: Token | None) -> Token:
        try:
            if self._auth.grant_type == "client_credentials":
                token = self._client_credentials()
            else:
                token = self._password_flow(previous)
        except ApiError:
            self._transport.observer.token_result(False, self.expires_at)
            raise
        self._transport.observer.token_result(True, token.expires_at)
        log.debug(
            "obtained an access token",
            extra=kv(valid_seconds=round(token.expires_at - self._clock.time())),
        )
        return token

    def _post(self, body: dict[str, str], headers: dict[str, str] | None = None) -> Token:
        now = self._clock.time()
        response = self._transport.send("token", "POST", self._url, json=body, headers=headers)
        try:
            return token_from_response(decode_json("token", response), now)
        except InvalidResponse:
            self._transport.observer.invalid_response("token")
            raise

    def _client_credentials(self) -> Token:
        pair = f"{self._auth.client_id}:{self._auth.secret().get_secret_value()}"
        basic = base64.b64encode(pair.encode()).decode()
        return self._post(
            {"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
        )

    def _password_flow(self, previous: Token | None) -> Token:
        if previous is not None and previous.refresh_token:
            try:
                return self._post(
                    {"grant_type": "refresh_token", "refresh_token": previous.refresh_token}
                )
            except ApiError as exc:
                log.info(
                    "refresh token refused, signing in with the password",
                    extra=kv(reason=exc.reason, status=exc.status),
                )
        return self._post(
            {
                "grant_type": "password",
                "username": self._auth.username or "",
                "password": self._auth.secret().get_secret_value(),
            }
        )
