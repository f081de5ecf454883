"""Connections for the transport: requests' session over urllib3 pools whose sockets know
the deadline of the exchange the calling thread is in, and send a request's first byte only
once the request budget lets it leave (`departing`)."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

# Content encodings the transport decodes itself, bounded (see `transport._Decoder`).
ACCEPT_ENCODING = "gzip, deflate"

# --- deadlines on the socket --------------------------------------------------------------
# The socket timeout of requests and urllib3 bounds each receive, not the exchange: a server
# that sends a byte a second is never late. So every connection's socket is wrapped, and
# each receive waits at most until the deadline of the exchange the calling thread is in.
_deadline = threading.local()


@contextmanager
def socket_deadline(at: float) -> Iterator[None]:
    """Receives in this thread give up at `at` (time.monotonic()) for the block's duration."""
    previous = getattr(_deadline, "at", None)
    _deadline.at = at
    try:
        yield
    finally:
        _deadline.at = previous


def current_deadline() -> float | None:
    """The deadline (time.monotonic()) of the exchange this thread is in, if any."""
    return getattr(_deadline, "at", None)


@contextmanager
def departing(depart: Callable[[], float | None] | None) -> Iterator[None]:
    """The request sent in the block leaves through `depart` (the budget's cap) just before
    its first byte goes to the socket. Sent some other way (a SOCKS proxy's connections, a
    test's mocked adapter) or not at all, it is counted when the block ends."""
    _deadline.depart = depart
    try:
        yield
    finally:
        _depart_now()  # if the socket has not already


def _depart_now() -> None:
    """This thread's request is about to send its first byte: it leaves (once)."""
    depart = getattr(_deadline, "depart", None)
    if depart is not None:
        _deadline.depart = None
        waited = depart()
        at = current_deadline()
        if waited and at is not None:  # the wait for the cap is not the exchange's time
            _deadline.at = at + waited


class _DeadlineSocket:
    """A connection's socket (plain or TLS) whose receives end at the thread's deadline, and
    whose first send of a request leaves through the request budget (`departing`)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._timeout = sock.gettimeout()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout
        self._sock.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._timeout

    def makefile(self, *args: Any, **kwargs: Any) -> Any:
        # http.client reads status line, headers and body through this file: point its raw
        # reads at recv_into below. (The socket counts the file's reference as usual.)
        reader = self._sock.makefile(*args, **kwargs)
        raw = reader.raw if isinstance(reader, io.BufferedReader) else reader
        cast(Any, raw)._sock = self
        return reader

    def sendall(self, data: Any, *args: Any) -> None:
        _depart_now()
        self._sock.sendall(data, *args)

    def send(self, data: Any, *args: Any) -> int:
        _depart_now()
        return self._sock.send(data, *args)

    def recv_into(self, buffer: Any, *args: Any) -> int:
        at: float | None = getattr(_deadline, "at", None)
        if at is not None:
            left = at - time.monotonic()
            if left <= 0:
                raise TimeoutError("the exchange's deadline has passed")
            self._sock.settimeout(left if self._timeout is None else min(self._timeout, left))
        return self._sock.recv_into(buffer, *args)


class _DeadlineHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = cast(socket.socket, _DeadlineSocket(cast(socket.socket, self.sock)))


class _DeadlineHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = cast(socket.socket, _DeadlineSocket(cast(socket.socket, self.sock)))


class _DeadlineHTTPPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


_POOLS = {"http": _DeadlineHTTPPool, "https": _DeadlineHTTPSPool}


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter with connections whose sockets know the exchange's deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS pools have connections of their own
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


def new_session(pool_size: int) -> requests.Session:
    """A keep-alive session whose pool holds one connection per concurrent worker."""
    session = requests.Session()
    adapter = _DeadlineAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = "podero-exporter"
    session.headers["Accept-Encoding"] = ACCEPT_ENCODING
    session.headers["Accept"] = "application/json"
    return session
