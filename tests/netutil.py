"""Network helpers the tests share (tests/ is on the import path: `from netutil import free_port`).

`wait_for_server` waits for a server process to answer. `recording_server(route)` serves
HTTP on 127.0.0.1 from a thread and records every request; `route(handler, body, seen)`
answers one request (`seen`: requests to its path so far, this one included) through
`handler.reply` / `handler.reply_json`.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from nodeloom.testing import free_port as free_port  # defined once, in the documented test helpers


def wait_for_server(process: subprocess.Popen[Any], url: str, timeout: float, what: str, *,
                    log: Path | None = None, headers: dict[str, str] | None = None) -> None:
    """Poll `url` (a server `process` started) until it answers 200; `RuntimeError` naming `what`, with
    the end of its `log`, if the process exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}: {_tail(log)}")
        try:
            if httpx.get(url, headers=headers, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer within {timeout:g} s: {_tail(log)}")
        time.sleep(0.05)


def _tail(log: Path | None) -> str:
    return log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else "(no log)"


@dataclass
class Received:
    method: str
    #: the request target as sent, query string included
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path


@dataclass
class ServerLog:
    """What the server saw, and `release`, which a route may wait on to answer late."""

    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.path == path)


Route = Callable[["RecordingHandler", bytes, int], None]


class RecordingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: ServerLog
    route: Route

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def reply(self, status: int, body: bytes, content_type: str = "application/json",
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def reply_json(self, status: int, data: Any, extra: dict[str, str] | None = None) -> None:
        self.reply(status, json.dumps(data).encode(), "application/json", extra)

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        received = Received(self.command, self.path, dict(self.headers.items()), body)
        with self.state.lock:
            self.state.requests.append(received)
            seen = sum(1 for r in self.state.requests if r.path == received.path)
        type(self).route(self, body, seen)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


@contextmanager
def recording_server(route: Route, tls: ssl.SSLContext | None = None) -> Iterator[ServerLog]:
    """An HTTP (or, with `tls`, HTTPS) server on 127.0.0.1 answering with `route`, for the `with` block."""
    state = ServerLog()
    handler = type("Handler", (RecordingHandler,), {"state": state, "route": staticmethod(route)})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
