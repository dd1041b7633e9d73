"""TEST DOUBLE, not part of the package: a relay in front of a server's metrics page, standing for
the network path an in-cluster step reads it through (the chart's metrics Service), with that
path's limits:

- ``drop_after``: after that many reads the relay stops listening, as a Service whose pod went
  away (or a dropped port-forward) refuses the next connection;
- ``stale``: every read answers the first page it fetched, as a cache or exporter that stopped
  refreshing; the counters on it never move.

Loopback only; every read is bounded by the upstream timeout."""

from __future__ import annotations

import contextlib
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class MetricsRelay:
    def __init__(self, upstream: str, *, drop_after: int | None = None, stale: bool = False):
        self.upstream = upstream
        self.drop_after = drop_after
        self.stale = stale
        self.reads = 0
        self._first: bytes | None = None
        self._lock = threading.Lock()
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = relay._page()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                if relay.drop_after is not None and relay.reads >= relay.drop_after:
                    # the next connection is refused (closed from another thread: shutdown()
                    # waits for this handler's loop)
                    threading.Thread(target=relay.close, daemon=True).start()

            def log_message(self, *a: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _page(self) -> bytes:
        with self._lock:
            self.reads += 1
            if self.stale and self._first is not None:
                return self._first
            with urllib.request.urlopen(self.upstream, timeout=2.0) as r:  # loopback double
                body: bytes = r.read()
            if self._first is None:
                self._first = body
            return body

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> MetricsRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):  # already closed by a drop
            self.close()
