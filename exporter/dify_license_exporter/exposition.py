"""Cached rendering of /metrics for large fleets.

Rendering every sample through prometheus_client costs about 0.2 ms per instance,
so a scrape of 5,000 instances would take about a second. Almost nothing in the
output changes between refreshes: findings and stages change only when an
effective date, a notice threshold or an expiry instant passes. This cache
renders the license families once per snapshot and per such boundary, and at
scrape time only formats `dify_license_days_to_expiry` (exact at scrape time) and
the small exporter-health families.
"""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.exposition import generate_latest as generate_text
from prometheus_client.openmetrics.exposition import (
    CONTENT_TYPE_LATEST as CONTENT_TYPE_OPENMETRICS,
)
from prometheus_client.openmetrics.exposition import (
    generate_latest as generate_openmetrics,
)
from prometheus_client.utils import floatToGoString

from .collector import LicenseCollector

DAYS_FAMILY = "dify_license_days_to_expiry"
EXPIRY_FAMILY = "dify_license_expiry_timestamp_seconds"
EFFECTIVE_FAMILY = "dify_license_effective_timestamp_seconds"
THRESHOLD_FAMILY = "dify_license_notice_threshold_days"
SECONDS_PER_DAY = 86400.0
OPENMETRICS_EOF = b"# EOF\n"
# Fast compression: the page is large and repetitive, and scrapes are frequent.
GZIP_LEVEL = 1


class _StaticCollector:
    """Collector that yields a fixed list of families, for rendering them once."""

    def __init__(self, families: Iterable[Metric]):
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def _render(families: Iterable[Metric], openmetrics: bool) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StaticCollector(families))
    if not openmetrics:
        return generate_text(registry)
    body = generate_openmetrics(registry)
    return body[: -len(OPENMETRICS_EOF)] if body.endswith(OPENMETRICS_EOF) else body


@dataclass
class _Entry:
    """Rendered license families, valid for one snapshot until `valid_until`."""

    key: tuple
    valid_until: float
    static: bytes
    days_header: bytes
    # (sample line up to the value, expiry timestamp) per days_to_expiry sample.
    days_samples: list[tuple[bytes, float]]
    static_gzip: bytes | None = None


def _days_samples(
    days: Metric, expiry_by_instance: dict[tuple, float], openmetrics: bool
) -> tuple[bytes, list[tuple[bytes, float]]]:
    """Split the rendered days family into its header and per-sample prefixes."""
    rendered = _render([days], openmetrics)
    lines = rendered.splitlines(keepends=True)
    header = b"".join(line for line in lines if line.startswith(b"#"))
    sample_lines = [line for line in lines if not line.startswith(b"#")]
    samples = []
    for line, sample in zip(sample_lines, days.samples):
        prefix = line[: line.rindex(b" ") + 1]
        samples.append((prefix, expiry_by_instance[_instance_key(sample.labels)]))
    return header, samples


def _next_boundary(
    expiry_by_instance: dict[tuple, float],
    effective: list[float],
    thresholds: list[tuple[tuple, float]],
    now: float,
) -> float:
    """Return the next instant at which a finding or notice stage can change."""
    instants = list(expiry_by_instance.values()) + effective
    for key, days in thresholds:
        expiry = expiry_by_instance.get(key)
        if expiry is not None:
            instants.append(expiry - days * SECONDS_PER_DAY)
    future = [instant for instant in instants if instant > now]
    return min(future, default=float("inf"))


def _same(cached: tuple, current: tuple) -> bool:
    """Compare snapshot keys by identity: deep equality would cost O(instances).

    The cache entry keeps references to the key's objects, so their ids cannot be reused.
    """
    return len(cached) == len(current) and all(a is b for a, b in zip(cached, current))


def _instance_key(labels: dict[str, str]) -> tuple:
    return (
        labels.get("cluster"),
        labels.get("namespace"),
        labels.get("license"),
        labels.get("environment"),
    )


class ExpositionCache:
    """Render the metrics page, re-rendering license families only when needed.

    `snapshot_key` returns a value that changes whenever the collector's input
    changes; `extra` is the registry of the small families rendered on every
    scrape (process metrics).
    """

    def __init__(
        self,
        collector: LicenseCollector,
        snapshot_key: Callable[[], tuple],
        extra: CollectorRegistry,
        clock: Callable[[], float] = time.time,
    ):
        self.collector = collector
        self.snapshot_key = snapshot_key
        self.extra = extra
        self.clock = clock
        self._entries: dict[bool, _Entry] = {}
        self._lock = threading.Lock()

    def render(
        self, accept_header: str | None, accept_encoding: str | None = None
    ) -> tuple[bytes, str, str | None]:
        """Return the page body, its content type and its content encoding.

        With gzip accepted, the body is two gzip members, the cached static part
        and the part rendered now; RFC 1952 readers, Prometheus among them,
        decompress concatenated members as one stream.
        """
        openmetrics = "application/openmetrics-text" in (accept_header or "")
        use_gzip = "gzip" in (accept_encoding or "")
        now = self.clock()
        entry = self._entry(openmetrics, now)
        parts = [entry.days_header]
        parts.extend(
            prefix + floatToGoString((expiry - now) / SECONDS_PER_DAY).encode() + b"\n"
            for prefix, expiry in entry.days_samples
        )
        parts.append(_render(self.collector.health_families(), openmetrics))
        parts.append(_render(self.extra.collect(), openmetrics))
        if openmetrics:
            parts.append(OPENMETRICS_EOF)
        content_type = CONTENT_TYPE_OPENMETRICS if openmetrics else CONTENT_TYPE_LATEST
        dynamic = b"".join(parts)
        if not use_gzip:
            return entry.static + dynamic, content_type, None
        if entry.static_gzip is None:
            entry.static_gzip = gzip.compress(entry.static, compresslevel=GZIP_LEVEL)
        body = entry.static_gzip + gzip.compress(dynamic, compresslevel=GZIP_LEVEL)
        return body, content_type, "gzip"

    def warm(self) -> None:
        """Re-render stale entries ahead of the next scrape (from the refresh loop)."""
        now = self.clock()
        self._entry(False, now)

    def _entry(self, openmetrics: bool, now: float) -> _Entry:
        key = self.snapshot_key()
        entry = self._entries.get(openmetrics)
        if entry is not None and _same(entry.key, key) and now < entry.valid_until:
            return entry
        with self._lock:
            entry = self._entries.get(openmetrics)
            if entry is not None and _same(entry.key, key) and now < entry.valid_until:
                return entry
            entry = self._build(key, openmetrics, now)
            self._entries[openmetrics] = entry
            return entry

    def _build(self, key: tuple, openmetrics: bool, now: float) -> _Entry:
        # Each family is rendered and dropped as soon as it is built; only the
        # days family and the instants that bound the entry's validity are kept.
        chunks = []
        days = None
        expiry: dict[tuple, float] = {}
        effective: list[float] = []
        thresholds: list[tuple[tuple, float]] = []
        for family in self.collector.license_families(now):
            if family.name == DAYS_FAMILY:
                days = family
                continue
            if family.name == EXPIRY_FAMILY:
                expiry = {_instance_key(s.labels): s.value for s in family.samples}
            elif family.name == EFFECTIVE_FAMILY:
                effective = [sample.value for sample in family.samples]
            elif family.name == THRESHOLD_FAMILY:
                thresholds = [
                    (_instance_key(s.labels), s.value) for s in family.samples
                ]
            chunks.append(_render([family], openmetrics))
        assert days is not None
        header, samples = _days_samples(days, expiry, openmetrics)
        return _Entry(
            key=key,
            valid_until=_next_boundary(expiry, effective, thresholds, now),
            static=b"".join(chunks),
            days_header=header,
            days_samples=samples,
        )
