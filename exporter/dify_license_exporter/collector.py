"""Prometheus collector that renders the latest snapshot at scrape time.

Every scrape evaluates the snapshot at the current time, so days_to_expiry and
the notice findings are exact at scrape time, and an instance that left the
registry or the cluster has no series at all. Every family is yielded even when it
has no samples, so rules and dashboards can rely on its HELP and TYPE lines.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import __version__
from .evaluate import InstanceStatus, evaluate
from .observations import MODES
from .probe import LICENSE_STATUSES
from .refresh import Refresher

INSTANCE_LABELS = ("cluster", "namespace", "license", "environment")
INFO_LABELS = INSTANCE_LABELS + (
    "owner",
    "department",
    "requester",
    "activator",
    "bound_cluster",
    "bound_namespace",
    "priority",
)


def _gauge(name: str, documentation: str, extra: tuple[str, ...] = ()):
    return GaugeMetricFamily(name, documentation, labels=INSTANCE_LABELS + extra)


class LicenseCollector(Collector):
    """Render license gauges and exporter health from a Refresher's snapshot."""

    def __init__(
        self,
        refresher: Refresher,
        clock: Callable[[], float] = time.time,
        cluster: str | None = None,
    ):
        self.refresher = refresher
        self.clock = clock
        self.cluster = cluster

    def describe(self) -> list[Metric]:
        # An empty describe keeps the registry from calling collect() at register
        # time, before the first refresh.
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self.license_families(self.clock())
        yield from self.health_families()

    def license_families(self, timestamp: float) -> Iterator[Metric]:
        """Yield the families derived from the snapshot evaluated at `timestamp`."""
        snapshot = self.refresher.snapshot
        now = datetime.fromtimestamp(timestamp, tz=timezone.utc)
        statuses: list[InstanceStatus] = []
        if snapshot.registry is not None:
            statuses = evaluate(
                snapshot.registry,
                snapshot.observations,
                now,
                snapshot.probes,
                cluster=self.cluster,
            )
        observes_pods = bool(
            snapshot.observations and snapshot.observations.observes_pods
        )
        yield from self._license_families(statuses, observes_pods)
        yield from _probe_families(statuses)
        yield self._instances_family(snapshot)

    def health_families(self) -> Iterator[Metric]:
        """Yield the exporter's own refresh-health families."""
        yield from self._health_families()

    def _license_families(
        self, statuses: list[InstanceStatus], observes_pods: bool
    ) -> Iterator[Metric]:
        """Yield one family at a time, so a consumer that renders and drops each
        family holds only one family's samples in memory (75,000 samples at
        5,000 instances otherwise)."""
        rows = [
            (
                status,
                [
                    status.cluster,
                    status.namespace,
                    status.license or "",
                    status.environment or "",
                ],
            )
            for status in statuses
        ]
        dated = [(s, labels) for s, labels in rows if s.expires and s.effective]
        registered = [(s, labels) for s, labels in rows if s.instance is not None]

        family = _gauge(
            "dify_license_expiry_timestamp_seconds",
            "Unix time at which the license stops being valid.",
        )
        for status, labels in dated:
            family.add_metric(labels, status.expires.timestamp())
        yield family

        family = _gauge(
            "dify_license_effective_timestamp_seconds",
            "Unix time at which the license starts being valid.",
        )
        for status, labels in dated:
            family.add_metric(labels, status.effective.timestamp())
        yield family

        family = _gauge(
            "dify_license_days_to_expiry",
            "Days from scrape time to license expiry, negative once expired.",
        )
        for status, labels in dated:
            family.add_metric(labels, status.days_to_expiry)
        yield family

        family = _gauge(
            "dify_license_mode",
            "Configured enterprise.licenseMode: 1 for the configured mode, 0 otherwise.",
            ("mode",),
        )
        for status, labels in rows:
            if status.mode is not None:
                for name in MODES:
                    family.add_metric(
                        labels + [name], 1.0 if name == status.mode else 0.0
                    )
        yield family

        family = GaugeMetricFamily(
            "dify_license_info",
            "Registry data of an instance: owner, department, renewal contacts, binding.",
            labels=INFO_LABELS,
        )
        for status, labels in registered:
            family.add_metric(labels + _info_values(status), 1.0)
        yield family

        family = _gauge(
            "dify_license_restart_pending",
            "1 when the license changed after the enterprise pods started.",
        )
        for status, labels in rows if observes_pods else []:
            if status.restart_pending is not None:
                family.add_metric(labels, float(status.restart_pending))
        yield family

        family = _gauge(
            "dify_license_binding_mismatch",
            "1 when the instance runs outside the namespace its license is bound to.",
        )
        for status, labels in registered:
            family.add_metric(labels, float(bool(status.binding_mismatch)))
        yield family

        family = _gauge(
            "dify_license_mode_mismatch",
            "1 when the configured licenseMode differs from the registry's mode.",
        )
        for status, labels in rows:
            if status.mode_mismatch is not None:
                family.add_metric(labels, float(status.mode_mismatch))
        yield family

        family = _gauge(
            "dify_license_registry_missing_fields",
            "Required registry fields (owner, department, requester, activator) "
            "that are empty.",
        )
        for status, labels in registered:
            family.add_metric(labels, float(len(status.missing_fields)))
        yield family

        family = _gauge(
            "dify_license_notice_threshold_days",
            "Notice thresholds of the instance's license in days, one series each.",
            ("threshold", "severity"),
        )
        for status, labels in registered:
            for threshold, severity in status.thresholds:
                family.add_metric(labels + [str(threshold), severity], float(threshold))
        yield family

        family = _gauge(
            "dify_license_finding",
            "1 for each finding that applies to the instance now.",
            ("finding", "severity"),
        )
        for status, labels in rows:
            for code in status.findings:
                family.add_metric(labels + [code, status.finding_severity(code)], 1.0)
        yield family

        family = GaugeMetricFamily(
            "dify_license_observation_error",
            "1 while the observed configuration of an instance cannot be read.",
            labels=("cluster", "namespace", "reason"),
        )
        for status, _labels in rows:
            observed = status.observation
            if observed is not None and observed.error_reason:
                family.add_metric(
                    [status.cluster, status.namespace, observed.error_reason], 1.0
                )
        yield family

    def _instances_family(self, snapshot) -> Metric:
        family = GaugeMetricFamily(
            "dify_license_instances",
            "Registry instances using the license; more than 1 means it is shared.",
            labels=("license",),
        )
        registry = snapshot.registry
        if registry is not None:
            counts = {name: 0 for name in registry.licenses}
            for instance in registry.instances:
                counts[instance.license] = counts.get(instance.license, 0) + 1
            for name in sorted(counts):
                family.add_metric([name], float(counts[name]))
        return family

    def _health_families(self) -> Iterator[Metric]:
        health = self.refresher.health
        errors = CounterMetricFamily(
            "dify_license_exporter_refresh_errors",
            "Refresh errors by source and reason, counted once per distinct error.",
            labels=("source", "reason"),
        )
        for (source, reason), value in sorted(health.errors_total.items()):
            errors.add_metric([source, reason], float(value))
        yield errors

        active = GaugeMetricFamily(
            "dify_license_exporter_active_errors",
            "Errors present in the latest refresh, by source and reason.",
            labels=("source", "reason"),
        )
        for (source, reason), value in sorted(health.active_errors.items()):
            active.add_metric([source, reason], float(value))
        yield active

        success = GaugeMetricFamily(
            "dify_license_exporter_last_refresh_success_timestamp_seconds",
            "Unix time of the last refresh of the source that succeeded.",
            labels=("source",),
        )
        for source, value in sorted(health.last_success.items()):
            success.add_metric([source], value)
        yield success

        duration = GaugeMetricFamily(
            "dify_license_exporter_refresh_duration_seconds",
            "Duration of the latest refresh of the source in seconds.",
            labels=("source",),
        )
        for source, value in sorted(health.duration.items()):
            duration.add_metric([source], value)
        yield duration

        registry_valid = GaugeMetricFamily(
            "dify_license_exporter_registry_valid",
            "1 when the latest registry load succeeded, 0 while the last good "
            "registry is served instead.",
        )
        registry_valid.add_metric([], float(self.refresher.health.registry_valid))
        yield registry_valid

        signature_valid = GaugeMetricFamily(
            "dify_license_registry_signature_valid",
            "1 when every registry file of the latest load carries a valid signature, "
            "0 otherwise; no sample without --registry-public-key.",
        )
        # A SignedRegistryLoader (signing.py) records the result of its latest load.
        verified = getattr(self.refresher.registry_loader, "signature_valid", None)
        if verified is not None:
            signature_valid.add_metric([], float(verified))
        yield signature_valid

        build = GaugeMetricFamily(
            "dify_license_exporter_build_info",
            "Exporter build information.",
            labels=("version",),
        )
        build.add_metric([__version__], 1.0)
        yield build


def _probe_families(statuses: list[InstanceStatus]) -> Iterator[Metric]:
    """Render the live license status and capacity read from the Dify APIs."""
    live_status = _gauge(
        "dify_license_status",
        "Live license status reported by the Dify API: 1 for the current status.",
        ("status",),
    )
    live_expiry = _gauge(
        "dify_license_live_expiry_timestamp_seconds",
        "Unix time of license.expired_at reported by the Dify API.",
    )
    success = _gauge(
        "dify_license_probe_success",
        "1 when the latest probe of the instance's Dify API succeeded, 0 otherwise.",
    )
    duration = _gauge(
        "dify_license_probe_duration_seconds",
        "Duration of the latest probe of the instance's Dify API in seconds.",
    )
    counts = {
        name: _gauge(f"dify_license_{name}", documentation)
        for name, documentation in (
            ("seats_used", "Seats (workspace members) in use, from the Dify API."),
            ("seats_allowed", "Seats the license allows, from the Dify API."),
            ("workspaces_used", "Workspaces in use, from the Dify API."),
            ("workspaces_allowed", "Workspaces the license allows, from the Dify API."),
        )
    }
    for status in statuses:
        probe = status.probe
        if probe is None:
            continue
        labels = [
            status.cluster,
            status.namespace,
            status.license or "",
            status.environment or "",
        ]
        success.add_metric(labels, float(probe.success))
        duration.add_metric(labels, probe.duration)
        if probe.status is not None:
            for name in LICENSE_STATUSES:
                live_status.add_metric(labels + [name], float(name == probe.status))
        if probe.expired_at is not None:
            live_expiry.add_metric(labels, probe.expired_at.timestamp())
        for name, family in counts.items():
            value = getattr(probe, name)
            if value is not None:
                family.add_metric(labels, float(value))
    yield from (live_status, live_expiry, success, duration)
    yield from counts.values()


def _info_values(status: InstanceStatus) -> list[str]:
    instance = status.instance
    renewal = status.renewal
    license = status.license_entry
    assert instance is not None
    assert renewal is not None
    assert license is not None
    return [
        instance.owner,
        instance.department,
        renewal.requester,
        renewal.activator,
        license.bound_cluster,
        license.bound_namespace,
        instance.priority,
    ]
