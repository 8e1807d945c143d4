"""Faults while `serve` runs: the registry disappears or breaks, signals, load.

Each test starts the exporter as a subprocess on a free loopback port, changes
its files under it and scrapes it over HTTP.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import EXAMPLES
from test_serve import Exporter, value, wait_for

PROD = dict(cluster="prod-cn", namespace="dify", license="prod-main", environment="production")
REGISTRY = """\
timezone: UTC
licenses:
  - id: DIFY-FAULTS-SECRET
    name: prod-main
    effective: 2026-01-01
    expires: 2099-12-31
    mode: online
    bound_to: {cluster: prod-cn, namespace: dify}
instances:
  - cluster: prod-cn
    namespace: dify
    license: prod-main
    environment: production
    owner: Jane Roe
    department: AI Platform
renewals:
  - license: prod-main
    requester: procurement@example.com
    activator: sre@example.com
"""
EXPIRY = 4102444800.0  # 2100-01-01T00:00:00Z


@pytest.fixture
def running(tmp_path):
    """Start serve on a fresh registry file; yield (exporter, registry path)."""
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY, encoding="utf-8")
    exporter = Exporter(["--registry", os.fspath(path), "--refresh-interval", "0.1"], tmp_path)
    exporter.wait_ready()
    yield exporter, path
    assert exporter.stop() == 0
    logs = exporter.log_path.read_text(errors="replace")
    assert "Traceback" not in logs
    assert "DIFY-FAULTS-SECRET" not in logs


def errors_total(samples, reason: str) -> float | None:
    return value(
        samples, "dify_license_exporter_refresh_errors_total", source="registry", reason=reason
    )


def wait_for_error(exporter: Exporter, reason: str):
    return wait_for(
        lambda: (s := exporter.samples())
        and value(s, "dify_license_exporter_active_errors", source="registry", reason=reason)
        == 1.0
        and s
    )


def assert_counted_once(exporter: Exporter, reason: str) -> None:
    """The error persists for several refreshes but is counted and logged once."""
    time.sleep(1.0)
    samples = exporter.samples()
    assert errors_total(samples, reason) == 1.0
    assert value(samples, "dify_license_exporter_registry_valid") == 0.0
    assert value(samples, "dify_license_expiry_timestamp_seconds", **PROD) == EXPIRY
    assert exporter.logs().count('msg="refresh error"') == 1


def test_registry_deleted_keeps_last_good(running):
    exporter, path = running
    path.unlink()
    wait_for_error(exporter, "read_failed")
    assert_counted_once(exporter, "read_failed")
    assert "file not found; check the --registry path" in exporter.logs()


def test_registry_unreadable_keeps_last_good(running):
    # Tests run as root, where chmod 000 does not stop reads; a directory in
    # place of the file fails the read for any user.
    exporter, path = running
    path.unlink()
    path.mkdir()
    wait_for_error(exporter, "read_failed")
    assert_counted_once(exporter, "read_failed")
    assert "is a folder, not a file; give the path of the file inside it" in exporter.logs()


def test_registry_garbage_keeps_last_good(running):
    exporter, path = running
    path.write_bytes(b"\x00\x01licenses: [\xff\xfe")
    wait_for_error(exporter, "invalid_yaml")
    assert_counted_once(exporter, "invalid_yaml")


def test_registry_changing_errors_counted_per_change(running):
    exporter, path = running
    path.write_text("licenses: [unclosed\n")
    wait_for_error(exporter, "invalid_yaml")
    path.write_text("licenses: {unclosed\n")
    wait_for(lambda: errors_total(exporter.samples(), "invalid_yaml") == 2.0)
    path.write_text(REGISTRY)
    samples = wait_for(
        lambda: (s := exporter.samples())
        and value(s, "dify_license_exporter_registry_valid") == 1.0
        and s
    )
    assert errors_total(samples, "invalid_yaml") == 2.0
    assert value(samples, "dify_license_exporter_active_errors", source="registry", reason="invalid_yaml") is None
    assert exporter.logs().count('msg="refresh error"') == 2
    assert exporter.logs().count('msg="refresh recovered"') == 1


def test_cluster_folder_missing_keeps_last_observation(tmp_path):
    values = tmp_path / "values"
    shutil.copytree(EXAMPLES / "values", values)
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY, encoding="utf-8")
    exporter = Exporter(
        ["--registry", os.fspath(registry), "--values-dir", os.fspath(values),
         "--cluster", "prod-cn", "--refresh-interval", "0.1"],
        tmp_path,
    )
    try:
        exporter.wait_ready()
        assert value(exporter.samples(), "dify_license_mode", **PROD, mode="online") == 1.0
        shutil.rmtree(values / "prod-cn")
        samples = wait_for(
            lambda: (s := exporter.samples())
            and value(
                s, "dify_license_exporter_active_errors", source="files", reason="values_dir_missing"
            )
            == 1.0
            and s
        )
        assert value(samples, "dify_license_mode", **PROD, mode="online") == 1.0
        assert value(
            samples, "dify_license_exporter_refresh_errors_total", source="files", reason="values_dir_missing"
        ) == 1.0
    finally:
        assert exporter.stop() == 0


def large_registry(instances: int) -> str:
    lines = ["timezone: UTC", "licenses:"]
    for index in range(instances):
        lines.append(
            f"  - {{id: ID-{index}, name: lic-{index}, effective: 2026-01-01, "
            f"expires: 2099-12-31, mode: online, bound_to: {{cluster: c, namespace: ns-{index}}}}}"
        )
    lines.append("instances:")
    for index in range(instances):
        lines.append(
            f"  - {{cluster: c, namespace: ns-{index}, license: lic-{index}, environment: test}}"
        )
    return "\n".join(lines) + "\n"


def test_sigterm_during_refresh_exits_cleanly(tmp_path):
    # A registry that takes a good fraction of a second to load, reloaded every
    # 0.05 s, so the signal lands while a refresh runs.
    path = tmp_path / "registry.yaml"
    path.write_text(large_registry(3000), encoding="utf-8")
    exporter = Exporter(["--registry", os.fspath(path), "--refresh-interval", "0.05"], tmp_path)
    exporter.wait_ready(timeout=60)
    time.sleep(1.0)
    started = time.monotonic()
    exporter.process.send_signal(signal.SIGTERM)
    assert exporter.process.wait(timeout=10) == 0
    assert time.monotonic() - started < 5
    exporter.log.close()
    logs = exporter.log_path.read_text()
    assert "msg=stopped" in logs
    assert "Traceback" not in logs


def scrape(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read().decode()


def test_fifty_concurrent_scrapes(running):
    exporter, _path = running
    expected = exporter.metrics().count("\ndify_license_")
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(scrape, [exporter.url + "/metrics"] * 50))
    assert [status for status, _ in results] == [200] * 50
    for _, body in results:
        assert body.count("\ndify_license_") == expected
        assert 'dify_license_expiry_timestamp_seconds{cluster="prod-cn"' in body


def test_scrape_during_reload_sees_whole_snapshots(tmp_path):
    first = large_registry(400)
    second = first.replace("cluster: c,", "cluster: d,")
    path = tmp_path / "registry.yaml"
    path.write_text(first, encoding="utf-8")
    exporter = Exporter(["--registry", os.fspath(path), "--refresh-interval", "0.05"], tmp_path)
    exporter.wait_ready()
    stop = threading.Event()
    bodies: list[tuple[int, str]] = []

    def keep_scraping() -> None:
        while not stop.is_set():
            bodies.append(scrape(exporter.url + "/metrics"))

    threads = [threading.Thread(target=keep_scraping) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        for round_number in range(6):
            staging = path.with_suffix(".staging")
            staging.write_text(second if round_number % 2 == 0 else first, encoding="utf-8")
            os.replace(staging, path)
            time.sleep(0.4)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        assert exporter.stop() == 0
    assert len(bodies) > 10
    kinds = set()
    for status, body in bodies:
        assert status == 200
        old = body.count('dify_license_days_to_expiry{cluster="c"')
        new = body.count('dify_license_days_to_expiry{cluster="d"')
        # A scrape renders one snapshot: all instances of one registry, never a mix.
        assert (old, new) in ((400, 0), (0, 400))
        kinds.add((old, new))
    assert kinds == {(400, 0), (0, 400)}
