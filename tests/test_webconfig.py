"""Web configuration: TLS handshakes, mTLS, rotation, basic auth and validation.

Certificates are generated here with cryptography; every server listens on
127.0.0.1 with a port picked by the kernel.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import ipaddress
import logging
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest
import yaml
from conftest import REPO, free_port
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from dify_license_exporter import webconfig
from dify_license_exporter.cli import main
from dify_license_exporter.server import ExporterServer
from dify_license_exporter.webconfig import WebConfigError, load_web_config
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

PROMETHEUS = shutil.which("prometheus")
PASSWORD = "correct horse battery staple"
# Cost 4 keeps the tests fast; the cost does not change the checks under test.
PASSWORD_HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
NOT_AFTER = datetime.datetime(2031, 5, 17, 12, 0, tzinfo=datetime.UTC)


@dataclass
class Pair:
    """A certificate and its key, as PEM files."""

    cert: str
    key: str
    certificate: x509.Certificate


class Authority:
    """A throwaway CA that issues server and client certificates."""

    def __init__(self, folder: Path, name: str):
        self.folder = folder
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(
                x509.BasicConstraints(ca=True, path_length=None), critical=True
            )
            .sign(self.key, hashes.SHA256())
        )
        self.cert = os.fspath(folder / f"{name}-ca.pem")
        Path(self.cert).write_bytes(
            self.certificate.public_bytes(serialization.Encoding.PEM)
        )

    def issue(
        self,
        file_name: str,
        sans: list[x509.GeneralName],
        not_after: datetime.datetime = NOT_AFTER,
    ) -> Pair:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, file_name)])
            )
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_path = self.folder / f"{file_name}.crt"
        key_path = self.folder / f"{file_name}.key"
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return Pair(os.fspath(cert_path), os.fspath(key_path), certificate)


LOOPBACK_SAN = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]


@pytest.fixture
def pki(tmp_path):
    """A server CA with a server certificate, and two client CAs."""
    folder = tmp_path / "pki"
    folder.mkdir()
    server_ca = Authority(folder, "server")
    client_ca = Authority(folder, "client")
    other_ca = Authority(folder, "other")
    return {
        "server_ca": server_ca,
        "server": server_ca.issue("server", LOOPBACK_SAN),
        "client_ca": client_ca,
        "client": client_ca.issue("client", [x509.DNSName("scraper.example")]),
        "intruder": other_ca.issue("intruder", [x509.DNSName("scraper.example")]),
    }


@pytest.fixture
def web_server(tmp_path):
    """Start an ExporterServer with a web configuration; stop it afterwards."""
    started: list[ExporterServer] = []

    def start(config: dict | str) -> ExporterServer:
        path = tmp_path / "web.yml"
        text = config if isinstance(config, str) else yaml.safe_dump(config)
        path.write_text(text, encoding="utf-8")
        web = load_web_config(os.fspath(path))
        server = ExporterServer(
            ("127.0.0.1", 0), CollectorRegistry(), "/metrics", lambda: True
        )
        web.apply(server)
        server.web = web
        # A short poll interval keeps shutdown, and so each test, fast.
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def client_context(
    pki, client: Pair | None = None, maximum: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki["server_ca"].cert)
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    if maximum is not None:
        context.maximum_version = maximum
    return context


def request(
    server: ExporterServer,
    path: str = "/metrics",
    context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], str, bytes | None]:
    """GET `path`; return status, headers, body and the server certificate (DER)."""
    port = server.server_address[1]
    if context is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        connection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=10, context=context
        )
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        body = response.read().decode()
        peer = None
        if context is not None:
            peer = connection.sock.getpeercert(binary_form=True)
        return response.status, dict(response.getheaders()), body, peer
    finally:
        connection.close()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def tls_config(pki, **extra) -> dict:
    return {
        "tls_server_config": {
            "cert_file": pki["server"].cert,
            "key_file": pki["server"].key,
            **extra,
        }
    }


def der(pair: Pair) -> bytes:
    return pair.certificate.public_bytes(serialization.Encoding.DER)


def sample(body: str, name: str) -> float | None:
    """Return the value of the unlabelled sample `name` in an exposition text."""
    for family in text_string_to_metric_families(body):
        for item in family.samples:
            if item.name == name and not item.labels:
                return item.value
    return None


EXPIRY = "dify_license_exporter_tls_certificate_expiry_timestamp_seconds"


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


# TLS


def test_tls_handshake_serves_metrics(web_server, pki):
    server = web_server(tls_config(pki))
    status, _, body, peer = request(server, context=client_context(pki))
    assert status == 200
    assert peer == der(pki["server"])
    assert sample(body, EXPIRY) == NOT_AFTER.timestamp()


def test_plain_http_on_tls_port_fails(web_server, pki):
    server = web_server(tls_config(pki))
    with pytest.raises((http.client.BadStatusLine, ConnectionError)):
        request(server)
    wait_for(lambda: server.web.tls.handshake_errors == 1)


def test_min_version_rejects_older_client(web_server, pki):
    server = web_server(tls_config(pki, min_version="TLS13"))
    with pytest.raises(ssl.SSLError) as error:
        request(server, context=client_context(pki, maximum=ssl.TLSVersion.TLSv1_2))
    assert error.value.reason in (
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "UNSUPPORTED_PROTOCOL",
    )
    wait_for(lambda: server.web.tls.handshake_errors == 1)
    status, _, _, _ = request(server, context=client_context(pki))
    assert status == 200


def test_max_version_caps_the_protocol(web_server, pki):
    server = web_server(tls_config(pki, max_version="TLS12"))
    port = server.server_address[1]
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, timeout=10, context=client_context(pki)
    )
    connection.request("GET", "/healthz")
    assert connection.getresponse().status == 200
    assert connection.sock.version() == "TLSv1.2"
    connection.close()


def test_mtls_accepts_client_of_trusted_ca(web_server, pki):
    server = web_server(
        tls_config(
            pki,
            client_auth_type="RequireAndVerifyClientCert",
            client_ca_file=pki["client_ca"].cert,
        )
    )
    status, _, body, _ = request(server, context=client_context(pki, pki["client"]))
    assert status == 200
    assert sample(body, "dify_license_exporter_tls_handshake_errors_total") == 0.0


def test_mtls_rejects_client_without_certificate(web_server, pki):
    server = web_server(
        tls_config(
            pki,
            client_auth_type="RequireAndVerifyClientCert",
            client_ca_file=pki["client_ca"].cert,
        )
    )
    with pytest.raises((ssl.SSLError, ConnectionError)):
        request(server, context=client_context(pki))
    wait_for(lambda: server.web.tls.handshake_errors == 1)


def test_mtls_rejects_client_of_other_ca(web_server, pki):
    server = web_server(
        tls_config(
            pki,
            client_auth_type="RequireAndVerifyClientCert",
            client_ca_file=pki["client_ca"].cert,
        )
    )
    with pytest.raises((ssl.SSLError, ConnectionError)):
        request(server, context=client_context(pki, pki["intruder"]))
    wait_for(lambda: server.web.tls.handshake_errors == 1)


def test_verify_if_given_allows_no_certificate(web_server, pki):
    server = web_server(
        tls_config(
            pki,
            client_auth_type="VerifyClientCertIfGiven",
            client_ca_file=pki["client_ca"].cert,
        )
    )
    assert request(server, context=client_context(pki))[0] == 200
    with pytest.raises((ssl.SSLError, ConnectionError)):
        request(server, context=client_context(pki, pki["intruder"]))


def test_client_allowed_sans(web_server, pki):
    other_client = pki["client_ca"].issue("robot", [x509.DNSName("robot.example")])
    server = web_server(
        tls_config(
            pki,
            client_auth_type="RequireAndVerifyClientCert",
            client_ca_file=pki["client_ca"].cert,
            client_allowed_sans=["scraper.example"],
        )
    )
    assert request(server, context=client_context(pki, pki["client"]))[0] == 200
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError)):
        request(server, context=client_context(pki, other_client))
    wait_for(lambda: server.web.tls.handshake_errors == 1)


def test_cipher_suites_limit_tls12(web_server, pki):
    server = web_server(
        tls_config(
            pki,
            max_version="TLS12",
            cipher_suites=["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"],
        )
    )
    port = server.server_address[1]
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, timeout=10, context=client_context(pki)
    )
    connection.request("GET", "/healthz")
    assert connection.getresponse().status == 200
    assert connection.sock.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"
    connection.close()


def test_inline_certificate_and_key(web_server, pki):
    server = web_server(
        {
            "tls_server_config": {
                "cert": Path(pki["server"].cert).read_text(),
                "key": Path(pki["server"].key).read_text(),
            }
        }
    )
    status, _, _, peer = request(server, "/healthz", context=client_context(pki))
    assert status == 200
    assert peer == der(pki["server"])


def test_relative_paths_resolve_from_config_folder(tmp_path, pki):
    path = tmp_path / "pki" / "web.yml"
    path.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
    )
    config = load_web_config(os.fspath(path))
    assert config.tls.settings.cert_file == pki["server"].cert
    assert config.tls.settings.key_file == pki["server"].key


# Certificate rotation


def replace_pair(target: Pair, source: Pair) -> None:
    """Swap the files in place, as a Secret volume update does."""
    for source_path, target_path in (
        (source.cert, target.cert),
        (source.key, target.key),
    ):
        staged = target_path + ".new"
        shutil.copyfile(source_path, staged)
        os.replace(staged, target_path)


def test_rotated_certificate_used_without_restart(web_server, pki):
    server = web_server(tls_config(pki))
    first = request(server, context=client_context(pki))
    assert first[3] == der(pki["server"])

    later = datetime.datetime(2032, 1, 31, tzinfo=datetime.UTC)
    rotated = pki["server_ca"].issue("rotated", LOOPBACK_SAN, not_after=later)
    replace_pair(pki["server"], rotated)
    status, _, body, peer = request(server, context=client_context(pki))
    assert status == 200
    assert peer == der(rotated)
    assert sample(body, EXPIRY) == later.timestamp()
    assert sample(body, "dify_license_exporter_tls_reload_errors_total") == 0.0
    assert sample(body, "dify_license_exporter_tls_reload_failing") == 0.0


def test_broken_rotation_keeps_previous_certificate(web_server, pki, caplog):
    server = web_server(tls_config(pki))
    other = pki["server_ca"].issue("other", LOOPBACK_SAN)
    # A certificate whose key has not arrived yet.
    shutil.copyfile(other.cert, pki["server"].cert + ".new")
    os.replace(pki["server"].cert + ".new", pki["server"].cert)
    with caplog.at_level(logging.ERROR, logger="dify_license_exporter.webconfig"):
        status, _, body, peer = request(server, context=client_context(pki))
    assert status == 200
    assert peer == der(pki["server"])
    assert sample(body, "dify_license_exporter_tls_reload_errors_total") == 1.0
    assert sample(body, "dify_license_exporter_tls_reload_failing") == 1.0
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert (
        errors[0].getMessage() == "TLS reload failed, serving the previous certificate"
    )
    assert errors[0].error == (
        f"tls_server_config.key_file {pki['server'].key}: the private key does not "
        f"match the certificate in tls_server_config.cert_file {pki['server'].cert}; "
        "give the key the certificate was issued for"
    )

    # The matching key arrives: the next connection uses the new pair.
    shutil.copyfile(other.key, pki["server"].key + ".new")
    os.replace(pki["server"].key + ".new", pki["server"].key)
    _, _, body, peer = request(server, context=client_context(pki))
    assert peer == der(other)
    assert sample(body, "dify_license_exporter_tls_reload_failing") == 0.0


# Basic auth


def auth_config(**users: str) -> dict:
    return {"basic_auth_users": users or {"prometheus": PASSWORD_HASH}}


def test_basic_auth_accepts_right_password(web_server):
    server = web_server(auth_config())
    status, _, body, _ = request(server, headers=basic("prometheus", PASSWORD))
    assert status == 200
    assert sample(body, "dify_license_exporter_http_auth_failures_total") == 0.0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("prometheus", "wrong password"),
        basic("someone", PASSWORD),
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        basic("prometheus", "x" * 100),
    ],
    ids=["none", "wrong", "unknown-user", "bearer", "bad-base64", "no-colon", "long"],
)
def test_basic_auth_rejects(web_server, headers):
    server = web_server(auth_config())
    status, response_headers, body, _ = request(server, headers=headers)
    assert status == 401
    assert response_headers["WWW-Authenticate"] == 'Basic realm="dify-license-exporter"'
    assert body == "unauthorized\n"
    assert server.web.auth.failures == 1


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/", "/metrics"])
def test_every_path_needs_auth(web_server, path):
    server = web_server(auth_config())
    assert request(server, path)[0] == 401
    assert request(server, path, headers=basic("prometheus", PASSWORD))[0] == 200


def test_successful_check_is_cached(web_server, monkeypatch):
    calls = []
    original = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return original(password, hashed)

    monkeypatch.setattr(webconfig.bcrypt, "checkpw", counting_checkpw)
    server = web_server(auth_config())
    for _ in range(3):
        assert request(server, headers=basic("prometheus", PASSWORD))[0] == 200
    assert len(calls) == 1
    # A wrong password is never served from the cache of the right one.
    assert request(server, headers=basic("prometheus", "guess"))[0] == 401
    assert request(server, headers=basic("prometheus", "guess"))[0] == 401
    assert len(calls) == 3


def test_basic_auth_over_mtls(web_server, pki):
    config = tls_config(
        pki,
        client_auth_type="RequireAndVerifyClientCert",
        client_ca_file=pki["client_ca"].cert,
    )
    config.update(auth_config())
    server = web_server(config)
    context = client_context(pki, pki["client"])
    assert request(server, context=context)[0] == 401
    assert (
        request(server, context=context, headers=basic("prometheus", PASSWORD))[0]
        == 200
    )


def test_empty_basic_auth_users_needs_no_auth(web_server):
    server = web_server({"basic_auth_users": {}})
    assert request(server)[0] == 200


# Headers and rate limit


def test_configured_headers_on_every_response(web_server):
    server = web_server(
        {
            "http_server_config": {
                "http2": False,
                "headers": {
                    "X-Frame-Options": "deny",
                    "X-Content-Type-Options": "nosniff",
                    "Content-Security-Policy": "default-src 'none'",
                },
            }
        }
    )
    for path in ("/metrics", "/missing"):
        _, headers, _, _ = request(server, path)
        assert headers["X-Frame-Options"] == "deny"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Content-Security-Policy"] == "default-src 'none'"


def test_rate_limit_answers_429(web_server):
    server = web_server({"rate_limit": {"interval": "1h", "burst": 2}})
    assert request(server, "/healthz")[0] == 200
    assert request(server, "/healthz")[0] == 200
    status, _, body, _ = request(server, "/healthz")
    assert status == 429
    assert body == "too many requests\n"
    assert server.web.rate_limiter.rejected == 1


def test_rate_limiter_refills():
    now = [0.0]
    limiter = webconfig.RateLimiter(0.5, 1, clock=lambda: now[0])
    assert limiter.allow() is True
    assert limiter.allow() is False
    now[0] = 0.5
    assert limiter.allow() is True


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("1s", 1.0), ("500ms", 0.5), ("1m30s", 90.0), ("1.5h", 5400.0)],
)
def test_parse_duration(text, seconds):
    assert webconfig.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "s", "1x", "1s2", "-1s"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        webconfig.parse_duration(text)


# Validation at start


def load_error(tmp_path, text: str) -> str:
    path = tmp_path / "web.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(WebConfigError) as error:
        load_web_config(os.fspath(path))
    return str(error.value)


def test_unknown_key_names_file_key_and_fix(tmp_path):
    path = tmp_path / "web.yml"
    message = load_error(
        tmp_path, "tls_server_config:\n  cert_fil: a.crt\n  key_file: a.key\n"
    )
    assert message == (
        "invalid web configuration (2 problems):\n"
        f"  {path}: tls_server_config.cert_fil: unknown key; did you mean "
        "'cert_file'? allowed keys: " + ", ".join(webconfig.TLS_KEYS) + "\n"
        f"  {path}: tls_server_config.cert_file: required key is missing; give the "
        "server certificate file (or the PEM inline as cert)"
    )


def test_unknown_top_level_key(tmp_path):
    message = load_error(tmp_path, "basic_auth_user:\n  alice: x\n")
    assert message == (
        f"{tmp_path / 'web.yml'}: basic_auth_user: unknown key; did you mean "
        "'basic_auth_users'? allowed keys: tls_server_config, http_server_config, "
        "basic_auth_users, rate_limit"
    )


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (
            {"min_version": "TLS14"},
            "tls_server_config.min_version: invalid value 'TLS14'; use one of "
            "TLS10, TLS11, TLS12, TLS13",
        ),
        (
            {"min_version": "TLS13", "max_version": "TLS12"},
            "tls_server_config.min_version: TLS13 is above max_version TLS12; lower "
            "min_version or raise max_version",
        ),
        (
            {"client_auth_type": "RequireAnyClientCert"},
            "tls_server_config.client_auth_type: RequireAnyClientCert is not "
            "supported: Python's ssl module verifies every client certificate it "
            "requests; use RequireAndVerifyClientCert (or VerifyClientCertIfGiven) "
            "with client_ca_file",
        ),
        (
            {"client_auth_type": "RequireAndVerifyClientCert"},
            "tls_server_config.client_ca_file: required with client_auth_type "
            "RequireAndVerifyClientCert; give the CA that issues client certificates",
        ),
        (
            {"client_auth_type": "Always"},
            "tls_server_config.client_auth_type: invalid value 'Always'; use one of "
            "NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert",
        ),
        (
            {"curve_preferences": ["X25519"]},
            "tls_server_config.curve_preferences: not supported: Python's ssl module "
            "cannot set a list of key exchange groups; remove the key to use "
            "OpenSSL's defaults",
        ),
        (
            {"cipher_suites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA265"]},
            "tls_server_config.cipher_suites: unknown or insecure cipher suite "
            "'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA265'; did you mean "
            "'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256'? use Go crypto/tls names such as "
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ),
        (
            {"prefer_server_cipher_suites": "yes"},
            "tls_server_config.prefer_server_cipher_suites: must be true or false, "
            "got string",
        ),
    ],
    ids=[
        "min-version",
        "min-above-max",
        "unsupported-auth-type",
        "missing-ca",
        "bad-auth-type",
        "curves",
        "cipher",
        "bool",
    ],
)
def test_tls_value_errors(tmp_path, pki, extra, problem):
    message = load_error(tmp_path, yaml.safe_dump(tls_config(pki, **extra)))
    assert message == f"{tmp_path / 'web.yml'}: {problem}"


def test_client_ca_without_auth_type(tmp_path, pki):
    message = load_error(
        tmp_path, yaml.safe_dump(tls_config(pki, client_ca_file=pki["client_ca"].cert))
    )
    assert message == (
        f"{tmp_path / 'web.yml'}: tls_server_config.client_ca_file: a client CA is "
        "set but client_auth_type is NoClientCert; set client_auth_type: "
        "RequireAndVerifyClientCert or remove the CA"
    )


def test_key_not_matching_certificate(tmp_path, pki):
    config = tls_config(pki)
    config["tls_server_config"]["key_file"] = pki["client"].key
    message = load_error(tmp_path, yaml.safe_dump(config))
    assert message == (
        f"{tmp_path / 'web.yml'}: tls_server_config.key_file {pki['client'].key}: "
        "the private key does not match the certificate in "
        f"tls_server_config.cert_file {pki['server'].cert}; give the key the "
        "certificate was issued for"
    )


def test_missing_certificate_file(tmp_path, pki):
    config = tls_config(pki)
    missing = os.fspath(tmp_path / "missing.crt")
    config["tls_server_config"]["cert_file"] = missing
    message = load_error(tmp_path, yaml.safe_dump(config))
    assert message == (
        f"{tmp_path / 'web.yml'}: tls_server_config.cert_file {missing}: cannot read "
        "the file: No such file or directory; check the path and permissions"
    )


def test_certificate_file_without_pem(tmp_path, pki):
    config = tls_config(pki)
    config["tls_server_config"]["cert_file"] = pki["server"].key
    message = load_error(tmp_path, yaml.safe_dump(config))
    assert message == (
        f"{tmp_path / 'web.yml'}: tls_server_config.cert_file {pki['server'].key}: "
        "no PEM certificate found; give the server certificate (and its chain) in PEM"
    )


def test_bad_bcrypt_hash_is_not_echoed(tmp_path):
    secret_looking = "$2y$10$not-a-real-hash-SECRET-VALUE"
    message = load_error(
        tmp_path, yaml.safe_dump({"basic_auth_users": {"alice": secret_looking}})
    )
    assert message == (
        f"{tmp_path / 'web.yml'}: basic_auth_users.alice: not a bcrypt hash; "
        + webconfig.HASH_FIX
    )
    assert "SECRET-VALUE" not in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
            "http_server_config.headers.X-Frame-Options: invalid value 'allow'; use "
            "one of deny, sameorigin",
        ),
        (
            "http_server_config:\n  headers:\n    Server: x\n",
            "http_server_config.headers.Server: unknown key; allowed keys: "
            "Content-Security-Policy, X-Frame-Options, X-Content-Type-Options, "
            "X-XSS-Protection, Strict-Transport-Security",
        ),
        (
            "rate_limit:\n  interval: 1 second\n  burst: 5\n",
            "rate_limit.interval: invalid duration '1 second'; use a Go duration "
            "such as 1s, 500ms or 0 to turn the limit off",
        ),
        (
            "rate_limit:\n  interval: 1s\n",
            "rate_limit.burst: must be a whole number of requests of at least 1, "
            "got None",
        ),
        (
            "basic_auth_users: [alice]\n",
            "basic_auth_users: must be a mapping of user to bcrypt hash, got list",
        ),
        (
            f"tls_server_config: {{}}\nbasic_auth_users:\n  a: '{PASSWORD_HASH}'\n"
            f"  a: '{PASSWORD_HASH}'\n",
            "basic_auth_users.a: duplicate key 'a' at line 4; keep only one",
        ),
    ],
    ids=["header-value", "header-name", "duration", "burst", "users-type", "duplicate"],
)
def test_other_value_errors(tmp_path, text, problem):
    assert load_error(tmp_path, text) == f"{tmp_path / 'web.yml'}: {problem}"


def test_serve_exits_2_on_bad_web_config(tmp_path, capsys, pki):
    registry = tmp_path / "registry.yaml"
    registry.write_text("licenses: []\n")
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump(tls_config(pki, min_version="TLS9")))
    code = main(
        [
            "serve",
            "--registry",
            os.fspath(registry),
            "--web.listen-address",
            f"127.0.0.1:{free_port()}",
            "--web.config.file",
            os.fspath(web),
        ]
    )
    assert code == 2
    assert capsys.readouterr().err == (
        f"error: {web}: tls_server_config.min_version: invalid value 'TLS9'; use one "
        "of TLS10, TLS11, TLS12, TLS13\n"
    )


def test_serve_exits_2_on_missing_web_config(tmp_path, capsys):
    registry = tmp_path / "registry.yaml"
    registry.write_text("licenses: []\n")
    missing = tmp_path / "web.yml"
    code = main(
        [
            "serve",
            "--registry",
            os.fspath(registry),
            "--web.config.file",
            os.fspath(missing),
        ]
    )
    assert code == 2
    assert capsys.readouterr().err == (
        f"error: {missing}: file not found; check the --web.config.file path\n"
    )


# End to end: a real Prometheus scrapes the exporter over mTLS with basic auth


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed")
def test_prometheus_scrapes_over_mtls_with_basic_auth(tmp_path, pki):
    registry = tmp_path / "registry.yaml"
    registry.write_text("licenses: []\n")
    web = tmp_path / "web.yml"
    config = tls_config(
        pki,
        client_auth_type="RequireAndVerifyClientCert",
        client_ca_file=pki["client_ca"].cert,
    )
    config.update(auth_config())
    web.write_text(yaml.safe_dump(config))
    exporter_port = free_port()
    exporter = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dify_license_exporter",
            "serve",
            "--registry",
            os.fspath(registry),
            "--web.listen-address",
            f"127.0.0.1:{exporter_port}",
            "--web.config.file",
            os.fspath(web),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD)
    prometheus_config = {
        "global": {"scrape_interval": "500ms"},
        "scrape_configs": [
            {
                "job_name": "dify-license-exporter",
                "scheme": "https",
                "tls_config": {
                    "ca_file": pki["server_ca"].cert,
                    "cert_file": pki["client"].cert,
                    "key_file": pki["client"].key,
                },
                "basic_auth": {
                    "username": "prometheus",
                    "password_file": os.fspath(password_file),
                },
                "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
            }
        ],
    }
    prometheus_file = tmp_path / "prometheus.yml"
    prometheus_file.write_text(yaml.safe_dump(prometheus_config))
    prometheus_port = free_port()
    prometheus = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={prometheus_file}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    query = (
        f"http://127.0.0.1:{prometheus_port}/api/v1/query?query="
        "dify_license_exporter_tls_certificate_expiry_timestamp_seconds"
    )
    try:
        import json
        import urllib.request

        result = []
        deadline = time.monotonic() + 30
        while not result and time.monotonic() < deadline:
            assert exporter.poll() is None, exporter.stderr.read().decode()
            try:
                with urllib.request.urlopen(query, timeout=2) as response:
                    result = json.load(response)["data"]["result"]
            except OSError:
                pass
            time.sleep(0.2)
        assert len(result) == 1
        assert float(result[0]["value"][1]) == NOT_AFTER.timestamp()
    finally:
        for process in (prometheus, exporter):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        exporter.stderr.close()
