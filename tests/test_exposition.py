"""The cached metrics page equals a fresh render, at every instant."""

from __future__ import annotations

import gzip
import os
import sys
from datetime import date, datetime, timezone

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from dify_license_exporter.collector import LicenseCollector
from dify_license_exporter.exposition import ExpositionCache
from dify_license_exporter.refresh import Refresher
from dify_license_exporter.sources.files import FilesSource

from conftest import EXAMPLES

sys.path.insert(0, os.fspath(EXAMPLES))
import generate_registry  # noqa: E402

TODAY = date(2026, 12, 4)
# prod-main expires at 2026-12-25T16:00:00Z; its 7-day stage starts at
# 2026-12-18T16:00:00Z.
STAGE_7 = datetime(2026, 12, 18, 16, tzinfo=timezone.utc).timestamp()


class Clock:
    def __init__(self, value: float):
        self.value = value

    def __call__(self) -> float:
        return self.value


def samples_of(text: str) -> dict:
    result = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            result[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return result


def build(tmp_path, clock):
    path = tmp_path / "registry.yaml"
    path.write_text(generate_registry.render(TODAY), encoding="utf-8")
    refresher = Refresher([os.fspath(path)], [FilesSource(os.fspath(EXAMPLES / "values"))])
    refresher.refresh()
    collector = LicenseCollector(refresher, clock=clock)
    cache = ExpositionCache(collector, refresher.snapshot_key, CollectorRegistry(), clock)
    registry = CollectorRegistry()
    registry.register(collector)
    return refresher, cache, registry


def test_cached_page_equals_fresh_render(tmp_path):
    clock = Clock(STAGE_7 - 3600)
    _, cache, registry = build(tmp_path, clock)
    body, content_type, _ = cache.render(None)
    assert content_type.startswith("text/plain")
    assert samples_of(body.decode()) == samples_of(generate_latest(registry).decode())


def test_days_to_expiry_exact_at_each_scrape(tmp_path):
    clock = Clock(STAGE_7 - 3600)
    _, cache, _ = build(tmp_path, clock)
    key = (
        "dify_license_days_to_expiry",
        (("cluster", "prod-cn"), ("environment", "production"), ("license", "prod-main"),
         ("namespace", "dify")),
    )
    first = samples_of(cache.render(None, None)[0].decode())[key]
    clock.value += 8640
    second = samples_of(cache.render(None, None)[0].decode())[key]
    assert first == pytest.approx(7 + 1 / 24, abs=1e-9)
    assert second == pytest.approx(7 + 1 / 24 - 0.1, abs=1e-9)


def test_stage_boundary_rerenders_findings(tmp_path):
    clock = Clock(STAGE_7 - 1)
    _, cache, registry = build(tmp_path, clock)
    finding = (
        "dify_license_finding",
        (("cluster", "prod-cn"), ("environment", "production"), ("finding", "expiring"),
         ("license", "prod-main"), ("namespace", "dify"), ("severity", "warning")),
    )
    critical = finding[:1] + (tuple(
        (k, "critical" if k == "severity" else v) for k, v in finding[1]
    ),)
    before = samples_of(cache.render(None, None)[0].decode())
    assert before[finding] == 1.0
    assert critical not in before
    clock.value = STAGE_7
    after = samples_of(cache.render(None, None)[0].decode())
    assert finding not in after
    assert after[critical] == 1.0
    assert after == samples_of(generate_latest(registry).decode())


def test_registry_change_rerenders(tmp_path):
    clock = Clock(STAGE_7 - 3600)
    refresher, cache, _ = build(tmp_path, clock)
    registered_qa = 'license="test-shared",namespace="dify-qa"'
    assert registered_qa in cache.render(None, None)[0].decode()
    path = refresher.registry_paths[0]
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text.replace("namespace: dify-qa", "namespace: dify-uat"))
    os.utime(path, ns=(1, 1))
    refresher.refresh()
    body = cache.render(None, None)[0].decode()
    # dify-qa is still deployed, now as an unregistered instance.
    assert registered_qa not in body
    assert 'license="",namespace="dify-qa"' in body
    assert 'license="test-shared",namespace="dify-uat"' in body


def test_unchanged_refresh_keeps_rendered_page(tmp_path):
    clock = Clock(STAGE_7 - 3600)
    refresher, cache, _ = build(tmp_path, clock)
    cache.render(None, None)
    entry = cache._entries[False]
    refresher.refresh()
    cache.render(None, None)
    assert cache._entries[False] is entry


def test_openmetrics_page_parses(tmp_path):
    clock = Clock(STAGE_7 - 3600)
    _, cache, _ = build(tmp_path, clock)
    body, content_type, _ = cache.render("application/openmetrics-text; version=1.0.0", None)
    assert content_type.startswith("application/openmetrics-text")
    text = body.decode()
    assert text.endswith("# EOF\n")
    assert text.count("# EOF") == 1
    names = {family.name for family in parse_openmetrics(text)}
    assert "dify_license_days_to_expiry" in names
    assert "dify_license_exporter_refresh_errors" in names


def test_gzip_page_is_two_members(tmp_path):
    clock = Clock(STAGE_7 - 3600)
    _, cache, _ = build(tmp_path, clock)
    plain, _, plain_encoding = cache.render(None, None)
    body, _, encoding = cache.render(None, "gzip, deflate")
    assert plain_encoding is None
    assert encoding == "gzip"
    assert gzip.decompress(body) == plain
