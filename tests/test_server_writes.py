"""The server writes a body of many chunks in gather writes (sendmsg): every byte arrives in
order whatever the socket takes at a time, and a page served that way equals the page."""

from __future__ import annotations

import socket
import threading

import requests

from exporter.serve.server import GATHER, _SocketWriter
from exporter.serve.web import WebApp, start_web


def read_all(sock: socket.socket, into: bytearray) -> None:
    while data := sock.recv(7919):  # an odd size, so reads and writes never line up
        into.extend(data)


class CountingSocket:
    """A socket's sendmsg, counted: how many calls, and how many took part of a buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.calls = self.partial = 0

    def sendmsg(self, buffers: list[memoryview]) -> int:
        assert 0 < len(buffers) <= GATHER
        sent = self.sock.sendmsg(buffers)
        self.calls += 1
        total = 0
        for buffer in buffers:
            total += len(buffer)
            if total >= sent:
                self.partial += total > sent
                break
        return sent


def test_write_many_delivers_every_byte_in_order_through_partial_sends() -> None:
    writer_end, reader_end = socket.socketpair()
    # A tiny send buffer and a timeout (as cheroot's sockets have): sendmsg takes a part of a
    # buffer at a time, so the partial-buffer path runs many times.
    writer_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    writer_end.settimeout(30)
    counting = CountingSocket(writer_end)
    chunks = [bytes([i % 251]) * (1 + (i * 37) % 5000) for i in range(3 * GATHER + 7)]
    chunks[5] = b""  # an empty chunk in between changes nothing
    received = bytearray()
    reader = threading.Thread(target=read_all, args=(reader_end, received))
    reader.start()
    writer = _SocketWriter(counting)  # type: ignore[arg-type]
    writer.write_many(chunks)
    writer_end.close()
    reader.join(30)
    reader_end.close()
    assert bytes(received) == b"".join(chunks)
    assert writer.bytes_written == len(received)
    assert counting.partial > 10 and counting.calls < len(chunks)


def test_a_page_of_thousands_of_chunks_arrives_whole_and_keeps_the_connection() -> None:
    chunks = [f"family_{i} {i}\n".encode() * (i % 50 + 1) for i in range(5000)]
    server = start_web("127.0.0.1:0", WebApp(lambda: chunks, lambda: True, None))
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        with requests.Session() as session:
            for _ in range(3):  # keep-alive: the next response starts where this one ended
                response = session.get(url, timeout=30, headers={"Accept-Encoding": "identity"})
                assert response.content == b"".join(chunks)
                assert response.headers["Content-Length"] == str(len(response.content))
            head = session.head(url, timeout=30)
            assert head.status_code == 200 and head.content == b""
    finally:
        server.shutdown()
        server.server_close()
