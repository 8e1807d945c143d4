"""Join the registry with observations into per-instance status and findings.

`evaluate` is a pure function of (registry, observations, now). `check`, `report`
and the `/metrics` collector all call it, so they never disagree.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Mapping

from .observations import Observation, ObservationSet
from .probe import ProbeResult
from .registry import Instance, License, Registry, Renewal

SEVERITIES = ("none", "info", "warning", "critical")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}

# Finding codes in the order they are listed in `check` output.
FINDINGS = (
    "expired",
    "expiring",
    "not_yet_effective",
    "binding_mismatch",
    "mode_mismatch",
    "shared_license",
    "restart_pending",
    "registry_incomplete",
    "unregistered",
    "not_deployed",
    "status_mismatch",
)
# Severity of each finding; `expiring` takes the severity of its notice stage.
FINDING_SEVERITY = {
    "expired": "critical",
    "status_mismatch": "critical",
    "registry_incomplete": "info",
    "shared_license": "info",
}
DEFAULT_FINDING_SEVERITY = "warning"

SECONDS_PER_DAY = 86400.0

# Live statuses that contradict a registry license that is valid at probe time.
INVALID_LIVE_STATUSES = ("expired", "inactive", "lost")
# How far the live expired_at may differ from the registry's expiry, in seconds.
EXPIRY_TOLERANCE_SECONDS = SECONDS_PER_DAY


@dataclass(frozen=True)
class InstanceStatus:
    """The evaluated state of one instance, registered, observed or both.

    Fields that do not apply are None: an unregistered instance has no license,
    expiry or stage; an instance that is not observed has no mode.
    """

    cluster: str
    namespace: str
    license: str | None
    environment: str | None
    mode: str | None
    expires: datetime | None
    effective: datetime | None
    days_to_expiry: float | None
    stage: int | None
    severity: str
    findings: tuple[str, ...]
    status: str | None = None
    probe: ProbeResult | None = None
    observation: Observation | None = None
    instance: Instance | None = None
    license_entry: License | None = None
    renewal: Renewal | None = None
    thresholds: tuple[tuple[int, str], ...] = ()
    restart_pending: bool | None = None
    binding_mismatch: bool | None = None
    mode_mismatch: bool | None = None
    missing_fields: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.cluster, self.namespace)

    @property
    def error(self) -> str | None:
        """Why the observed configuration could not be read, if it could not."""
        return self.observation.error_message if self.observation else None

    def finding_severity(self, finding: str) -> str:
        if finding == "expiring":
            return dict(self.thresholds).get(self.stage or -1, "warning")
        return FINDING_SEVERITY.get(finding, DEFAULT_FINDING_SEVERITY)


def notice_thresholds(notice_days: tuple[int, ...]) -> tuple[tuple[int, str], ...]:
    """Map notice thresholds to severities, largest threshold first.

    The smallest threshold is critical; the largest, when there are two or more, is
    info; the others are warning. The default (90, 60, 30, 7) thus maps to info,
    warning, warning, critical.
    """
    ordered = sorted(set(notice_days), reverse=True)
    result = []
    for index, days in enumerate(ordered):
        if index == len(ordered) - 1:
            severity = "critical"
        elif index == 0:
            severity = "info"
        else:
            severity = "warning"
        result.append((days, severity))
    return tuple(result)


def notice_stage(
    days_to_expiry: float, expired: bool, thresholds: tuple[tuple[int, str], ...]
) -> int | None:
    """Return the smallest threshold reached, 0 once expired, None when none."""
    if expired:
        return 0
    reached = [days for days, _ in thresholds if days_to_expiry <= days]
    return min(reached) if reached else None


def evaluate(
    registry: Registry,
    observations: ObservationSet | None,
    now: datetime,
    probes: Mapping[tuple[str, str], ProbeResult] | None = None,
    *,
    cluster: str | None = None,
) -> list[InstanceStatus]:
    """Evaluate every registered and every observed instance at `now`.

    `observations` is None when no source observes anything (registry only).
    `probes` maps (cluster, namespace) to the latest probe of the instance's Dify
    API; an instance without one has `status` None. With `cluster`, registered
    instances of other clusters are left out, so exporters of several clusters
    feeding one Prometheus never publish the same series twice; shared licenses
    are still counted over the whole registry. The result is sorted by cluster and
    namespace.
    """
    probes = probes or {}
    observed = observations.instances if observations else {}
    observed_clusters = observations.clusters if observations else frozenset()
    results = []
    registered_keys = set()
    instances_per_license = Counter(item.license for item in registry.instances)
    for instance in registry.instances:
        if cluster is not None and instance.cluster != cluster:
            continue
        registered_keys.add(instance.key)
        results.append(
            _evaluate_registered(
                registry,
                instance,
                observed.get(instance.key),
                instance.cluster in observed_clusters,
                instances_per_license[instance.license],
                now,
                probes.get(instance.key),
            )
        )
    for key, observation in observed.items():
        if key in registered_keys:
            continue
        results.append(
            InstanceStatus(
                cluster=observation.cluster,
                namespace=observation.namespace,
                license=None,
                environment=None,
                mode=observation.mode,
                expires=None,
                effective=None,
                days_to_expiry=None,
                stage=None,
                severity=DEFAULT_FINDING_SEVERITY,
                findings=("unregistered",),
                observation=observation,
            )
        )
    results.sort(key=lambda status: status.key)
    return results


def _evaluate_registered(
    registry: Registry,
    instance: Instance,
    observation: Observation | None,
    cluster_observed: bool,
    license_instances: int,
    now: datetime,
    probe: ProbeResult | None = None,
) -> InstanceStatus:
    license = registry.licenses[instance.license]
    renewal = registry.renewal_for(instance.license)
    thresholds = notice_thresholds(renewal.notice_days)
    days = (license.expires - now).total_seconds() / SECONDS_PER_DAY
    expired = now >= license.expires
    stage = notice_stage(days, expired, thresholds)
    mode = observation.mode if observation else None

    binding_mismatch = (instance.cluster, instance.namespace) != (
        license.bound_cluster,
        license.bound_namespace,
    )
    mode_mismatch = None if mode is None else mode != license.mode
    restart_pending = _restart_pending(license, observation)
    missing = tuple(
        name
        for name, value in (
            ("owner", instance.owner),
            ("department", instance.department),
            ("requester", renewal.requester),
            ("activator", renewal.activator),
        )
        if not value
    )

    found = set()
    if expired:
        found.add("expired")
    elif stage is not None:
        found.add("expiring")
    if now < license.effective:
        found.add("not_yet_effective")
    if binding_mismatch:
        found.add("binding_mismatch")
    if mode_mismatch:
        found.add("mode_mismatch")
    if license_instances > 1:
        found.add("shared_license")
    if restart_pending:
        found.add("restart_pending")
    if missing:
        found.add("registry_incomplete")
    if observation is None and cluster_observed:
        found.add("not_deployed")
    if probe is not None and _status_mismatch(license, probe):
        found.add("status_mismatch")
    findings = tuple(code for code in FINDINGS if code in found)

    status = InstanceStatus(
        cluster=instance.cluster,
        namespace=instance.namespace,
        license=license.name,
        environment=instance.environment,
        mode=mode,
        expires=license.expires,
        effective=license.effective,
        days_to_expiry=days,
        stage=stage,
        severity="none",
        findings=findings,
        status=probe.status if probe is not None else None,
        probe=probe,
        observation=observation,
        instance=instance,
        license_entry=license,
        renewal=renewal,
        thresholds=thresholds,
        restart_pending=restart_pending,
        binding_mismatch=binding_mismatch,
        mode_mismatch=mode_mismatch,
        missing_fields=missing,
    )
    severity = max(
        (status.finding_severity(code) for code in findings),
        key=SEVERITY_RANK.__getitem__,
        default="none",
    )
    return replace(status, severity=severity)


def _status_mismatch(license: License, probe: ProbeResult) -> bool:
    """Return whether the live license status contradicts the registry.

    The registry's validity is judged at probe time, not at `now`, so a what-if
    `check --now` does not turn a correct live status into a mismatch.
    """
    if probe.status is None:
        return False
    valid = license.effective <= probe.probed_at < license.expires
    if valid and probe.status in INVALID_LIVE_STATUSES:
        return True
    if probe.expired_at is None:
        return False
    drift = abs((probe.expired_at - license.expires).total_seconds())
    return drift > EXPIRY_TOLERANCE_SECONDS


def _restart_pending(license: License, observation: Observation | None) -> bool | None:
    """Return whether the license changed after the enterprise pods started.

    None when pod start times are not observed.
    """
    if observation is None or observation.pods_started is None:
        return None
    started = observation.pods_started
    if observation.license_changed_at and observation.license_changed_at > started:
        return True
    return bool(license.last_refreshed and license.last_refreshed > started)


def severity_at_least(severity: str, bar: str) -> bool:
    """Return whether `severity` is `bar` or more urgent."""
    return SEVERITY_RANK[severity] >= SEVERITY_RANK[bar]
