"""HTTP simulator of the Dify API endpoints the exporter probes, on 127.0.0.1.

One server stands for many Dify instances: an instance named NAME has the base URL
`<server>/NAME`, so its system-features endpoint is
`<server>/NAME/console/api/system-features`. Each instance has a Behavior that
decides the answer: the JSON shapes of Dify's FeatureService (`license.status`,
`license.expired_at`, `license.workspaces`, `workspace_members`, `members`) or a
failure (HTTP error, redirect, delay, slow body, malformed or oversized body, a
dropped connection). With `tls=True` the server uses a fresh self-signed CA.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SYSTEM_FEATURES = "/console/api/system-features"
FEATURES = "/console/api/features"


def system_features(
    status: str = "active",
    expired_at: str = "",
    workspaces: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a system-features answer shaped like Dify's SystemFeatureModel."""
    license_info: dict[str, Any] = {"status": status, "expired_at": expired_at}
    if workspaces is not None:
        license_info["workspaces"] = workspaces
    return {
        "sso_enforced_for_signin": False,
        "sso_enforced_for_signin_protocol": "",
        "enable_marketplace": True,
        "max_plugin_package_size": 52428800,
        "enable_email_code_login": False,
        "enable_email_password_login": True,
        "enable_social_oauth_login": False,
        "is_allow_register": False,
        "is_allow_create_workspace": False,
        "is_email_setup": True,
        "license": license_info,
        "branding": {
            "enabled": True,
            "application_title": "",
            "login_page_logo": "",
            "workspace_logo": "",
            "favicon": "",
        },
        "webapp_auth": {"enabled": True, "allow_sso": False},
        "plugin_manager": {"enabled": True},
    }


def features(
    workspace_members: dict[str, Any] | None = None,
    members: dict[str, Any] | None = None,
    billing_enabled: bool = False,
) -> dict[str, Any]:
    """Build a features answer shaped like Dify's FeatureModel."""
    answer: dict[str, Any] = {
        "billing": {"enabled": billing_enabled, "subscription": {"plan": "sandbox"}},
        "members": members or {"size": 0, "limit": 1},
        "apps": {"size": 0, "limit": 10},
        "docs_processing": "standard",
    }
    if workspace_members is not None:
        answer["workspace_members"] = workspace_members
    return answer


@dataclass
class Behavior:
    """How one simulated instance answers.

    `mode` is one of: json (send `body` as JSON), raw (send `raw` bytes as is),
    error (HTTP `code`), redirect (302 to `location`), drop (close the connection
    without an answer), slow (send the headers, then the body one byte every
    `interval` seconds), huge (a valid JSON prefix larger than the probe's limit).
    `delay` waits before answering in every mode.
    """

    mode: str = "json"
    body: Any = None
    features_body: Any = None
    raw: bytes = b""
    code: int = 200
    location: str = ""
    delay: float = 0.0
    interval: float = 0.2
    require_token: str | None = None


@dataclass
class Request:
    path: str
    headers: dict[str, str]


@dataclass
class DifyApiSimulator:
    """A running simulator; use as a context manager, or start() and stop()."""

    tls: bool = False
    behaviors: dict[str, Behavior] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="dify-api-sim-")
        self.ca_file: str | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def base(self) -> str:
        assert self._server is not None
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def url(self, name: str) -> str:
        """Return the api_url of the simulated instance `name`."""
        return f"{self.base}/{name}"

    def set(self, name: str, behavior: Behavior) -> None:
        with self._lock:
            self.behaviors[name] = behavior

    def start(self) -> "DifyApiSimulator":
        simulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - name fixed by the base class
                simulator._handle(self)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if self.tls:
            cert, key = _self_signed(self._folder.name)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            server.socket = context.wrap_socket(server.socket, server_side=True)
            self.ca_file = cert
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._folder.cleanup()

    def __enter__(self) -> "DifyApiSimulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        name, _, rest = handler.path.lstrip("/").partition("/")
        rest = "/" + rest
        with self._lock:
            self.requests.append(Request(handler.path, dict(handler.headers.items())))
            behavior = self.behaviors.get(name)
        if behavior is None or rest not in (SYSTEM_FEATURES, FEATURES):
            _send(handler, 404, b'{"code": "not_found", "status": 404}')
            return
        if behavior.delay:
            time.sleep(behavior.delay)
        if behavior.require_token is not None and rest == FEATURES:
            expected = f"Bearer {behavior.require_token}"
            if handler.headers.get("Authorization") != expected:
                _send(handler, 401, b'{"code": "unauthorized", "status": 401}')
                return
        body = behavior.body if rest == SYSTEM_FEATURES else behavior.features_body
        if behavior.mode == "json":
            _send(handler, behavior.code, json.dumps(body).encode())
        elif behavior.mode == "raw":
            _send(handler, behavior.code, behavior.raw)
        elif behavior.mode == "error":
            _send(handler, behavior.code, b'{"code": "internal_server_error"}')
        elif behavior.mode == "redirect":
            handler.send_response(302)
            handler.send_header("Location", behavior.location)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        elif behavior.mode == "drop":
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
        elif behavior.mode == "slow":
            payload = json.dumps(body).encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            try:
                for index in range(len(payload)):
                    handler.wfile.write(payload[index : index + 1])
                    handler.wfile.flush()
                    time.sleep(behavior.interval)
            except OSError:
                pass
        elif behavior.mode == "huge":
            payload = b'{"license": {"status": "active", "pad": "' + b"x" * (2 << 20)
            payload += b'"}}'
            _send(handler, 200, payload)
        else:
            raise ValueError(f"unknown behavior mode {behavior.mode!r}")


def _send(handler: BaseHTTPRequestHandler, code: int, body: bytes) -> None:
    try:
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    except OSError:
        pass


def _self_signed(folder: str) -> tuple[str, str]:
    """Write a self-signed certificate for 127.0.0.1 and its key; return the paths."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dify-api-simulator")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = os.path.join(folder, "server.pem")
    key_path = os.path.join(folder, "server-key.pem")
    with open(cert_path, "wb") as handle:
        handle.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path
