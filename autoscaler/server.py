"""The autoscaler's HTTP endpoints: /metrics for Prometheus and /healthz for the kubelet."""

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class Health:
    """Healthy while the main loop completes a cycle (leading or standing by) at least every few intervals."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit_s = 3 * interval_s
        self.clock = clock
        self.last_cycle = clock()

    def cycle_done(self) -> None:
        self.last_cycle = self.clock()

    def healthy(self) -> bool:
        return self.clock() - self.last_cycle <= self.limit_s


def serve(port: int, registry: CollectorRegistry, health: Health, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                ok = health.healthy()
                self._reply(200 if ok else 503, b"ok\n" if ok else b"main loop stalled\n", "text/plain")
            else:
                self._reply(404, b"not found\n", "text/plain")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
