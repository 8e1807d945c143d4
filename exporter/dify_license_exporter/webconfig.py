"""Web configuration in the Prometheus exporter-toolkit format: TLS, basic auth.

`load_web_config` reads and validates the whole file at start, so an unknown key
or a bad value stops the exporter with a message naming the file, the key and the
fix. `WebConfig.apply` attaches the result to an `ExporterServer`:

- TLS: the certificate, key and client CA files are checked for changes before
  each new connection, and a changed set is loaded into a fresh SSLContext. A
  changed set that fails to load is logged and counted, and the last good one
  stays in use.
- basic auth: bcrypt hashes, one bcrypt check at a time. A successful check is
  cached under an HMAC of the credentials, so a scrape pays the bcrypt cost once.
- every path (metrics, /healthz, /readyz, /) is behind TLS client checks and
  basic auth, as in exporter-toolkit.

Differences from exporter-toolkit (Go): Python's ssl module verifies every client
certificate it requests, so `RequestClientCert` and `RequireAnyClientCert` are
rejected, and it cannot set a list of key exchange groups, so `curve_preferences`
is rejected. HTTP/2 is never served. The file itself is read once at start.
"""

from __future__ import annotations

import base64
import binascii
import collections
import difflib
import hashlib
import hmac
import logging
import os
import re
import secrets
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import bcrypt
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import yamlfile

log = logging.getLogger(__name__)

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

# exporter-toolkit's client_auth_type values that Python's ssl module can honour.
CLIENT_AUTH_TYPES = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
UNSUPPORTED_CLIENT_AUTH_TYPES = ("RequestClientCert", "RequireAnyClientCert")

# Go crypto/tls names of TLS 1.0-1.2 cipher suites and their OpenSSL names. TLS 1.3
# suites are not configurable, in Go as here.
CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
}

# Response headers exporter-toolkit lets the file set, with the values it accepts
# (None: any single-line value).
HEADER_VALUES: dict[str, tuple[str, ...] | None] = {
    "Content-Security-Policy": None,
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-Content-Type-Options": ("nosniff",),
    "X-XSS-Protection": None,
    "Strict-Transport-Security": None,
}

TOP_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit")
TLS_KEYS = (
    "cert",
    "key",
    "client_ca",
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "client_allowed_sans",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
)
HTTP_KEYS = ("http2", "headers")
RATE_LIMIT_KEYS = ("interval", "burst")

_BCRYPT_HASH = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
HASH_FIX = (
    "create one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'` or "
    '`python3 -c \'import bcrypt; print(bcrypt.hashpw(b"PASSWORD", '
    "bcrypt.gensalt()).decode())'`"
)
# Successful basic auth checks kept; more distinct credentials evict the oldest.
AUTH_CACHE_SIZE = 256
HANDSHAKE_TIMEOUT_SECONDS = 10.0


class WebConfigError(Exception):
    """The web configuration file is invalid; the message lists every problem."""

    def __init__(self, path: str, problems: list[str]):
        self.path = path
        self.problems = problems
        if len(problems) == 1:
            text = f"{path}: {problems[0]}"
        else:
            lines = "\n".join(f"  {path}: {problem}" for problem in problems)
            text = f"invalid web configuration ({len(problems)} problems):\n{lines}"
        super().__init__(text)


class TLSLoadError(Exception):
    """A certificate, key or CA cannot be loaded; the message names key and fix."""


@dataclass(frozen=True)
class TLSSettings:
    """Validated `tls_server_config`. File paths are absolute; PEMs are inline."""

    cert_file: str | None = None
    key_file: str | None = None
    cert_pem: bytes | None = field(default=None, repr=False)
    key_pem: bytes | None = field(default=None, repr=False)
    client_ca_file: str | None = None
    client_ca_pem: bytes | None = field(default=None, repr=False)
    client_auth_type: str = "NoClientCert"
    client_allowed_sans: tuple[str, ...] = ()
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True

    def files(self) -> tuple[str, ...]:
        return tuple(
            path
            for path in (self.cert_file, self.key_file, self.client_ca_file)
            if path is not None
        )


@dataclass(frozen=True)
class LoadedTLS:
    """One SSLContext built from one version of the certificate, key and CA."""

    context: ssl.SSLContext
    not_after: float


class TLSProvider:
    """Build the server SSLContext and rebuild it when its files change."""

    def __init__(self, settings: TLSSettings, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.clock = clock
        self.reload_errors = 0
        self.handshake_errors = 0
        self._lock = threading.Lock()
        self._file_state = self._stat_files()
        self._attempted_state = self._file_state
        self.current = build_tls(settings)  # raises TLSLoadError at start

    def _stat_files(self) -> tuple[tuple[Any, ...], ...]:
        state = []
        for path in self.settings.files():
            try:
                info = os.stat(path)
            except OSError as exc:
                state.append((path, "missing", exc.errno))
                continue
            state.append(
                (path, info.st_mtime_ns, info.st_size, info.st_ino, info.st_dev)
            )
        return tuple(state)

    def context(self) -> ssl.SSLContext:
        """Return the SSLContext for a new connection, reloading changed files.

        A changed set of files is loaded once per change: a set that fails (say,
        a new certificate whose key is not written yet) is retried only when the
        files change again.
        """
        state = self._stat_files()
        if state == self._file_state or state == self._attempted_state:
            return self.current.context
        with self._lock:
            if state != self._file_state and state != self._attempted_state:
                self._attempted_state = state
                try:
                    self.current = build_tls(self.settings)
                except TLSLoadError as exc:
                    self.reload_errors += 1
                    log.error(
                        "TLS reload failed, serving the previous certificate",
                        extra={"reason": "tls_reload_failed", "error": str(exc)},
                    )
                else:
                    self._file_state = state
                    log.info(
                        "TLS certificate reloaded",
                        extra={"path": self.settings.cert_file or "(inline cert)"},
                    )
        return self.current.context

    def reload_failing(self) -> bool:
        """Return whether the files on disk differ from the set being served.

        True from a failed reload until the files load or return to the served set.
        """
        self.context()
        return self._stat_files() != self._file_state

    def wrap(self, sock: Any) -> ssl.SSLSocket:
        """Wrap an accepted socket; the handshake runs later, in `handshake`."""
        return self.context().wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )

    def handshake(self, sock: ssl.SSLSocket, peer: Any) -> bool:
        """Run the server handshake and the client SAN check; False closes it."""
        previous = sock.gettimeout()
        sock.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
        try:
            sock.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            self.handshake_errors += 1
            reason = getattr(exc, "reason", None) or type(exc).__name__
            log.debug(
                "TLS handshake failed",
                extra={"address": _peer_text(peer), "reason": str(reason)},
            )
            return False
        sock.settimeout(previous)
        allowed = self.settings.client_allowed_sans
        if allowed and not _peer_has_allowed_san(sock.getpeercert(), allowed):
            self.handshake_errors += 1
            log.debug(
                "TLS client certificate has no allowed SAN",
                extra={"address": _peer_text(peer), "reason": "san_not_allowed"},
            )
            return False
        return True


def _peer_text(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def _peer_has_allowed_san(certificate: Any, allowed: tuple[str, ...]) -> bool:
    """True when a SAN of the verified client certificate is in `allowed`."""
    if not certificate:
        return False
    names = {value for _kind, value in certificate.get("subjectAltName", ())}
    return any(name in names for name in allowed)


def build_tls(settings: TLSSettings) -> LoadedTLS:
    """Read the certificate, key and CA once and build an SSLContext from them.

    Raises TLSLoadError naming the key, the file and the fix.
    """
    cert_pem = settings.cert_pem or _read(settings.cert_file, "cert_file")
    key_pem = settings.key_pem or _read(settings.key_file, "key_file")
    cert_where = _where("cert", settings.cert_file)
    key_where = _where("key", settings.key_file)
    try:
        certificates = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise TLSLoadError(
            f"{cert_where}: no PEM certificate found; give the server certificate "
            "(and its chain) in PEM"
        ) from None
    try:
        private_key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise TLSLoadError(
            f"{key_where}: the private key is encrypted; give an unencrypted PEM key"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise TLSLoadError(
            f"{key_where}: no PEM private key found; give the key of the server "
            "certificate in PEM"
        ) from None
    leaf = certificates[0]
    if _public_der(leaf.public_key()) != _public_der(private_key.public_key()):
        raise TLSLoadError(
            f"{key_where}: the private key does not match the certificate in "
            f"{cert_where}; give the key the certificate was issued for"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[settings.min_version]
    context.maximum_version = TLS_VERSIONS[settings.max_version]
    if settings.cipher_suites:
        context.set_ciphers(
            ":".join(CIPHER_SUITES[name] for name in settings.cipher_suites)
        )
    if settings.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    _load_chain(context, cert_pem, key_pem)
    context.verify_mode = CLIENT_AUTH_TYPES[settings.client_auth_type]
    if settings.client_ca_file or settings.client_ca_pem:
        ca_pem = settings.client_ca_pem or _read(
            settings.client_ca_file, "client_ca_file"
        )
        try:
            context.load_verify_locations(cadata=ca_pem.decode("ascii", "replace"))
        except (ssl.SSLError, ValueError):
            raise TLSLoadError(
                f"{_where('client_ca', settings.client_ca_file)}: no PEM CA "
                "certificate found; give the CA that issues client certificates"
            ) from None
    return LoadedTLS(context=context, not_after=leaf.not_valid_after_utc.timestamp())


def _where(key: str, path: str | None) -> str:
    return (
        f"tls_server_config.{key}_file {path}" if path else f"tls_server_config.{key}"
    )


def _read(path: str | None, key: str) -> bytes:
    assert path is not None
    try:
        with open(path, "rb") as handle:
            return handle.read(yamlfile.MAX_FILE_BYTES)
    except OSError as exc:
        raise TLSLoadError(
            f"tls_server_config.{key} {path}: cannot read the file: {exc.strerror}; "
            "check the path and permissions"
        ) from None


def _public_der(public_key: Any) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _load_chain(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """Load the exact bytes already checked, so a file changed since is not used.

    ssl only loads a chain from a path: the bytes go through an anonymous memory
    file on Linux (no disk, works on a read-only root file system), else through
    a private temporary file that is removed at once.
    """
    data = cert_pem.rstrip(b"\n") + b"\n" + key_pem
    if hasattr(os, "memfd_create"):
        descriptor = os.memfd_create("tls-chain", os.MFD_CLOEXEC)
        try:
            with open(descriptor, "wb", closefd=False) as handle:
                handle.write(data)
            try:
                context.load_cert_chain(f"/proc/self/fd/{descriptor}")
                return
            except FileNotFoundError:
                pass  # no /proc: fall through to a temporary file
        finally:
            os.close(descriptor)
    with tempfile.TemporaryDirectory(prefix="dify-license-exporter-") as folder:
        path = os.path.join(folder, "chain.pem")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(descriptor, "wb") as handle:
            handle.write(data)
        context.load_cert_chain(path)


class BasicAuth:
    """Check `Authorization: Basic` headers against bcrypt hashes."""

    def __init__(self, users: dict[str, bytes]):
        self.users = users
        self.failures = 0
        # Successful checks, keyed by an HMAC of user, hash and password under a
        # key that lives only in this process, so the cache contains no password.
        self._cache_key = secrets.token_bytes(32)
        self._cache: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self._cache_lock = threading.Lock()
        # One bcrypt check at a time, so a flood of wrong passwords costs one core.
        self._bcrypt_lock = threading.Lock()
        # An unknown user is checked against a real hash, so the response takes as
        # long as for a known user with a wrong password.
        self._decoy_hash = next(iter(users.values()))

    def authorized(self, header: str | None) -> bool:
        credentials = _parse_basic(header)
        if credentials is None:
            self.failures += 1
            return False
        user, password = credentials
        stored = self.users.get(user)
        hashed = stored if stored is not None else self._decoy_hash
        cache_key = hmac.new(
            self._cache_key,
            b"\0".join((user.encode(), hashed, password)),
            hashlib.sha256,
        ).digest()
        if stored is not None:
            with self._cache_lock:
                if cache_key in self._cache:
                    self._cache.move_to_end(cache_key)
                    return True
        with self._bcrypt_lock:
            try:
                matches = bcrypt.checkpw(password, hashed)
            except ValueError:
                # bcrypt 5 rejects passwords longer than 72 bytes.
                matches = False
        if not matches or stored is None:
            self.failures += 1
            return False
        with self._cache_lock:
            self._cache[cache_key] = None
            while len(self._cache) > AUTH_CACHE_SIZE:
                self._cache.popitem(last=False)
        return True


def _parse_basic(header: str | None) -> tuple[str, bytes] | None:
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


class RateLimiter:
    """Token bucket over all requests: `burst` tokens, one more per `interval`."""

    def __init__(self, interval: float, burst: int, clock=time.monotonic):
        self.interval = interval
        self.burst = burst
        self.clock = clock
        self.rejected = 0
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = self.clock()
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(
                float(self.burst), self._tokens + elapsed / self.interval
            )
            self._updated = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            self.rejected += 1
            return False


@dataclass
class WebConfig:
    """The validated web configuration, ready to attach to the server."""

    path: str
    tls: TLSProvider | None = None
    auth: BasicAuth | None = None
    headers: dict[str, str] = field(default_factory=dict)
    rate_limiter: RateLimiter | None = None

    def apply(self, server: Any, registry: CollectorRegistry | None = None) -> None:
        """Attach TLS, basic auth, headers and rate limit to an ExporterServer.

        The TLS and access-control metrics go to `registry`, which must be
        rendered on every scrape; by default the server's registry.
        """
        server.tls = self.tls
        server.auth = self.auth
        server.response_headers = dict(self.headers)
        server.rate_limiter = self.rate_limiter
        target = registry if registry is not None else server.registry
        target.register(WebConfigCollector(self))


class WebConfigCollector(Collector):
    """Render the serving certificate's expiry and the access-control counters."""

    def __init__(self, config: WebConfig):
        self.config = config

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        expiry = GaugeMetricFamily(
            "dify_license_exporter_tls_certificate_expiry_timestamp_seconds",
            "Unix time at which the serving TLS certificate expires.",
        )
        reload_errors = CounterMetricFamily(
            "dify_license_exporter_tls_reload_errors",
            "Changed TLS certificate, key or CA files that failed to load.",
        )
        reload_failing = GaugeMetricFamily(
            "dify_license_exporter_tls_reload_failing",
            "1 while changed TLS files fail to load and the previous certificate "
            "is served.",
        )
        handshake_errors = CounterMetricFamily(
            "dify_license_exporter_tls_handshake_errors",
            "TLS handshakes that failed or presented no allowed client SAN.",
        )
        tls = self.config.tls
        if tls is not None:
            # Picks up a rotated certificate before reporting it.
            reload_failing.add_metric([], float(tls.reload_failing()))
            expiry.add_metric([], tls.current.not_after)
            reload_errors.add_metric([], float(tls.reload_errors))
            handshake_errors.add_metric([], float(tls.handshake_errors))
        auth_failures = CounterMetricFamily(
            "dify_license_exporter_http_auth_failures",
            "Requests rejected with 401: missing, malformed or wrong credentials.",
        )
        if self.config.auth is not None:
            auth_failures.add_metric([], float(self.config.auth.failures))
        rate_limited = CounterMetricFamily(
            "dify_license_exporter_http_rate_limited",
            "Requests rejected with 429 by the rate_limit of the web configuration.",
        )
        if self.config.rate_limiter is not None:
            rate_limited.add_metric([], float(self.config.rate_limiter.rejected))
        yield from (
            expiry,
            reload_errors,
            reload_failing,
            handshake_errors,
            auth_failures,
            rate_limited,
        )


def load_web_config(path: str) -> WebConfig:
    """Read and validate a web configuration file; raises WebConfigError."""
    try:
        text = yamlfile.read_text(path)
        data, yaml_problems = yamlfile.parse(text)
    except FileNotFoundError:
        raise WebConfigError(
            path, ["file not found; check the --web.config.file path"]
        ) from None
    except OSError as exc:
        raise WebConfigError(
            path, [f"cannot read the file: {exc.strerror}; check permissions"]
        ) from None
    except yamlfile.YamlError as exc:
        raise WebConfigError(path, [str(exc)]) from None
    problems = [
        f"{p.path}: {p.message}" if p.path else p.message for p in yaml_problems
    ]
    parser = _Parser(path, problems)
    config = parser.parse(data)
    if problems:
        raise WebConfigError(path, problems)
    return config


def parse_duration(text: str) -> float:
    """Parse a Go duration such as 1s, 500ms or 1m30s into seconds.

    Raises ValueError when the text is not a duration.
    """
    if text == "0":
        return 0.0
    position = 0
    seconds = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(text)
    return seconds


class _Parser:
    """Validate the parsed YAML, collecting every problem with its key path."""

    def __init__(self, path: str, problems: list[str]):
        self.path = path
        self.folder = os.path.dirname(os.path.abspath(path))
        self.problems = problems

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}" if key else message)

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...]) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(key, f"must be a mapping, got {yamlfile.type_name(value)}")
            return {}
        for name in value:
            if name not in allowed:
                hint = difflib.get_close_matches(str(name), allowed, n=1)
                suggestion = f"did you mean {hint[0]!r}? " if hint else ""
                where = f"{key}.{name}" if key else str(name)
                self.problem(
                    where,
                    f"unknown key; {suggestion}allowed keys: {', '.join(allowed)}",
                )
        return value

    def string(self, value: Any, key: str, secret: bool = False) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(key, f"must be a string, got {yamlfile.type_name(value)}")
            return None
        if not value and not secret:
            return None
        return value

    def string_list(self, value: Any, key: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(key, f"must be a list of strings, got {yamlfile.type_name(value)}")
            return ()
        return tuple(value)

    def boolean(self, value: Any, key: str, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(key, f"must be true or false, got {yamlfile.type_name(value)}")
            return default
        return value

    def file(self, value: Any, key: str) -> str | None:
        text = self.string(value, key)
        if text is None:
            return None
        # Relative paths are read from the folder of the web configuration file.
        return os.path.normpath(os.path.join(self.folder, text))

    def parse(self, data: Any) -> WebConfig:
        top = self.mapping(data, "", TOP_KEYS)
        config = WebConfig(path=self.path)
        if top.get("tls_server_config") is not None:
            settings = self.tls_settings(top["tls_server_config"])
            if settings is not None and not self.problems:
                try:
                    config.tls = TLSProvider(settings)
                except TLSLoadError as exc:
                    self.problem("", str(exc))
        config.headers = self.http_settings(top.get("http_server_config"))
        config.auth = self.basic_auth(top.get("basic_auth_users"))
        config.rate_limiter = self.rate_limit(top.get("rate_limit"))
        return config

    def tls_settings(self, value: Any) -> TLSSettings | None:
        key = "tls_server_config"
        section = self.mapping(value, key, TLS_KEYS)
        if not section:
            return None
        cert_file = self.file(section.get("cert_file"), f"{key}.cert_file")
        key_file = self.file(section.get("key_file"), f"{key}.key_file")
        cert = self.string(section.get("cert"), f"{key}.cert")
        private_key = self.string(section.get("key"), f"{key}.key", secret=True)
        client_ca_file = self.file(
            section.get("client_ca_file"), f"{key}.client_ca_file"
        )
        client_ca = self.string(section.get("client_ca"), f"{key}.client_ca")
        for inline, path, name in (
            (cert, cert_file, "cert"),
            (private_key, key_file, "key"),
            (client_ca, client_ca_file, "client_ca"),
        ):
            if inline is not None and path is not None:
                self.problem(
                    f"{key}.{name}",
                    f"both {name} and {name}_file are set; keep one of them",
                )
        if cert is None and cert_file is None:
            self.problem(
                f"{key}.cert_file",
                "required key is missing; give the server certificate file "
                "(or the PEM inline as cert)",
            )
        if private_key is None and key_file is None:
            self.problem(
                f"{key}.key_file",
                "required key is missing; give the server private key file "
                "(or the PEM inline as key)",
            )

        auth_type = self.string(
            section.get("client_auth_type"), f"{key}.client_auth_type"
        )
        auth_type = auth_type or "NoClientCert"
        if auth_type in UNSUPPORTED_CLIENT_AUTH_TYPES:
            self.problem(
                f"{key}.client_auth_type",
                f"{auth_type} is not supported: Python's ssl module verifies every "
                "client certificate it requests; use RequireAndVerifyClientCert "
                "(or VerifyClientCertIfGiven) with client_ca_file",
            )
        elif auth_type not in CLIENT_AUTH_TYPES:
            self.problem(
                f"{key}.client_auth_type",
                f"invalid value {auth_type!r}; use one of "
                + ", ".join(CLIENT_AUTH_TYPES),
            )
        has_ca = client_ca is not None or client_ca_file is not None
        if has_ca and auth_type == "NoClientCert":
            self.problem(
                f"{key}.client_ca_file",
                "a client CA is set but client_auth_type is NoClientCert; set "
                "client_auth_type: RequireAndVerifyClientCert or remove the CA",
            )
        if not has_ca and auth_type in (
            "VerifyClientCertIfGiven",
            "RequireAndVerifyClientCert",
        ):
            self.problem(
                f"{key}.client_ca_file",
                f"required with client_auth_type {auth_type}; give the CA that "
                "issues client certificates",
            )
        allowed_sans = self.string_list(
            section.get("client_allowed_sans"), f"{key}.client_allowed_sans"
        )
        if allowed_sans and auth_type != "RequireAndVerifyClientCert":
            self.problem(
                f"{key}.client_allowed_sans",
                "needs client_auth_type: RequireAndVerifyClientCert, because other "
                "types let a client connect without a certificate",
            )

        versions = {}
        for name, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
            version = self.string(section.get(name), f"{key}.{name}") or default
            if version not in TLS_VERSIONS:
                self.problem(
                    f"{key}.{name}",
                    f"invalid value {version!r}; use one of " + ", ".join(TLS_VERSIONS),
                )
                version = default
            versions[name] = version
        order = list(TLS_VERSIONS)
        if order.index(versions["min_version"]) > order.index(versions["max_version"]):
            self.problem(
                f"{key}.min_version",
                f"{versions['min_version']} is above max_version "
                f"{versions['max_version']}; lower min_version or raise max_version",
            )

        ciphers = self.string_list(section.get("cipher_suites"), f"{key}.cipher_suites")
        for name in ciphers:
            if name not in CIPHER_SUITES:
                hint = difflib.get_close_matches(name, CIPHER_SUITES, n=1)
                suggestion = f"did you mean {hint[0]!r}? " if hint else ""
                self.problem(
                    f"{key}.cipher_suites",
                    f"unknown or insecure cipher suite {name!r}; {suggestion}"
                    "use Go crypto/tls names such as "
                    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                )
        if section.get("curve_preferences") is not None:
            self.problem(
                f"{key}.curve_preferences",
                "not supported: Python's ssl module cannot set a list of key "
                "exchange groups; remove the key to use OpenSSL's defaults",
            )
        prefer_server = self.boolean(
            section.get("prefer_server_cipher_suites"),
            f"{key}.prefer_server_cipher_suites",
            True,
        )
        return TLSSettings(
            cert_file=cert_file,
            key_file=key_file,
            cert_pem=cert.encode() if cert is not None else None,
            key_pem=private_key.encode() if private_key is not None else None,
            client_ca_file=client_ca_file,
            client_ca_pem=client_ca.encode() if client_ca is not None else None,
            client_auth_type=auth_type
            if auth_type in CLIENT_AUTH_TYPES
            else "NoClientCert",
            client_allowed_sans=allowed_sans,
            min_version=versions["min_version"],
            max_version=versions["max_version"],
            cipher_suites=tuple(name for name in ciphers if name in CIPHER_SUITES),
            prefer_server_cipher_suites=prefer_server,
        )

    def http_settings(self, value: Any) -> dict[str, str]:
        key = "http_server_config"
        section = self.mapping(value, key, HTTP_KEYS)
        # HTTP/2 is never served; http2 is accepted so toolkit files load unchanged.
        self.boolean(section.get("http2"), f"{key}.http2", True)
        headers = self.mapping(
            section.get("headers"), f"{key}.headers", tuple(HEADER_VALUES)
        )
        result = {}
        for name, text in headers.items():
            if name not in HEADER_VALUES:
                continue
            where = f"{key}.headers.{name}"
            text = self.string(text, where)
            if text is None:
                continue
            accepted = HEADER_VALUES[name]
            if accepted is not None and text.lower() not in accepted:
                self.problem(
                    where,
                    f"invalid value {text!r}; use one of {', '.join(accepted)}",
                )
                continue
            if any(char in text for char in "\r\n\0"):
                self.problem(
                    where, "contains a line break; write the value on one line"
                )
                continue
            result[name] = text
        return result

    def basic_auth(self, value: Any) -> BasicAuth | None:
        key = "basic_auth_users"
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(
                key,
                f"must be a mapping of user to bcrypt hash, got {yamlfile.type_name(value)}",
            )
            return None
        users: dict[str, bytes] = {}
        for user, hashed in value.items():
            # Hash values are never echoed: with a weak password they are guessable.
            where = f"{key}.{user}"
            if not isinstance(user, str) or not user or ":" in user:
                self.problem(
                    f"{key}", "a user name must be a non-empty string without ':'"
                )
                continue
            if not isinstance(hashed, str):
                self.problem(
                    where, f"must be a bcrypt hash string, got {yamlfile.type_name(hashed)}"
                )
                continue
            match = _BCRYPT_HASH.match(hashed)
            if match is None:
                self.problem(where, f"not a bcrypt hash; {HASH_FIX}")
                continue
            if not 4 <= int(match.group(1)) <= 31:
                self.problem(where, f"bcrypt cost must be 4 to 31; {HASH_FIX}")
                continue
            users[user] = hashed.encode("ascii")
        if not users:
            # As in exporter-toolkit, an empty basic_auth_users turns authentication off.
            return None
        return BasicAuth(users)

    def rate_limit(self, value: Any) -> RateLimiter | None:
        key = "rate_limit"
        section = self.mapping(value, key, RATE_LIMIT_KEYS)
        if not section:
            return None
        interval_text = section.get("interval")
        burst = section.get("burst")
        interval = 0.0
        if interval_text is not None:
            try:
                interval = parse_duration(str(interval_text))
            except ValueError:
                self.problem(
                    f"{key}.interval",
                    f"invalid duration {interval_text!r}; use a Go duration such as "
                    "1s, 500ms or 0 to turn the limit off",
                )
                return None
        if interval <= 0:
            return None
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            self.problem(
                f"{key}.burst",
                f"must be a whole number of requests of at least 1, got {burst!r}",
            )
            return None
        return RateLimiter(interval, burst)
