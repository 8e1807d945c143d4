"""HTTP server for /metrics, /healthz and /readyz.

The telemetry path renders the collector's registry; content negotiation
(OpenMetrics or the text format, gzip) is prometheus_client's. TLS, basic auth,
extra response headers and the rate limit come from the web configuration
(webconfig.py); when set they cover every path.
"""

from __future__ import annotations

import gzip
import logging
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)

LANDING_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Dify License Exporter</title></head>
<body><h1>Dify License Exporter</h1>
<p><a href="{path}">Metrics</a> &middot; <a href="/healthz">Health</a> &middot;
<a href="/readyz">Readiness</a></p></body></html>
"""


class ExporterServer(ThreadingHTTPServer):
    """Threaded HTTP server carrying the metrics registry and readiness check."""

    daemon_threads = True
    allow_reuse_address = True
    # Room for a burst of scrapers connecting at once; the default is 5.
    request_queue_size = 128
    # Set by WebConfig.apply: a webconfig.TLSProvider, a webconfig.BasicAuth, extra
    # response headers and a webconfig.RateLimiter.
    tls: Any = None
    auth: Any = None
    response_headers: dict[str, str] = {}
    rate_limiter: Any = None
    # Renders the metrics page from the Accept header: (body, content type). When
    # unset, the registry is rendered through prometheus_client on every scrape.
    render: Callable[[str | None, str | None], tuple[bytes, str, str | None]] | None = (
        None
    )

    def __init__(
        self,
        address: tuple[str, int],
        registry: CollectorRegistry,
        telemetry_path: str,
        ready: Callable[[], bool],
    ):
        self.registry = registry
        self.telemetry_path = telemetry_path
        self.ready = ready
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, ExporterHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.tls is not None:
            # Wrapping does no I/O; the handshake runs in the connection's thread.
            try:
                sock = self.tls.wrap(sock)
            except (OSError, ValueError):
                sock.close()
                raise
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a failed request in the log format instead of printing a traceback.

        A scraper that gives up mid-response (a scrape timeout) resets the
        connection; that is routine and logged at debug level only.
        """
        error = sys.exc_info()[1]
        peer = client_address[0] if client_address else ""
        if isinstance(error, (ConnectionError, TimeoutError, ssl.SSLError)):
            log.debug(
                "connection closed by client",
                extra={"address": peer, "error": str(error)},
            )
            return
        log.error(
            "request failed",
            exc_info=error,
            extra={"address": peer, "error": f"{type(error).__name__}: {error}"},
        )

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is not None and not self.tls.handshake(request, client_address):
            return
        super().finish_request(request, client_address)


class ExporterHandler(BaseHTTPRequestHandler):
    server: ExporterServer
    protocol_version = "HTTP/1.1"
    # Seconds a connection may stay idle or half-sent before it is closed, so slow
    # or stalled clients cannot hold threads forever. Prometheus reconnects after
    # an idle keep-alive connection is closed.
    timeout = 75
    _head = False

    def do_HEAD(self) -> None:  # noqa: N802 - name fixed by BaseHTTPRequestHandler
        self._head = True
        try:
            self.do_GET()
        finally:
            self._head = False

    def do_GET(self) -> None:  # noqa: N802 - name fixed by BaseHTTPRequestHandler
        if not self._admit():
            return
        path = urlsplit(self.path).path
        if path == self.server.telemetry_path:
            self._metrics()
        elif path == "/healthz":
            self._send(200, "text/plain; charset=utf-8", b"ok\n")
        elif path == "/readyz":
            if self.server.ready():
                self._send(200, "text/plain; charset=utf-8", b"ready\n")
            else:
                self._send(503, "text/plain; charset=utf-8", b"registry not loaded\n")
        elif path == "/":
            page = LANDING_PAGE.format(path=self.server.telemetry_path)
            self._send(200, "text/html; charset=utf-8", page.encode())
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found\n")

    def _admit(self) -> bool:
        """Apply the rate limit and basic auth; respond 429 or 401 when they fail."""
        limiter = self.server.rate_limiter
        if limiter is not None and not limiter.allow():
            self._send(429, "text/plain; charset=utf-8", b"too many requests\n")
            return False
        auth = self.server.auth
        if auth is not None and not auth.authorized(self.headers.get("Authorization")):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="dify-license-exporter"')
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", "13")
            self.end_headers()
            self._write_body(b"unauthorized\n")
            return False
        return True

    def end_headers(self) -> None:
        for name, value in self.server.response_headers.items():
            self.send_header(name, value)
        super().end_headers()

    def _metrics(self) -> None:
        accept = self.headers.get("Accept")
        accept_encoding = self.headers.get("Accept-Encoding")
        encoder, content_type = choose_encoder(accept)
        encoding = None
        try:
            if self.server.render is not None:
                body, content_type, encoding = self.server.render(
                    accept, accept_encoding
                )
            else:
                body = encoder(self.server.registry)
                if "gzip" in (accept_encoding or ""):
                    body = gzip.compress(body, compresslevel=1)
                    encoding = "gzip"
        except Exception:  # noqa: BLE001 - answer 500, keep the server up
            log.exception("rendering metrics failed")
            self._send(500, "text/plain; charset=utf-8", b"rendering metrics failed\n")
            return
        self.send_response(200)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._write_body(body)

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._write_body(body)

    def _write_body(self, body: bytes) -> None:
        if not self._head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("http %s", format % args)


def parse_listen_address(text: str) -> tuple[str, int]:
    """Parse HOST:PORT, [IPv6]:PORT or :PORT (all interfaces).

    Raises ValueError naming the value and the expected form.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(
            f"invalid listen address {text!r}; use HOST:PORT such as 0.0.0.0:9877"
        )
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def serve_in_thread(server: ExporterServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    return thread
