"""Benchmark 14: peak resident memory against concurrency when every device answers a data
body at the size cap (issue 20). Prints, for max_concurrency 4, 16 and 32, the peak RSS of a
real `podero-exporter --once` process polling as many inverters as it has workers, each of
whose data calls answers a legal JSON body just under `podero.max_response_bytes` (goal:
<= 250 MB at 32, below the Kubernetes memory limit).

The API is a small HTTP server in this process on 127.0.0.1 (tokens, and one prepared data
body for every data call; everything else 404); the exporter runs in a child process, so its
peak RSS (`ru_maxrss` from wait4) is its own. `--chunked` sends the body without a
Content-Length (the exporter cannot know its size before reading it). `--root` runs another
checkout's exporter (e.g. the code before issue 20) against the same server.

    python -m benchmarks.bench_memory [--root PATH] [--concurrency 4 16 32] [--chunked]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from benchmarks.harness import machine, verdict
from exporter.api.transport import MAX_JSON_ITEMS
from exporter.config.model import DEFAULT_MAX_RESPONSE_BYTES

ROOT = Path(__file__).resolve().parent.parent
PEAK_GOAL_MB = 250.0
ORG = str(uuid.UUID(int=1))
USER = str(uuid.UUID(int=2))


def data_body(size: int) -> bytes:
    """The costliest legal data answer to parse: as many 15-minute points as fit in `size`
    bytes and under the transport's item limit, each a time and one price (many small
    objects cost the most per byte), times in the past and distinct."""
    start = int(time.time()) // 900 * 900 - 900
    most = (MAX_JSON_ITEMS - 100) // 3  # each point: its brace, one comma inside, one after
    points: list[bytes] = []
    used = 64
    t = start
    while len(points) < most:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
        point = b'{"time":"%s","price":0.1234567891}' % stamp.encode()
        if used + len(point) + 1 > size:
            break
        points.append(point)
        used += len(point) + 1
        t -= 900
    return b'{"metadata":{},"data":[' + b",".join(reversed(points)) + b"]}"


class BigBodies(BaseHTTPRequestHandler):
    """Tokens for the token endpoint; the prepared body for every data call."""

    body = b""
    chunked = False
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, chunked: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for at in range(0, len(body), 1 << 20):
                piece = body[at : at + (1 << 20)]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        token = {"access_token": "t", "token_type": "Bearer", "expires_in": 36000}
        self._send(200, json.dumps(token).encode())

    def do_GET(self) -> None:
        if self.path.split("?")[0].endswith("/data"):
            self._send(200, self.body, self.chunked)
        else:
            self._send(404, b'{"error": "not found"}')


def run_once(root: Path, base_url: str, concurrency: int) -> dict[str, Any]:
    """`python -m exporter --once` from `root` with `concurrency` workers and inverters."""
    config = {
        "podero": {
            "base_url": base_url,
            "auth": {"client_id": "c", "client_secret": "s"},
            "max_concurrency": concurrency,
            "max_requests_per_second": 1000,
            "timeout_seconds": 60,
            "call_timeout_seconds": 120,
            "retry": {"attempts": 1, "max_wait_seconds": 1},
        },
        "inverters": [
            {"inverter_id": str(uuid.UUID(int=1000 + n)), "org_id": ORG, "user_id": USER}
            for n in range(concurrency)
        ],
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", "--config.file", str(path), "--once"],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=None if os.environ.get("BENCH_VERBOSE") else subprocess.DEVNULL,
        )
        try:
            assert proc.stdout is not None
            page = proc.stdout.read().decode(errors="replace")  # until it exits
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            raise
        up = [line for line in page.splitlines() if line.startswith("podero_device_up{")]
        return {
            "polled": sum(line.endswith(" 1.0") or line.endswith(" 1") for line in up),
            "seconds": time.monotonic() - started,
            "peak_mb": usage.ru_maxrss / 1024,
            "status": os.waitstatus_to_exitcode(status),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout whose exporter runs")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 16, 32])
    parser.add_argument("--chunked", action="store_true", help="no Content-Length")
    args = parser.parse_args()
    BigBodies.body = data_body(DEFAULT_MAX_RESPONSE_BYTES - 1024)
    BigBodies.chunked = args.chunked
    server = ThreadingHTTPServer(("127.0.0.1", 0), BigBodies)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    print(f"machine: {machine()}")
    print(
        f"exporter from {args.root}; every data body {len(BigBodies.body) / 2**20:.2f} MiB "
        f"({'chunked' if args.chunked else 'Content-Length'}), cap "
        f"{DEFAULT_MAX_RESPONSE_BYTES / 2**20:.0f} MiB"
    )
    for concurrency in args.concurrency:
        r = run_once(args.root, base_url, concurrency)
        goal = f" (goal <= {PEAK_GOAL_MB:.0f} MB: {verdict(r['peak_mb'] <= PEAK_GOAL_MB)})"
        print(
            f"max_concurrency {concurrency:3d}, {concurrency:3d} inverters: peak "
            f"{r['peak_mb']:7.1f} MB in {r['seconds']:5.1f} s, {r['polled']} polled "
            f"(exit {r['status']})"
            f"{goal if concurrency == 32 else ''}"
        )
    server.shutdown()


if __name__ == "__main__":
    main()
