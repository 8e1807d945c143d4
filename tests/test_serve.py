"""serve as a subprocess: real HTTP scrapes, promtool, reloads and shutdown."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import EXAMPLES, REPO, free_port

sys.path.insert(0, os.fspath(EXAMPLES))
import generate_registry  # noqa: E402

PROMTOOL = shutil.which("promtool")
REFRESH = "0.3"
# Names fixed by the design that promtool's linter would rather see in seconds.
ACCEPTED_LINT = {
    'dify_license_days_to_expiry use base unit "seconds" instead of "days"',
    'dify_license_notice_threshold_days use base unit "seconds" instead of "days"',
}


class Exporter:
    """A `serve` subprocess on a free loopback port."""

    def __init__(self, args: list[str], tmp_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"exporter-{self.port}.log"
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dify_license_exporter",
                "serve",
                "--web.listen-address",
                f"127.0.0.1:{self.port}",
                "--refresh-interval",
                REFRESH,
                *args,
            ],
            cwd=REPO,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"exporter exited: {self.logs()}")
            try:
                if self.get("/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"exporter not ready: {self.logs()}")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metrics(self) -> str:
        status, body = self.get("/metrics")
        assert status == 200
        return body

    def samples(self) -> dict[tuple[str, frozenset], float]:
        result = {}
        for family in text_string_to_metric_families(self.metrics()):
            for sample in family.samples:
                result[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return result

    def logs(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


@pytest.fixture
def start(tmp_path):
    started: list[Exporter] = []

    def run(*args: str) -> Exporter:
        exporter = Exporter(list(args), tmp_path)
        started.append(exporter)
        exporter.wait_ready()
        return exporter

    yield run
    for exporter in started:
        exporter.stop()


@pytest.fixture
def registry_file(tmp_path) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(generate_registry.render(date.today()), encoding="utf-8")
    return path


def value(samples, name: str, **labels: str) -> float | None:
    """Return the sample's value, or None when the series is absent."""
    return samples.get((name, frozenset(labels.items())))


def wait_for(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def test_metrics_pass_promtool(start, registry_file):
    exporter = start("--registry", str(registry_file), "--values-dir", str(EXAMPLES / "values"))
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"],
        input=exporter.metrics(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    lint = {line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip()}
    # Exit code 3 means lint findings only; 1 would be a parse error.
    assert result.returncode in (0, 3)
    assert lint <= ACCEPTED_LINT


def test_metrics_values_on_example(start, registry_file):
    exporter = start("--registry", str(registry_file), "--values-dir", str(EXAMPLES / "values"))
    samples = exporter.samples()
    prod = dict(cluster="prod-cn", namespace="dify", license="prod-main", environment="production")
    assert 20.0 < value(samples, "dify_license_days_to_expiry", **prod) <= 21 + 16 / 24
    assert value(samples, "dify_license_mode", **prod, mode="online") == 1.0
    assert value(samples, "dify_license_mode", **prod, mode="offline") == 0.0
    assert value(samples, "dify_license_instances", license="test-shared") == 2.0
    assert value(
        samples,
        "dify_license_info",
        **prod,
        owner="Jane Roe <jane.roe@example.com>",
        department="AI Platform",
        requester="procurement@example.com",
        activator="sre-oncall@example.com",
        bound_cluster="prod-cn",
        bound_namespace="dify",
        priority="high",
    ) == 1.0
    sandbox = dict(
        cluster="test-sg", namespace="dify-sandbox", license="dev-sandbox", environment="development"
    )
    assert value(samples, "dify_license_binding_mismatch", **sandbox) == 1.0
    assert value(samples, "dify_license_mode_mismatch", **sandbox) == 1.0
    assert value(samples, "dify_license_registry_missing_fields", **sandbox) == 1.0
    assert value(
        samples, "dify_license_notice_threshold_days", **sandbox, threshold="14", severity="warning"
    ) == 14.0
    poc = dict(cluster="test-sg", namespace="dify-poc", license="", environment="")
    assert value(samples, "dify_license_finding", **poc, finding="unregistered", severity="warning") == 1.0
    assert value(samples, "dify_license_exporter_build_info", version="0.1.0") == 1.0
    assert value(samples, "dify_license_exporter_registry_valid") == 1.0
    assert not any("DIFY-ENT-EXAMPLE" in str(key) for key in samples)


def test_every_design_family_has_help_and_type(start, write_file):
    empty = write_file("empty.yaml", "licenses: []\n")
    exporter = start("--registry", empty)
    body = exporter.metrics()
    for name, kind in [
        ("dify_license_expiry_timestamp_seconds", "gauge"),
        ("dify_license_effective_timestamp_seconds", "gauge"),
        ("dify_license_days_to_expiry", "gauge"),
        ("dify_license_mode", "gauge"),
        ("dify_license_info", "gauge"),
        ("dify_license_restart_pending", "gauge"),
        ("dify_license_binding_mismatch", "gauge"),
        ("dify_license_mode_mismatch", "gauge"),
        ("dify_license_instances", "gauge"),
        ("dify_license_registry_missing_fields", "gauge"),
        ("dify_license_exporter_refresh_errors_total", "counter"),
        ("dify_license_exporter_last_refresh_success_timestamp_seconds", "gauge"),
        ("dify_license_exporter_build_info", "gauge"),
    ]:
        assert f"# TYPE {name} {kind}\n" in body
        assert f"# HELP {name} " in body


def test_health_endpoints(start, registry_file):
    exporter = start("--registry", str(registry_file))
    assert exporter.get("/healthz") == (200, "ok\n")
    assert exporter.get("/readyz") == (200, "ready\n")
    assert exporter.get("/nope")[0] == 404
    status, page = exporter.get("/")
    assert status == 200
    assert 'href="/metrics"' in page


def test_registry_edit_picked_up_and_broken_edit_keeps_last_good(start, registry_file):
    exporter = start("--registry", str(registry_file))
    labels = dict(cluster="prod-cn", namespace="dify", license="prod-main", environment="production")
    before = value(exporter.samples(), "dify_license_expiry_timestamp_seconds", **labels)

    text = registry_file.read_text()
    today = date.today()
    old_expiry = generate_registry.render(today).split("name: prod-main")[1].split("expires: ")[1][:10]
    registry_file.write_text(text.replace(f"expires: {old_expiry}", "expires: 2099-12-31", 1))
    # 2099-12-31 is the last valid day in Asia/Shanghai: stops at 16:00 UTC.
    wait_for(
        lambda: value(exporter.samples(), "dify_license_expiry_timestamp_seconds", **labels)
        == 4102416000.0
    )

    registry_file.write_text("licenses: [unclosed\n")
    samples = wait_for(
        lambda: (s := exporter.samples())
        and value(s, "dify_license_exporter_registry_valid") == 0.0
        and s
    )
    assert value(samples, "dify_license_expiry_timestamp_seconds", **labels) == 4102416000.0
    assert value(
        samples, "dify_license_exporter_refresh_errors_total", source="registry", reason="invalid_yaml"
    ) == 1.0
    assert value(samples, "dify_license_exporter_active_errors", source="registry", reason="invalid_yaml") == 1.0
    # The same broken file is counted and logged once, not once per refresh.
    time.sleep(float(REFRESH) * 4)
    samples = exporter.samples()
    assert value(
        samples, "dify_license_exporter_refresh_errors_total", source="registry", reason="invalid_yaml"
    ) == 1.0
    assert exporter.logs().count("refresh error") == 1
    assert before != 4102416000.0


def test_removed_instance_leaves_no_series(start, tmp_path, registry_file):
    exporter = start("--registry", str(registry_file))
    assert 'namespace="dify-qa"' in exporter.metrics()
    text = registry_file.read_text()
    block = "  - cluster: test-sg\n    namespace: dify-qa\n"
    start_index = text.index(block)
    end_index = text.index("  - cluster:", start_index + len(block))
    registry_file.write_text(text[:start_index] + text[end_index:])
    wait_for(lambda: 'namespace="dify-qa"' not in exporter.metrics())
    samples = exporter.samples()
    assert value(samples, "dify_license_instances", license="test-shared") == 1.0


def test_configmap_symlink_swap(start, tmp_path):
    # The layout kubelet uses for a mounted ConfigMap: registry.yaml -> ..data/...,
    # ..data -> a timestamped folder, swapped atomically by renaming a symlink.
    mount = tmp_path / "mount"
    mount.mkdir()
    first = mount / "..2026_12_04_00_00_00.000000001"
    first.mkdir()
    (first / "registry.yaml").write_text(generate_registry.render(date.today()))
    os.symlink(first.name, mount / "..data")
    os.symlink("..data/registry.yaml", mount / "registry.yaml")
    exporter = start("--registry", str(mount / "registry.yaml"))
    assert 'namespace="dify-qa"' in exporter.metrics()

    second = mount / "..2026_12_04_00_01_00.000000002"
    second.mkdir()
    (second / "registry.yaml").write_text(
        generate_registry.render(date.today()).replace("namespace: dify-qa", "namespace: dify-uat")
    )
    os.symlink(second.name, mount / "..data_tmp")
    os.rename(mount / "..data_tmp", mount / "..data")
    shutil.rmtree(first)
    wait_for(lambda: 'namespace="dify-uat"' in exporter.metrics())
    assert 'namespace="dify-qa"' not in exporter.metrics()


def test_bad_values_file_affects_only_its_instance(start, tmp_path, registry_file):
    values = tmp_path / "values"
    shutil.copytree(EXAMPLES / "values", values)
    (values / "prod-cn" / "dify-staging.yaml").write_text("enterprise: [broken\n")
    exporter = start("--registry", str(registry_file), "--values-dir", str(values))
    samples = exporter.samples()
    assert value(
        samples,
        "dify_license_observation_error",
        cluster="prod-cn",
        namespace="dify-staging",
        reason="values_invalid",
    ) == 1.0
    assert value(
        samples, "dify_license_exporter_refresh_errors_total", source="files", reason="values_invalid"
    ) == 1.0
    prod = dict(cluster="prod-cn", namespace="dify", license="prod-main", environment="production")
    assert value(samples, "dify_license_mode", **prod, mode="online") == 1.0
    staging = dict(cluster="prod-cn", namespace="dify-staging", license="staging", environment="staging")
    assert ("dify_license_mode", frozenset({**staging, "mode": "online"}.items())) not in samples
    assert value(samples, "dify_license_days_to_expiry", **staging) > 0


def test_values_dir_removed_keeps_last_observation(start, tmp_path, registry_file):
    values = tmp_path / "values"
    shutil.copytree(EXAMPLES / "values", values)
    exporter = start("--registry", str(registry_file), "--values-dir", str(values))
    shutil.rmtree(values)
    samples = wait_for(
        lambda: (s := exporter.samples())
        and value(s, "dify_license_exporter_active_errors", source="files", reason="values_dir_missing") == 1.0
        and s
    )
    prod = dict(cluster="prod-cn", namespace="dify", license="prod-main", environment="production")
    assert value(samples, "dify_license_mode", **prod, mode="online") == 1.0


def test_invalid_registry_refuses_to_start(tmp_path, write_file):
    path = write_file("bad.yaml", "licenses:\n  - name: BAD\n")
    result = subprocess.run(
        [sys.executable, "-m", "dify_license_exporter", "serve", "--registry", path,
         "--web.listen-address", f"127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert f"{path}: licenses[0].name: invalid value \"BAD\"" in result.stderr


def test_sigterm_stops_within_seconds(tmp_path, registry_file):
    exporter = Exporter(["--registry", str(registry_file)], tmp_path)
    exporter.wait_ready()
    started = time.monotonic()
    exporter.process.send_signal(signal.SIGTERM)
    assert exporter.process.wait(timeout=10) == 0
    assert time.monotonic() - started < 5
    exporter.log.close()
    assert "msg=stopped" in exporter.log_path.read_text()


def test_json_logs(start, registry_file):
    exporter = start("--registry", str(registry_file), "--log.format", "json")
    import json

    # /readyz can return 200 before the "listening" line is written.
    lines = wait_for(lambda: exporter.logs().splitlines())
    first = json.loads(lines[0])
    assert first["msg"] == "listening"
    assert first["level"] == "info"
    assert first["address"] == f"127.0.0.1:{exporter.port}"


def test_head_request_has_no_body(start, registry_file):
    import http.client

    exporter = start("--registry", str(registry_file))
    connection = http.client.HTTPConnection("127.0.0.1", exporter.port, timeout=10)
    connection.request("HEAD", "/metrics")
    response = connection.getresponse()
    assert response.status == 200
    assert int(response.getheader("Content-Length")) > 1000
    assert response.read() == b""
    connection.close()


def test_dropped_scrape_logs_no_traceback(start, registry_file):
    import socket
    import struct

    exporter = start("--registry", str(registry_file), "--log.level", "debug")
    for _ in range(5):
        sock = socket.create_connection(("127.0.0.1", exporter.port), timeout=10)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        # Close with a reset, as a scraper that timed out does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    assert exporter.get("/healthz") == (200, "ok\n")
    time.sleep(0.5)
    logs = exporter.logs()
    assert "Traceback" not in logs
    assert "Exception occurred" not in logs
