"""Date rule: a date-only expiry is the last valid day in the registry's time zone."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from dify_license_exporter.evaluate import evaluate
from dify_license_exporter.registry import load_registry

TEMPLATE = """\
timezone: {zone}
licenses:
  - id: X-1
    name: main
    effective: 2026-01-01
    expires: {expires}
    mode: online
    bound_to: {{cluster: c, namespace: dify}}
instances:
  - cluster: c
    namespace: dify
    license: main
    environment: test
"""


def status_at(write_file, zone: str, expires: str, now: datetime):
    path = write_file("r.yaml", TEMPLATE.format(zone=zone, expires=expires))
    [status] = evaluate(load_registry([path]), None, now)
    return status


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("zone", "expires", "instant"),
    [
        ("UTC", "2026-12-31", utc(2027, 1, 1)),
        ("Asia/Shanghai", "2026-12-31", utc(2026, 12, 31, 16)),
        # Europe/Berlin switches to summer time on 2026-03-29: 00:00 of the 30th is
        # 22:00 UTC on the 29th, not 23:00 as in winter.
        ("Europe/Berlin", "2026-03-29", utc(2026, 3, 29, 22)),
        ("Europe/Berlin", "2026-03-28", utc(2026, 3, 28, 23)),
        # America/New_York returns to standard time on 2026-11-01.
        ("America/New_York", "2026-11-01", utc(2026, 11, 2, 5)),
        ("America/New_York", "2026-10-31", utc(2026, 11, 1, 4)),
    ],
)
def test_expiry_instant_in_zone(write_file, zone, expires, instant):
    status = status_at(write_file, zone, expires, instant - timedelta(days=1))
    assert status.expires == instant


@pytest.mark.parametrize(
    ("zone", "instant"),
    [
        ("UTC", utc(2027, 1, 1)),
        ("Asia/Shanghai", utc(2026, 12, 31, 16)),
    ],
)
def test_last_second_valid_first_second_expired(write_file, zone, instant):
    last = status_at(write_file, zone, "2026-12-31", instant - timedelta(seconds=1))
    assert "expired" not in last.findings
    assert last.stage == 7
    assert last.severity == "critical"
    assert last.days_to_expiry == pytest.approx(1 / 86400)

    first = status_at(write_file, zone, "2026-12-31", instant)
    assert first.findings[0] == "expired"
    assert first.stage == 0
    assert first.days_to_expiry == 0.0

    after = status_at(write_file, zone, "2026-12-31", instant + timedelta(seconds=1))
    assert after.days_to_expiry == pytest.approx(-1 / 86400)


def test_dst_day_is_23_hours(write_file):
    # Expiry at 00:00 on 2026-03-30 in Berlin (22:00 UTC on the 29th): at 00:00
    # Berlin on the 29th (23:00 UTC on the 28th), only 23 hours remain.
    status = status_at(write_file, "Europe/Berlin", "2026-03-29", utc(2026, 3, 28, 23))
    assert status.days_to_expiry == pytest.approx(23 / 24)


def test_date_time_expiry_is_exact_instant(write_file):
    status = status_at(
        write_file, "Asia/Shanghai", "2026-12-31T18:00:00+08:00", utc(2026, 12, 31, 9)
    )
    assert status.expires == utc(2026, 12, 31, 10)
    assert status.days_to_expiry == pytest.approx(1 / 24)


def test_date_time_without_offset_read_in_zone(write_file):
    status = status_at(
        write_file, "Asia/Shanghai", "2026-12-31T18:00:00", utc(2026, 12, 1)
    )
    assert status.expires == utc(2026, 12, 31, 10)


def test_effective_date_starts_at_midnight_in_zone(write_file):
    path = write_file(
        "r.yaml",
        TEMPLATE.format(zone="Asia/Shanghai", expires="2027-12-31").replace(
            "effective: 2026-01-01", "effective: 2027-01-01"
        ),
    )
    registry = load_registry([path])
    start = utc(2026, 12, 31, 16)
    [before] = evaluate(registry, None, start - timedelta(seconds=1))
    [at] = evaluate(registry, None, start)
    assert "not_yet_effective" in before.findings
    assert "not_yet_effective" not in at.findings
