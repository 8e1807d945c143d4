"""evaluate(): notice stages, severities and every finding."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from dify_license_exporter.evaluate import evaluate, notice_thresholds
from dify_license_exporter.observations import Observation, ObservationSet
from dify_license_exporter.registry import load_registry

EXPIRY = datetime(2027, 1, 1, tzinfo=timezone.utc)
# A day on which no license of REGISTRY has a notice stage or is not yet effective.
CALM = datetime(2026, 6, 1, tzinfo=timezone.utc)

REGISTRY = """\
licenses:
  - id: X-1
    name: main
    effective: 2026-01-01
    expires: 2026-12-31
    mode: online
    bound_to: {cluster: c1, namespace: dify}
  - id: X-2
    name: custom
    effective: 2026-01-01
    expires: 2026-12-31
    mode: offline
    bound_to: {cluster: c1, namespace: dify-custom}
  - id: X-3
    name: shared
    effective: 2026-01-01
    expires: 2028-12-31
    mode: online
    bound_to: {cluster: c2, namespace: team-a}
  - id: X-4
    name: future
    effective: 2027-06-01
    expires: 2028-06-01
    mode: online
    bound_to: {cluster: c2, namespace: later}
instances:
  - {cluster: c1, namespace: dify, license: main, environment: production,
     owner: Jane, department: AI}
  - {cluster: c1, namespace: dify-custom, license: custom, environment: test,
     owner: Jane, department: AI}
  - {cluster: c2, namespace: team-a, license: shared, environment: staging,
     owner: Ann, department: Sales}
  - {cluster: c2, namespace: team-b, license: shared, environment: staging,
     owner: Bob, department: Sales}
  - {cluster: c2, namespace: later, license: future, environment: development,
     department: Labs}
renewals:
  - {license: main, requester: buy@example.com, activator: sre@example.com}
  - {license: custom, notice_days: [45, 14, 3], requester: r, activator: a}
  - {license: shared, requester: r, activator: a}
  - {license: future, notice_days: [10], requester: r}
"""


@pytest.fixture
def registry(write_file):
    return load_registry([write_file("registry.yaml", REGISTRY)])


def by_namespace(statuses):
    return {status.namespace: status for status in statuses}


def at_days_before(days: float) -> datetime:
    return EXPIRY - timedelta(days=days)


def test_default_thresholds_map_to_design_severities():
    assert notice_thresholds((90, 60, 30, 7)) == (
        (90, "info"),
        (60, "warning"),
        (30, "warning"),
        (7, "critical"),
    )


def test_custom_thresholds_smallest_critical_largest_info():
    assert notice_thresholds((3, 45, 14)) == ((45, "info"), (14, "warning"), (3, "critical"))
    assert notice_thresholds((10,)) == ((10, "critical"),)
    assert notice_thresholds((30, 7)) == ((30, "info"), (7, "critical"))


@pytest.mark.parametrize(
    ("days_left", "stage", "severity"),
    [
        (90.0001, None, "none"),
        (90, 90, "info"),
        (60.0001, 90, "info"),
        (60, 60, "warning"),
        (30.0001, 60, "warning"),
        (30, 30, "warning"),
        (7.0001, 30, "warning"),
        (7, 7, "critical"),
        (0.0001, 7, "critical"),
        (0, 0, "critical"),
        (-5, 0, "critical"),
    ],
)
def test_default_stage_boundaries(registry, days_left, stage, severity):
    status = by_namespace(evaluate(registry, None, at_days_before(days_left)))["dify"]
    assert status.stage == stage
    assert status.severity == severity
    if stage == 0:
        assert status.findings == ("expired",)
    elif stage is None:
        assert status.findings == ()
    else:
        assert status.findings == ("expiring",)


@pytest.mark.parametrize(
    ("days_left", "stage", "severity"),
    [
        (45.0001, None, "none"),
        (45, 45, "info"),
        (14.0001, 45, "info"),
        (14, 14, "warning"),
        (3.0001, 14, "warning"),
        (3, 3, "critical"),
        (0, 0, "critical"),
    ],
)
def test_custom_stage_boundaries(registry, days_left, stage, severity):
    status = by_namespace(evaluate(registry, None, at_days_before(days_left)))[
        "dify-custom"
    ]
    assert status.stage == stage
    assert status.severity == severity


def test_not_yet_effective(registry):
    now = datetime(2027, 5, 31, 23, 59, 59, tzinfo=timezone.utc)
    status = by_namespace(evaluate(registry, None, now))["later"]
    assert "not_yet_effective" in status.findings
    status = by_namespace(evaluate(registry, None, now + timedelta(seconds=1)))["later"]
    assert "not_yet_effective" not in status.findings


def test_shared_license_and_binding_mismatch(registry):
    statuses = by_namespace(evaluate(registry, None, CALM))
    assert statuses["team-a"].findings == ("shared_license",)
    assert statuses["team-a"].severity == "info"
    assert statuses["team-b"].findings == ("binding_mismatch", "shared_license")
    assert statuses["team-b"].severity == "warning"
    assert statuses["team-b"].binding_mismatch is True


def test_registry_incomplete_lists_missing_fields(registry):
    status = by_namespace(evaluate(registry, None, CALM))["later"]
    assert status.missing_fields == ("owner", "activator")
    assert "registry_incomplete" in status.findings


def test_missing_renewal_entry_is_incomplete(write_file):
    text = REGISTRY.split("renewals:")[0]
    registry = load_registry([write_file("r.yaml", text)])
    status = by_namespace(evaluate(registry, None, CALM))["dify"]
    assert status.missing_fields == ("requester", "activator")
    assert status.findings == ("registry_incomplete",)
    assert status.severity == "info"


def observed(*observations: Observation, clusters=("c1", "c2"), pods=False):
    return ObservationSet(
        source="test",
        clusters=frozenset(clusters),
        instances={o.key: o for o in observations},
        observes_pods=pods,
    )


def test_mode_mismatch_from_observation(registry):
    observations = observed(
        Observation("c1", "dify", mode="offline"),
        Observation("c1", "dify-custom", mode="offline"),
    )
    statuses = by_namespace(evaluate(registry, observations, CALM))
    assert statuses["dify"].mode == "offline"
    assert statuses["dify"].findings[0] == "mode_mismatch"
    assert statuses["dify"].mode_mismatch is True
    assert statuses["dify-custom"].mode_mismatch is False


def test_not_deployed_only_in_observed_clusters(registry):
    observations = observed(Observation("c1", "dify", mode="online"), clusters=("c1",))
    statuses = by_namespace(evaluate(registry, observations, CALM))
    assert statuses["dify-custom"].findings == ("not_deployed",)
    assert statuses["dify-custom"].mode is None
    assert "not_deployed" not in statuses["team-a"].findings


def test_not_deployed_never_without_source(registry):
    statuses = evaluate(registry, None, CALM)
    assert all("not_deployed" not in status.findings for status in statuses)


def test_unregistered_instance(registry):
    observations = observed(Observation("c1", "rogue", mode="online"))
    statuses = by_namespace(evaluate(registry, observations, CALM))
    rogue = statuses["rogue"]
    assert rogue.license is None
    assert rogue.environment is None
    assert rogue.expires is None
    assert rogue.days_to_expiry is None
    assert rogue.stage is None
    assert rogue.findings == ("unregistered",)
    assert rogue.severity == "warning"


def test_restart_pending_when_license_changed_after_pod_start(registry):
    pod_start = datetime(2026, 6, 1, tzinfo=timezone.utc)
    changed = Observation(
        "c1",
        "dify",
        mode="online",
        pods_started=pod_start,
        license_changed_at=pod_start + timedelta(minutes=5),
    )
    statuses = by_namespace(
        evaluate(registry, observed(changed, pods=True), CALM)
    )
    assert statuses["dify"].restart_pending is True
    assert statuses["dify"].findings == ("restart_pending",)
    assert statuses["dify"].severity == "warning"


def test_restart_pending_clears_after_restart(registry):
    changed_at = datetime(2026, 6, 1, tzinfo=timezone.utc)
    restarted = Observation(
        "c1",
        "dify",
        mode="online",
        pods_started=changed_at + timedelta(minutes=1),
        license_changed_at=changed_at,
    )
    statuses = by_namespace(
        evaluate(registry, observed(restarted, pods=True), CALM)
    )
    assert statuses["dify"].restart_pending is False
    assert statuses["dify"].findings == ()


def test_restart_pending_from_registry_last_refreshed(write_file):
    text = REGISTRY.replace(
        "    mode: online\n    bound_to: {cluster: c1, namespace: dify}",
        "    mode: online\n    bound_to: {cluster: c1, namespace: dify}\n"
        "    last_refreshed: 2026-06-02T09:30:00Z",
    )
    registry = load_registry([write_file("r.yaml", text)])
    before_refresh = Observation(
        "c1", "dify", mode="online", pods_started=datetime(2026, 6, 2, 9, tzinfo=timezone.utc)
    )
    after_refresh = Observation(
        "c1", "dify", mode="online", pods_started=datetime(2026, 6, 2, 10, tzinfo=timezone.utc)
    )
    now = CALM
    [first] = [s for s in evaluate(registry, observed(before_refresh), now) if s.namespace == "dify"]
    [second] = [s for s in evaluate(registry, observed(after_refresh), now) if s.namespace == "dify"]
    assert first.restart_pending is True
    assert second.restart_pending is False


def test_expired_and_expiring_never_together(registry):
    status = by_namespace(evaluate(registry, None, EXPIRY))["dify"]
    assert status.findings == ("expired",)


def test_severity_is_highest_finding(registry):
    observations = observed(Observation("c1", "dify", mode="offline"))
    status = by_namespace(evaluate(registry, observations, at_days_before(80)))["dify"]
    assert status.findings == ("expiring", "mode_mismatch")
    assert status.severity == "warning"


def test_observation_error_keeps_registry_data(registry):
    broken = Observation(
        "c1",
        "dify",
        error_reason="values_invalid",
        error_message="values.yaml: invalid YAML at line 2",
    )
    status = by_namespace(evaluate(registry, observed(broken), at_days_before(20)))["dify"]
    assert status.mode is None
    assert status.mode_mismatch is None
    assert status.error == "values.yaml: invalid YAML at line 2"
    assert status.findings == ("expiring",)
    assert status.stage == 30


def test_evaluate_is_sorted_by_cluster_and_namespace(registry):
    keys = [s.key for s in evaluate(registry, None, CALM)]
    assert keys == sorted(keys)


def test_cluster_scope_leaves_out_other_clusters(registry):
    statuses = evaluate(registry, None, CALM, cluster="c2")
    assert [s.namespace for s in statuses] == ["later", "team-a", "team-b"]
    # Sharing is still counted over the whole registry.
    assert "shared_license" in statuses[1].findings
