"""Live license status probes against a simulated Dify API on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import free_port
from dify_api_simulator import Behavior, DifyApiSimulator, features, system_features
from dify_license_exporter.cli import main, status_json
from dify_license_exporter.collector import LicenseCollector
from dify_license_exporter.evaluate import evaluate
from dify_license_exporter.probe import (
    PROBE_ERROR_REASONS,
    Prober,
    ProbeResult,
    file_credentials,
    secret_credentials,
)
from dify_license_exporter.refresh import ERROR_REASONS, Refresher
from dify_license_exporter.registry import Instance, load_registry
from prometheus_client import CollectorRegistry, generate_latest

PROBED_AT = datetime(2026, 12, 4, tzinfo=UTC)
TOKEN = "console-token-5f3a9c"


def fixed_clock() -> float:
    return PROBED_AT.timestamp()


def instance(url: str, namespace: str = "dify") -> Instance:
    return Instance("prod-cn", namespace, "prod-main", "production", api_url=url)


@pytest.fixture
def simulator():
    with DifyApiSimulator() as running:
        yield running


def probe_one(
    simulator: DifyApiSimulator, behavior: Behavior, **options
) -> ProbeResult:
    simulator.set("a", behavior)
    prober = Prober(clock=fixed_clock, **{"timeout": 2.0, **options})
    return prober.probe(instance(simulator.url("a")))


# -- responses Dify sends -------------------------------------------------------------


def test_probe_active_with_workspaces(simulator):
    body = system_features(
        "active", "2027-01-01T00:00:00Z", {"enabled": True, "size": 3, "limit": 10}
    )
    result = probe_one(simulator, Behavior(body=body))
    assert result.success is True
    assert result.status == "active"
    assert result.expired_at == datetime(2027, 1, 1, tzinfo=UTC)
    assert result.workspaces_used == 3
    assert result.workspaces_allowed == 10
    assert result.seats_used is None
    assert result.error_reason is None
    assert result.probed_at == PROBED_AT
    assert simulator.requests[0].path == "/a/console/api/system-features"
    assert "Authorization" not in simulator.requests[0].headers


@pytest.mark.parametrize(
    "status", ["none", "inactive", "active", "expiring", "expired", "lost"]
)
def test_probe_reads_every_status(simulator, status):
    result = probe_one(simulator, Behavior(body=system_features(status)))
    assert result.success is True
    assert result.status == status
    assert result.expired_at is None


def test_probe_old_version_without_workspaces(simulator):
    body = {"license": {"status": "active", "expired_at": ""}}
    result = probe_one(simulator, Behavior(body=body))
    assert result.success is True
    assert result.workspaces_used is None
    assert result.workspaces_allowed is None


def test_probe_workspace_limit_not_enforced(simulator):
    disabled = {"enabled": False, "size": 0, "limit": 0}
    result = probe_one(simulator, Behavior(body=system_features(workspaces=disabled)))
    assert result.workspaces_used is None
    unlimited = {"enabled": True, "size": 4, "limit": 0}
    result = probe_one(simulator, Behavior(body=system_features(workspaces=unlimited)))
    assert result.workspaces_used == 4
    assert result.workspaces_allowed is None


def test_probe_date_only_expiry_in_registry_zone(simulator):
    from zoneinfo import ZoneInfo

    simulator.set("a", Behavior(body=system_features("active", "2026-12-31")))
    prober = Prober(timeout=2.0, clock=fixed_clock)
    result = prober.probe(instance(simulator.url("a")), ZoneInfo("Asia/Shanghai"))
    # The last valid day ends at 00:00 of 2027-01-01 in UTC+8.
    assert result.expired_at == datetime(2026, 12, 31, 16, tzinfo=UTC)


def test_probe_api_url_with_path_prefix(simulator):
    simulator.set("a", Behavior(body=system_features("expiring")))
    prober = Prober(timeout=2.0)
    result = prober.probe(instance(simulator.url("a") + "/"))
    assert result.status == "expiring"
    assert simulator.requests[-1].path == "/a/console/api/system-features"


# -- failures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behavior", "reason", "detail"),
    [
        (Behavior(mode="error", code=500), "http_error", "HTTP 500"),
        (Behavior(mode="error", code=502), "http_error", "HTTP 502"),
        (Behavior(mode="error", code=401), "unauthorized", "HTTP 401"),
        (Behavior(mode="error", code=403), "unauthorized", "HTTP 403"),
        (
            Behavior(mode="redirect", location="http://127.0.0.1:9/x"),
            "http_error",
            "302",
        ),
        (Behavior(mode="drop"), "connection_failed", "RemoteDisconnected"),
        (
            Behavior(mode="raw", raw=b"<html>gateway</html>"),
            "invalid_response",
            "not JSON",
        ),
        (Behavior(mode="raw", raw=b"\xff\xfe{"), "invalid_response", "not JSON"),
        (Behavior(body=[1, 2]), "invalid_response", "not a JSON object"),
        (Behavior(body={"sso": False}), "invalid_response", "`license` is missing"),
        (
            Behavior(body={"license": "active"}),
            "invalid_response",
            "`license` is missing",
        ),
        (
            Behavior(body={"license": {"status": "valid"}}),
            "invalid_response",
            'unknown license.status "valid"',
        ),
        (
            Behavior(body={"license": {}}),
            "invalid_response",
            "unknown license.status null",
        ),
        (
            Behavior(body={"license": {"status": "active", "expired_at": 5}}),
            "invalid_response",
            "expired_at is not a string",
        ),
        (
            Behavior(body=system_features("active", "next year")),
            "invalid_response",
            "'next year' is not a date",
        ),
        (
            Behavior(body=system_features(workspaces={"enabled": True, "size": "3"})),
            "invalid_response",
            "license.workspaces.size is not a non-negative integer",
        ),
        (
            Behavior(body=system_features(workspaces={"enabled": 1, "size": 3})),
            "invalid_response",
            "license.workspaces.enabled is not a boolean",
        ),
        (
            Behavior(body=system_features(workspaces={"enabled": True, "limit": -1})),
            "invalid_response",
            "license.workspaces.limit is not a non-negative integer",
        ),
        (
            Behavior(body=system_features(workspaces=[])),
            "invalid_response",
            "license.workspaces is not an object",
        ),
        (Behavior(mode="huge"), "invalid_response", "larger than 1048576 bytes"),
    ],
)
def test_probe_failure_reasons(simulator, behavior, reason, detail):
    result = probe_one(simulator, behavior)
    assert result.success is False
    assert result.status is None
    assert result.error_reason == reason
    assert reason in PROBE_ERROR_REASONS
    assert detail in (result.error_message or "")
    assert result.error_message.startswith("prod-cn/dify: GET http://127.0.0.1:")


def test_probe_does_not_follow_redirects(simulator):
    simulator.set("b", Behavior(body=system_features("active")))
    behavior = Behavior(mode="redirect", location=simulator.url("b") + "/console/api/x")
    result = probe_one(simulator, behavior)
    assert result.error_reason == "http_error"
    assert [request.path for request in simulator.requests] == [
        "/a/console/api/system-features"
    ]


def test_probe_connection_refused():
    port = free_port()
    prober = Prober(timeout=2.0)
    result = prober.probe(instance(f"http://127.0.0.1:{port}"))
    assert result.success is False
    assert result.error_reason == "connection_failed"
    assert "ConnectionRefusedError" in result.error_message


def test_probe_slow_answer_times_out(simulator):
    behavior = Behavior(body=system_features("active"), delay=3.0)
    started = time.monotonic()
    result = probe_one(simulator, behavior, timeout=0.5)
    elapsed = time.monotonic() - started
    assert result.error_reason == "timeout"
    assert "timed out after 0.5s" in result.error_message
    assert elapsed < 1.5


def test_probe_trickling_body_times_out(simulator):
    # Every byte arrives within the socket timeout, but the whole body does not
    # arrive within the probe's deadline.
    behavior = Behavior(mode="slow", body=system_features("active"), interval=0.05)
    started = time.monotonic()
    result = probe_one(simulator, behavior, timeout=0.6)
    elapsed = time.monotonic() - started
    assert result.error_reason == "timeout"
    assert elapsed < 1.2
    assert 0.5 < result.duration < 1.2


def test_probe_trickling_body_within_deadline(simulator):
    body = {"license": {"status": "lost"}}
    behavior = Behavior(mode="slow", body=body, interval=0.005)
    result = probe_one(simulator, behavior, timeout=3.0)
    assert result.success is True
    assert result.status == "lost"


# -- TLS ----------------------------------------------------------------------------


def test_probe_tls_with_ca_bundle():
    with DifyApiSimulator(tls=True) as simulator:
        simulator.set("a", Behavior(body=system_features("active")))
        trusted = Prober(timeout=2.0, ca_file=simulator.ca_file)
        result = trusted.probe(instance(simulator.url("a")))
        assert result.success is True
        assert result.status == "active"

        untrusted = Prober(timeout=2.0)
        result = untrusted.probe(instance(simulator.url("a")))
        assert result.success is False
        assert result.error_reason == "tls_error"
        assert "CERTIFICATE_VERIFY_FAILED" in result.error_message


def test_probe_plain_http_to_tls_server_fails():
    with DifyApiSimulator(tls=True) as simulator:
        simulator.set("a", Behavior(body=system_features("active")))
        prober = Prober(timeout=1.0)
        url = simulator.url("a").replace("https://", "http://")
        result = prober.probe(instance(url))
        assert result.success is False
        assert result.error_reason in ("connection_failed", "timeout")


def test_prober_rejects_bad_ca_file(tmp_path):
    path = tmp_path / "ca.pem"
    path.write_text("not a certificate\n")
    with pytest.raises(ValueError, match="cannot load the CA bundle"):
        Prober(ca_file=str(path))


# -- credentials and seats -----------------------------------------------------------


def test_probe_credentials_file_reads_seats(simulator, tmp_path, caplog):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    seats = {"enabled": True, "size": 41, "limit": 50}
    behavior = Behavior(
        body=system_features(
            "active", workspaces={"enabled": True, "size": 2, "limit": 5}
        ),
        features_body=features(workspace_members=seats),
        require_token=TOKEN,
    )
    simulator.set("a", behavior)
    prober = Prober(timeout=2.0, credentials=file_credentials(str(path)))
    with caplog.at_level(logging.DEBUG):
        results = prober.probe_all([instance(simulator.url("a"))])
    result = results[("prod-cn", "dify")]
    assert result.success is True
    assert result.seats_used == 41
    assert result.seats_allowed == 50
    assert result.workspaces_used == 2
    assert [request.path for request in simulator.requests] == [
        "/a/console/api/system-features",
        "/a/console/api/features",
    ]
    for request in simulator.requests:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in caplog.text


def test_probe_billing_members_as_seats(simulator, tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN)
    behavior = Behavior(
        body=system_features("active"),
        features_body=features(members={"size": 7, "limit": 0}, billing_enabled=True),
    )
    simulator.set("a", behavior)
    prober = Prober(timeout=2.0, credentials=file_credentials(str(path)))
    result = prober.probe(instance(simulator.url("a")), token=TOKEN)
    assert result.seats_used == 7
    assert result.seats_allowed is None


def test_probe_ignores_placeholder_members(simulator):
    behavior = Behavior(body=system_features("active"), features_body=features())
    simulator.set("a", behavior)
    result = Prober(timeout=2.0).probe(instance(simulator.url("a")), token=TOKEN)
    assert result.success is True
    assert result.seats_used is None


def test_probe_wrong_token_keeps_status(simulator):
    behavior = Behavior(
        body=system_features("expired"),
        features_body=features(),
        require_token=TOKEN,
    )
    simulator.set("a", behavior)
    result = Prober(timeout=2.0).probe(instance(simulator.url("a")), token="wrong")
    assert result.success is False
    assert result.error_reason == "unauthorized"
    assert result.status == "expired"
    assert "wrong" not in result.error_message


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (None, "cannot read the credentials file"),
        ("", "the credentials are empty"),
        ("two words", "contains spaces"),
        ("t\u00f6ken", "non-ASCII"),
    ],
)
def test_credentials_file_problems(simulator, tmp_path, content, detail):
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    simulator.set("a", Behavior(body=system_features("active")))
    prober = Prober(timeout=2.0, credentials=file_credentials(str(path)))
    results = prober.probe_all([instance(simulator.url("a"))])
    result = results[("prod-cn", "dify")]
    assert result.success is False
    assert result.error_reason == "credentials_unavailable"
    assert detail in result.error_message
    assert simulator.requests == []


class SecretHandler(BaseHTTPRequestHandler):
    """Kubernetes API stand-in that serves one Secret by name."""

    secret: dict | None = None
    paths: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - name fixed by the base class
        self.paths.append(self.path)
        if (
            self.path == "/api/v1/namespaces/monitoring/secrets/dify-token"
            and self.secret
        ):
            body = json.dumps(self.secret).encode()
            self.send_response(200)
        else:
            body = json.dumps(
                {"kind": "Status", "code": 404, "reason": "NotFound"}
            ).encode()
            self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def secret_server(tmp_path):
    handler = type("Handler", (SecretHandler,), {"secret": None, "paths": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "sim",
                        "cluster": {
                            "server": f"http://127.0.0.1:{server.server_address[1]}"
                        },
                    }
                ],
                "users": [{"name": "sim", "user": {}}],
                "contexts": [
                    {"name": "sim", "context": {"cluster": "sim", "user": "sim"}}
                ],
                "current-context": "sim",
            }
        )
    )
    yield handler, str(kubeconfig)
    server.shutdown()
    server.server_close()


def test_credentials_from_kubernetes_secret(simulator, secret_server):
    handler, kubeconfig = secret_server
    handler.secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "dify-token", "namespace": "monitoring"},
        "data": {"token": base64.b64encode(TOKEN.encode()).decode()},
    }
    seats = {"enabled": True, "size": 9, "limit": 10}
    simulator.set(
        "a",
        Behavior(
            body=system_features("active"),
            features_body=features(workspace_members=seats),
            require_token=TOKEN,
        ),
    )
    loader = secret_credentials("monitoring/dify-token", "token", kubeconfig, None)
    prober = Prober(timeout=2.0, credentials=loader)
    result = prober.probe_all([instance(simulator.url("a"))])[("prod-cn", "dify")]
    assert result.success is True
    assert result.seats_used == 9
    assert handler.paths == ["/api/v1/namespaces/monitoring/secrets/dify-token"]


def test_credentials_secret_malformed_kubeconfig(simulator, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("contexts: [{name: a, context: 5}]\ncurrent-context: a\n")
    simulator.set("a", Behavior(body=system_features("active")))
    loader = secret_credentials("monitoring/dify-token", "token", str(kubeconfig), None)
    prober = Prober(timeout=2.0, credentials=loader)
    result = prober.probe_all([instance(simulator.url("a"))])[("prod-cn", "dify")]
    assert result.error_reason == "credentials_unavailable"
    assert result.error_message.startswith(
        f"secret monitoring/dify-token key token: --kubeconfig {kubeconfig}: not a "
        "valid kubeconfig ("
    )


def test_credentials_secret_missing_or_without_key(simulator, secret_server):
    handler, kubeconfig = secret_server
    simulator.set("a", Behavior(body=system_features("active")))
    loader = secret_credentials("monitoring/dify-token", "token", kubeconfig, None)
    prober = Prober(timeout=2.0, credentials=loader)
    result = prober.probe_all([instance(simulator.url("a"))])[("prod-cn", "dify")]
    assert result.error_reason == "credentials_unavailable"
    assert "HTTP 404" in result.error_message

    handler.secret = {"metadata": {"name": "dify-token"}, "data": {"other": "eA=="}}
    result = prober.probe_all([instance(simulator.url("a"))])[("prod-cn", "dify")]
    assert result.error_reason == "credentials_unavailable"
    assert (
        "secret monitoring/dify-token key token: key not found" in result.error_message
    )


# -- concurrency ---------------------------------------------------------------------


def test_probe_all_bounded_concurrency(simulator):
    instances = []
    for index in range(6):
        name = f"i{index}"
        simulator.set(name, Behavior(body=system_features("active"), delay=0.4))
        instances.append(instance(simulator.url(name), namespace=name))
    prober = Prober(timeout=2.0, concurrency=3)
    started = time.monotonic()
    results = prober.probe_all(instances)
    elapsed = time.monotonic() - started
    assert len(results) == 6
    assert all(result.status == "active" for result in results.values())
    # Two rounds of three probes of 0.4 s each.
    assert 0.8 <= elapsed < 1.5


def test_probe_all_skips_instances_without_api_url(simulator):
    no_url = Instance("prod-cn", "other", "prod-main", "production")
    assert Prober().probe_all([no_url]) == {}
    assert simulator.requests == []


# -- evaluate, check and /metrics ----------------------------------------------------


def write_registry(tmp_path, url: str, expires: str = "2027-06-30") -> str:
    text = f"""\
timezone: UTC
licenses:
  - id: DIFY-ENT-SECRET-0001
    name: prod-main
    effective: 2026-01-01
    expires: {expires}
    mode: online
    bound_to: {{cluster: prod-cn, namespace: dify}}
  - id: DIFY-ENT-SECRET-0002
    name: prod-dr
    effective: 2026-01-01
    expires: 2027-06-30
    mode: offline
    bound_to: {{cluster: prod-cn, namespace: dify-unprobed}}
instances:
  - cluster: prod-cn
    namespace: dify
    license: prod-main
    environment: production
    owner: Jane Roe
    department: AI Platform
    api_url: {url}
  - cluster: prod-cn
    namespace: dify-unprobed
    license: prod-dr
    environment: production
    owner: Jane Roe
    department: AI Platform
renewals:
  - {{license: prod-main, requester: buy@example.com, activator: sre@example.com}}
  - {{license: prod-dr, requester: buy@example.com, activator: sre@example.com}}
"""
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    return str(path)


def live(
    status: str | None, expired_at: datetime | None = None, **extra
) -> ProbeResult:
    return ProbeResult(
        "prod-cn",
        "dify",
        probed_at=PROBED_AT,
        duration=0.01,
        success=status is not None,
        status=status,
        expired_at=expired_at,
        error_reason=None if status else "timeout",
        **extra,
    )


@pytest.mark.parametrize(
    ("probe", "mismatch"),
    [
        (live("active"), False),
        (live("expiring"), False),
        (live("none"), False),
        (live("expired"), True),
        (live("inactive"), True),
        (live("lost"), True),
        (live(None), False),
        (live("active", datetime(2027, 7, 1, tzinfo=UTC)), False),
        (live("active", datetime(2027, 7, 1, 23, tzinfo=UTC)), False),
        (live("active", datetime(2027, 7, 2, 0, 0, 1, tzinfo=UTC)), True),
        (live("active", datetime(2027, 6, 29, 23, 59, tzinfo=UTC)), True),
    ],
)
def test_evaluate_status_mismatch(tmp_path, probe, mismatch):
    registry = load_registry([write_registry(tmp_path, "http://127.0.0.1:1")])
    statuses = evaluate(registry, None, PROBED_AT, {("prod-cn", "dify"): probe})
    probed, unprobed = statuses
    assert ("status_mismatch" in probed.findings) is mismatch
    assert probed.severity == ("critical" if mismatch else "none")
    assert probed.status == probe.status
    assert unprobed.status is None
    assert unprobed.probe is None
    assert status_json(probed)["status"] == probe.status


def test_evaluate_expired_registry_and_expired_service_agree(tmp_path):
    path = write_registry(tmp_path, "http://127.0.0.1:1", expires="2026-11-30")
    registry = load_registry([path])
    probe = live("expired", datetime(2026, 12, 1, tzinfo=UTC))
    statuses = evaluate(registry, None, PROBED_AT, {("prod-cn", "dify"): probe})
    assert statuses[0].findings == ("expired",)


def test_evaluate_judges_validity_at_probe_time(tmp_path):
    # A what-if evaluation after the registry expiry does not call a live
    # "expired" from before that date a contradiction, nor the reverse.
    path = write_registry(tmp_path, "http://127.0.0.1:1", expires="2026-12-31")
    registry = load_registry([path])
    later = datetime(2027, 2, 1, tzinfo=UTC)
    statuses = evaluate(registry, None, later, {("prod-cn", "dify"): live("active")})
    assert statuses[0].findings == ("expired",)
    statuses = evaluate(registry, None, later, {("prod-cn", "dify"): live("expired")})
    assert statuses[0].findings == ("expired", "status_mismatch")


def test_check_json_carries_live_status(simulator, tmp_path, capsys):
    simulator.set("a", Behavior(body=system_features("expired", "2026-11-01")))
    path = write_registry(tmp_path, simulator.url("a"))
    code = main(
        ["check", "--registry", path, "--format", "json", "--probe.timeout", "2"]
    )
    document = json.loads(capsys.readouterr().out)
    probed, unprobed = document["instances"]
    assert code == 1
    assert probed["status"] == "expired"
    assert probed["findings"] == ["status_mismatch"]
    assert probed["severity"] == "critical"
    assert unprobed["status"] is None
    assert unprobed["findings"] == []


def test_check_probe_failure_is_a_warning(tmp_path, capsys):
    path = write_registry(tmp_path, f"http://127.0.0.1:{free_port()}")
    code = main(["check", "--registry", path, "--format", "json"])
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert code == 0
    assert document["instances"][0]["status"] is None
    assert (
        "warning: probe failed (connection_failed): prod-cn/dify: GET" in captured.err
    )


def test_check_no_probe(simulator, tmp_path, capsys):
    simulator.set("a", Behavior(body=system_features("expired")))
    path = write_registry(tmp_path, simulator.url("a"))
    code = main(["check", "--registry", path, "--format", "json", "--no-probe"])
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert document["instances"][0]["status"] is None
    assert simulator.requests == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--probe.timeout", "0"], "--probe.timeout: invalid value 0"),
        (["--probe.concurrency", "0"], "--probe.concurrency: invalid value 0"),
        (["--probe.ca-file", "/nonexistent/ca.pem"], "--probe.ca-file: /nonexistent"),
        (["--probe.credentials-secret", "no-slash"], "use NAMESPACE/NAME"),
        (
            ["--probe.credentials-secret", "a/b", "--probe.credentials-file", "f"],
            "exclude each other",
        ),
    ],
)
def test_check_rejects_bad_probe_flags(tmp_path, capsys, flags, message):
    path = write_registry(tmp_path, "http://127.0.0.1:1")
    code = main(["check", "--registry", path] + flags)
    assert code == 2
    assert message in capsys.readouterr().err


TIMEOUT_FIX = "use a number of seconds above 0 and at most 300"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("inf", "inf"),
        ("-inf", "-inf"),
        ("1e400", "inf"),
        ("nan", "nan"),
        ("-1", "-1"),
        ("0", "0"),
        ("300.5", "300.5"),
    ],
)
def test_check_rejects_probe_timeout(tmp_path, capsys, value, shown):
    path = write_registry(tmp_path, "http://127.0.0.1:1")
    code = main(["check", "--registry", path, f"--probe.timeout={value}"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"error: --probe.timeout: invalid value {shown}; {TIMEOUT_FIX}\n"


@pytest.mark.parametrize("value", ["0", "-3", "257", "100000"])
def test_check_rejects_probe_concurrency(tmp_path, capsys, value):
    path = write_registry(tmp_path, "http://127.0.0.1:1")
    code = main(["check", "--registry", path, f"--probe.concurrency={value}"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        f"error: --probe.concurrency: invalid value {value}; use a whole number "
        "from 1 to 256\n"
    )


def test_check_accepts_probe_limits(simulator, tmp_path, capsys):
    simulator.set("a", Behavior(body=system_features("active")))
    path = write_registry(tmp_path, simulator.url("a"))
    code = main(
        [
            "check",
            "--registry",
            path,
            "--format",
            "json",
            "--probe.timeout",
            "300",
            "--probe.concurrency",
            "256",
        ]
    )
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert document["instances"][0]["status"] == "active"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": float("inf")}, "invalid probe timeout inf"),
        ({"timeout": float("nan")}, "invalid probe timeout nan"),
        ({"timeout": 301.0}, "invalid probe timeout 301.0"),
        ({"concurrency": 257}, "invalid probe concurrency 257"),
    ],
)
def test_prober_rejects_out_of_range_settings(options, message):
    with pytest.raises(ValueError, match=message):
        Prober(**options)


def test_check_rejects_malformed_kubeconfig_for_secret(tmp_path, capsys):
    path = write_registry(tmp_path, "http://127.0.0.1:1")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("[1, 2]\n")
    code = main(
        [
            "check",
            "--registry",
            path,
            "--probe.credentials-secret",
            "monitoring/dify-token",
            "--kubeconfig",
            str(kubeconfig),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(
        f"error: --kubeconfig {kubeconfig}: the top level is a list, expected a "
        "mapping with clusters, contexts and users; "
    )


LABELS = (
    'cluster="prod-cn",environment="production",license="prod-main",namespace="dify"'
)


def scrape(refresher: Refresher) -> str:
    registry = CollectorRegistry()
    registry.register(LicenseCollector(refresher, clock=fixed_clock))
    return generate_latest(registry).decode()


def test_refresh_probes_and_metrics(simulator, tmp_path):
    path = write_registry(tmp_path, simulator.url("a"))
    body = system_features(
        "lost", "2027-06-30", {"enabled": True, "size": 19, "limit": 20}
    )
    simulator.set("a", Behavior(body=body))
    prober = Prober(timeout=2.0, clock=fixed_clock)
    refresher = Refresher([path], [], prober=prober)
    refresher.refresh()
    requests_after_refresh = len(simulator.requests)
    text = scrape(refresher)
    assert f'dify_license_status{{{LABELS},status="lost"}} 1.0' in text
    assert f'dify_license_status{{{LABELS},status="active"}} 0.0' in text
    assert text.count("dify_license_status{") == 6
    assert f"dify_license_probe_success{{{LABELS}}} 1.0" in text
    assert f"dify_license_workspaces_used{{{LABELS}}} 19.0" in text
    assert f"dify_license_workspaces_allowed{{{LABELS}}} 20.0" in text
    assert f"dify_license_live_expiry_timestamp_seconds{{{LABELS}}} 1.8144e+09" in text
    assert "dify_license_seats_used{" not in text
    assert "# TYPE dify_license_seats_used gauge" in text
    assert "# TYPE dify_license_probe_duration_seconds gauge" in text
    assert (
        'dify_license_finding{cluster="prod-cn",environment="production",'
        'finding="status_mismatch",license="prod-main",namespace="dify",'
        'severity="critical"} 1.0' in text
    )
    for reason in PROBE_ERROR_REASONS:
        line = (
            "dify_license_exporter_refresh_errors_total"
            f'{{reason="{reason}",source="probe"}} 0.0'
        )
        assert line in text
    # A scrape never probes.
    scrape(refresher)
    assert len(simulator.requests) == requests_after_refresh


def test_refresh_counts_probe_failures(simulator, tmp_path):
    path = write_registry(tmp_path, simulator.url("a"))
    simulator.set("a", Behavior(mode="raw", raw=b"not json"))
    refresher = Refresher([path], [], prober=Prober(timeout=2.0, clock=fixed_clock))
    refresher.refresh()
    refresher.refresh()
    assert refresher.health.errors_total[("probe", "invalid_response")] == 1
    assert refresher.health.active_errors == {("probe", "invalid_response"): 1}
    assert "probe" not in refresher.health.last_success
    text = scrape(refresher)
    assert f"dify_license_probe_success{{{LABELS}}} 0.0" in text
    assert "dify_license_status{" not in text
    assert 'finding="status_mismatch"' not in text

    simulator.set("a", Behavior(body=system_features("active", "2027-06-30")))
    refresher.refresh()
    assert refresher.health.active_errors == {}
    assert refresher.health.last_success["probe"] > 0
    text = scrape(refresher)
    assert f'dify_license_status{{{LABELS},status="active"}} 1.0' in text


def test_refresh_error_reasons_include_probe():
    assert ERROR_REASONS["probe"] == PROBE_ERROR_REASONS


def test_docs_list_every_probe_reason():
    docs = os.path.join(os.path.dirname(__file__), "..", "docs", "metrics.md")
    with open(docs, encoding="utf-8") as handle:
        text = handle.read()
    for reason in PROBE_ERROR_REASONS:
        assert f"| probe | `{reason}` |" in text
