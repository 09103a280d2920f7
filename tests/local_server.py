"""An HTTP server on 127.0.0.1 for the length of a with block: the stand-ins' way to be a remote service."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@contextlib.contextmanager
def serve(handler: Callable[..., BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve requests with the handler on a free port; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Quiet(BaseHTTPRequestHandler):
    """A handler that keeps the test output clean, and answers in JSON."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_json(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@dataclass
class Sink:
    """An incoming webhook (Slack's, say): every POST's JSON body, and the statuses to answer, in turn (then 200)."""

    received: list[Any] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


def webhook(sink: Sink) -> contextlib.AbstractContextManager[str]:
    """Serve the sink; its base URL for the length of a with block."""

    class Handler(Quiet):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            sink.headers.append({key.lower(): value for key, value in self.headers.items()})
            status = sink.statuses.pop(0) if sink.statuses else 200
            if status == 200:
                sink.received.append(json.loads(body))
            self.send_json(status, {"ok": status == 200}, "text/plain")

    return serve(Handler)
