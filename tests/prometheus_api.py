"""Prometheus's instant-query API on loopback, answered by a function of the request: for tests of the real client."""

import json
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

Answer = Callable[[str, Message], list[dict[str, Any]]]  # (PromQL, request headers) -> the result vector


@contextmanager
def serving(answer: Answer, context: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> Iterator[str]:
    """The API's base URL while it serves; TLS with `context`."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            promql = parse_qs(urlparse(self.path).query).get("query", [""])[0]
            result = answer(promql, self.headers)
            body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with loopback(Handler, context) as port:
        yield f"{'https' if context else 'http'}://{host}:{port}"


@contextmanager
def loopback(handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext | None = None) -> Iterator[int]:
    """A threaded HTTP server of `handler` on a free loopback port (TLS with `context`), stopped on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if context:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
