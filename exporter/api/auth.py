"""OAuth2 access tokens for the Partner API, shared by every poller thread.

Two documented flows: client credentials (Basic header, JSON body, no refresh token: ask
again) and password (refresh with the refresh token, fall back to the password).

A 401 from the API is answered with one more try on a newer token, renewed if need be, and
renewals for 401s are rationed for the whole process: never two within a second, and once
one has not helped (the token it brought was refused as well: access revoked for one home,
not the token) none for a backoff period (10 s, doubling while they keep not helping, up to
300 s), whatever the devices do. A token is never thrown away for a 401: the other devices
keep theirs. The secret file is read outside the token lock and kept, read again when it
changes.
"""

from __future__ import annotations

import base64
import logging
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from exporter.api.transport import ApiError, InvalidResponse, Transport, decode_json
from exporter.base.clock import Clock
from exporter.base.files import UnreadableFile, file_identity
from exporter.base.logs import kv
from exporter.base.text import clean_text
from exporter.config.model import AuthConfig, read_secret_file

log = logging.getLogger(__name__)

# Renew when this share of the lifetime is left, but never more than MAX_RENEW_AHEAD early
# (15 minutes: more than the 10 minutes after which PoderoAuthFailing fires).
RENEW_AHEAD_FRACTION = 0.1
MAX_RENEW_AHEAD = 900.0
# The documented typical lifetime; used when the response has none (or none that is a number).
DEFAULT_LIFETIME = 36000.0
# Lifetimes outside this window are clamped into it: a token renewed every few milliseconds
# (or never, or at a date that does not exist) helps nobody.
MIN_LIFETIME = 60.0
MAX_LIFETIME = 86400.0
# After a failed token request nobody asks again for this long (doubling per failure up to
# the maximum); callers meanwhile get the failure at once.
FAILURE_BACKOFF = 10.0
MAX_FAILURE_BACKOFF = 300.0
# After a renewal for a 401 that did not help, the next one waits this long (doubling while
# they keep not helping, up to the maximum); and never two within MIN_REFUSAL_RENEWAL_SPACING,
# however much they help (a home that refuses one call in two).
REFUSAL_BACKOFF = FAILURE_BACKOFF
MAX_REFUSAL_BACKOFF = MAX_FAILURE_BACKOFF
MIN_REFUSAL_RENEWAL_SPACING = 1.0
# RFC 6750's token characters, liberally: visible ASCII (it goes into a header as is).
_TOKEN = re.compile(r"[\x21-\x7e]{1,8192}")
Result = TypeVar("Result")


@dataclass(frozen=True)
class Token:
    """An access token and when to renew it; secrets are kept out of repr."""

    access_token: str = field(repr=False)
    expires_at: float
    renew_at: float
    refresh_token: str | None = field(default=None, repr=False)


def token_lifetime(value: Any) -> tuple[float, str | None]:
    """Seconds a token lives, from the response's `expires_in`, and why it is not that
    value when it is not: a non-number becomes the default, a number outside
    MIN_LIFETIME..MAX_LIFETIME is clamped into it."""
    if value is None:
        return DEFAULT_LIFETIME, None
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits: as good as infinite
            number = math.inf if value > 0 else -math.inf
    elif isinstance(value, str):
        try:
            number = float(value.strip()[:40])
        except ValueError:
            number = None
    if number is None or math.isnan(number):
        return DEFAULT_LIFETIME, f"expires_in is not a number, assumed {DEFAULT_LIFETIME:g} s"
    clamped = min(MAX_LIFETIME, max(MIN_LIFETIME, number))
    if clamped != number:
        return clamped, f"expires_in is outside {MIN_LIFETIME:g}..{MAX_LIFETIME:g} s, clamped"
    return number, None


def token_from_response(body: Any, now: float) -> tuple[Token, str | None]:
    """A Token from the token endpoint's JSON, and a note if its lifetime was not usable as
    sent; raises InvalidResponse for a response without a usable token."""
    if not isinstance(body, dict):
        raise InvalidResponse("token", "token response is not an object")
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise InvalidResponse("token", "token response has no access_token")
    if not _TOKEN.fullmatch(access):
        raise InvalidResponse("token", "token response has an access_token unfit for a header")
    kind = body.get("token_type")
    if isinstance(kind, str) and kind.lower() != "bearer":
        raise InvalidResponse("token", f"token_type {clean_text(kind, 20)!r} is not Bearer")
    lifetime, note = token_lifetime(body.get("expires_in"))
    refresh = body.get("refresh_token")
    ahead = min(MAX_RENEW_AHEAD, RENEW_AHEAD_FRACTION * lifetime)
    token = Token(
        access_token=access,
        expires_at=now + lifetime,
        renew_at=now + lifetime - ahead,
        refresh_token=refresh if isinstance(refresh, str) and _TOKEN.fullmatch(refresh) else None,
    )
    return token, note


class KeptSecret:
    """The client secret (client credentials) or the password (password grant): the
    config's value, or the secret file's, kept and read again only when the file changes
    (another inode, size or time). One caller looks at the file at a time; the others take
    the kept value meanwhile, so a slow file stalls nobody who has one."""

    def __init__(self, auth: AuthConfig) -> None:
        self._auth = auth
        self._path: str | None = getattr(auth, auth.secret_file_key)
        self._looking = threading.Lock()
        self._identity: tuple[int, ...] | None = None
        self._value: str | None = None

    def value(self) -> str:
        """The secret; ApiError("token", ...) when the file cannot be read."""
        if self._path is None:
            return self._auth.secret().get_secret_value()
        if not self._looking.acquire(blocking=False):
            if self._value is not None:
                return self._value
            self._looking.acquire()  # nothing kept yet: the first read is all there is
        try:
            identity = file_identity(self._path)
            if self._value is None or identity != self._identity:
                self._value = read_secret_file(self._path).get_secret_value()
                self._identity = identity
            return self._value
        except (UnreadableFile, ValueError) as exc:  # a secret file gone bad since the load
            raise ApiError("token", f"cannot read the secret: {exc}") from None
        finally:
            self._looking.release()


class TokenProvider:
    """Hands out a valid access token; renews ahead of expiry, one request at a time, and
    after a failed request asks again only once its backoff has passed. Answers the API's
    401s (`authorized`) with renewals rationed as the module says."""

    def __init__(self, auth: AuthConfig, token_url: str, transport: Transport, clock: Clock):
        self._auth = auth
        self._url = token_url
        self._transport = transport
        self._clock = clock
        self._secret = KeptSecret(auth)
        self._lock = threading.Lock()  # held for a token request, never for reading a file
        self._current: Token | None = None
        self._failure: ApiError | None = None  # of the last token request, if it failed
        self._failures = 0  # in a row
        self._retry_at = 0.0  # clock.monotonic() before which nobody asks again
        self._lifetime_noted = False
        # Renewals for 401s (clock.monotonic() times), under their own small lock.
        self._refusals = threading.Lock()
        self._refusal_backoff = REFUSAL_BACKOFF  # the next wait after one that did not help
        self._refusal_renewals_at = -math.inf  # none before then
        self._unhelpful: str | None = None  # the last renewed token refused as well

    @property
    def expires_at(self) -> float | None:
        current = self._current
        return current.expires_at if current else None

    def token(self) -> str:
        """A usable access token, fetching or renewing it if needed; raises the last
        failure at once while token requests are backing off."""
        current = self._current
        now = self._clock.time()
        if current and now < current.renew_at:
            return current.access_token
        if current and now < current.expires_at:
            # Still valid: one thread renews, the others keep using the old token meanwhile.
            if not self._backing_off() and not self._lock.locked():
                secret = self._read_secret()
                if self._lock.acquire(blocking=False):
                    try:
                        if self._current is current and not self._backing_off():
                            self._current = self._fetch(current, secret)
                    except ApiError as exc:
                        log.warning(
                            "token renewal failed, using the current token",
                            extra=kv(reason=exc.reason, status=exc.status),
                        )
                    finally:
                        self._lock.release()
            return (self._current or current).access_token
        self._raise_while_backing_off()
        secret = self._read_secret()
        with self._lock:
            current = self._current
            if current and self._clock.time() < current.renew_at:
                return current.access_token
            self._raise_while_backing_off()
            self._current = self._fetch(current, secret)
            return self._current.access_token

    def authorized(self, endpoint: str, send: Callable[[str], Result]) -> Result:
        """`send(token)` with a usable token; when the API answers 401, once more with a
        newer token (renewed unless renewals are rationed, else the 401 stands). The second
        401 stands: that token is kept, and renewals for 401s back off."""
        token = self.token()
        try:
            return send(token)
        except ApiError as exc:
            if exc.status != 401:
                raise
            newer = self._after_refusal(token)
            if newer is None:
                raise
        log.info("token refused, renewing it and retrying", extra=kv(endpoint=endpoint))
        try:
            result = send(newer)
        except ApiError as exc:
            if exc.status == 401:
                self._renewal_did_not_help(newer)
            raise
        with self._refusals:
            self._refusal_backoff = REFUSAL_BACKOFF  # it helped: the token was the trouble
        return result

    def _newer(self, refused: str) -> str | None:
        """The current token if it is valid and not the refused one."""
        current = self._current
        if current and current.access_token != refused and self._clock.time() < current.expires_at:
            return current.access_token
        return None

    def _refusal_renewals_rationed(self) -> bool:
        return self._clock.monotonic() < self._refusal_renewals_at

    def _after_refusal(self, refused: str) -> str | None:
        """The token to try once more with after a 401 to `refused`: one renewed since (by
        anyone), else a renewal if none is rationed or backing off; None: the 401 stands."""
        if (newer := self._newer(refused)) is not None:
            return newer
        if self._refusal_renewals_rationed() or self._backing_off():
            if self._lock.locked():  # a token request under way, perhaps for this refusal
                with self._lock:
                    pass  # its outcome is what there is
            return self._newer(refused)
        secret = self._read_secret()
        with self._lock:
            if (newer := self._newer(refused)) is not None:
                return newer
            with self._refusals:
                if self._refusal_renewals_rationed() or self._backing_off():
                    return None
                self._refusal_renewals_at = self._clock.monotonic() + MIN_REFUSAL_RENEWAL_SPACING
            try:
                self._current = self._fetch(self._current, secret)
            except ApiError as exc:
                log.warning(
                    "token renewal after a 401 failed, keeping the current token",
                    extra=kv(reason=exc.reason, status=exc.status),
                )
                return None
            return self._current.access_token

    def _renewal_did_not_help(self, token: str) -> None:
        """A token newer than a refused one was refused as well: renewals for 401s wait."""
        with self._refusals:
            if token == self._unhelpful:
                return  # one verdict per token, however many calls it failed
            self._unhelpful = token
            wait = self._refusal_backoff
            self._refusal_renewals_at = max(
                self._refusal_renewals_at, self._clock.monotonic() + wait
            )
            self._refusal_backoff = min(MAX_REFUSAL_BACKOFF, 2 * wait)
        log.warning(
            "a renewed token was refused as well: renewals for 401s back off",
            extra=kv(backoff_seconds=wait),
        )

    def _backing_off(self) -> bool:
        return self._failure is not None and self._clock.monotonic() < self._retry_at

    def _raise_while_backing_off(self) -> None:
        failure = self._failure
        if failure is not None and self._backing_off():
            # The same failure, as it was: what the operator has to fix. (That no request
            # was made shows in the token request counter.)
            raise ApiError(failure.endpoint, failure.reason, failure.status)

    def _read_secret(self) -> str | ApiError:
        """The secret, or why there is none: read before the token lock is taken, and
        raised by the token request that needs it (so that it counts as that request's
        failure)."""
        try:
            return self._secret.value()
        except ApiError as exc:
            return exc

    def _fetch(self, previous: Token | None, secret: str | ApiError) -> Token:
        """One token request (lock held); a failure starts or lengthens the backoff."""
        try:
            if self._auth.grant_type == "client_credentials":
                token = self._client_credentials(secret)
            else:
                token = self._password_flow(previous, secret)
        except ApiError as exc:
            self._failures += 1
            backoff = min(MAX_FAILURE_BACKOFF, FAILURE_BACKOFF * 2.0 ** (self._failures - 1))
            self._failure, self._retry_at = exc, self._clock.monotonic() + backoff
            self._transport.observer.token_result(False, self.expires_at)
            raise
        self._failure, self._failures = None, 0
        self._transport.observer.token_result(True, token.expires_at)
        log.debug(
            "obtained an access token",
            extra=kv(valid_seconds=round(token.expires_at - self._clock.time())),
        )
        return token

    def _post(self, body: dict[str, str], headers: dict[str, str] | None = None) -> Token:
        now = self._clock.time()
        try:
            reply = self._transport.send(
                "token", "POST", self._url, json=body, headers=headers, follow_redirects=False
            )
            answer = decode_json("token", reply)
            token, note = token_from_response(answer, now)
        except InvalidResponse:
            self._transport.observer.invalid_response("token")
            raise
        if note is not None and not self._lifetime_noted:
            self._lifetime_noted = True  # once: the server will keep sending the same
            log.warning(
                "token lifetime not usable as sent",
                extra=kv(
                    reason=note,
                    expires_in=clean_text(repr(answer.get("expires_in")), 40),
                    valid_seconds=round(token.expires_at - now),
                ),
            )
        return token

    def _client_credentials(self, secret: str | ApiError) -> Token:
        pair = f"{self._auth.client_id}:{_secret(secret)}"
        basic = base64.b64encode(pair.encode()).decode()
        return self._post(
            {"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
        )

    def _password_flow(self, previous: Token | None, secret: str | ApiError) -> Token:
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
        username = self._auth.username
        assert username is not None  # guaranteed by AuthConfig._credentials_complete
        return self._post(
            {"grant_type": "password", "username": username, "password": _secret(secret)}
        )


def _secret(secret: str | ApiError) -> str:
    if isinstance(secret, ApiError):
        raise secret
    return secret
