"""Property-based tests: the registry loader, the date rule and the release decoder.

Hypothesis generates the inputs. The settings stay modest so the file runs in
seconds; `--hypothesis-seed` reproduces a failure.
"""

from __future__ import annotations

import base64
import gzip
import json
import zoneinfo
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dify_license_exporter.evaluate import evaluate
from dify_license_exporter.helmrelease import (
    ReleaseDecodeError,
    decode_release,
    summarize_release,
)
from dify_license_exporter.registry import (
    MAX_YEAR,
    MIN_YEAR,
    RegistryError,
    format_instant,
    load_registry,
)

MODEST = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ZONES = sorted(zoneinfo.available_timezones() - {"Factory", "localtime"})

alias = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\Z")
cluster = st.text(
    st.characters(blacklist_characters="/\\", blacklist_categories=("Cc", "Cs")),
    min_size=1,
    max_size=20,
)
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
# A date-only expiry in MAX_YEAR loads as an instant in the next year, which no
# longer round-trips, so generated dates end a year earlier.
days = st.dates(date(MIN_YEAR, 1, 2), date(MAX_YEAR - 1, 12, 30))


@st.composite
def registries(draw) -> dict[str, Any]:
    """Draw a valid registry document with unique license names and namespaces."""
    names = draw(st.lists(alias, min_size=0, max_size=5, unique=True))
    licenses = []
    for index, name in enumerate(names):
        effective = draw(days)
        expires = draw(st.dates(effective, date(MAX_YEAR - 1, 12, 31)))
        licenses.append(
            {
                "id": f"ID-{index}-{draw(st.text(min_size=1, max_size=8))}",
                "name": name,
                "effective": effective.isoformat(),
                "expires": expires.isoformat(),
                "mode": draw(st.sampled_from(["online", "offline"])),
                "bound_to": {"cluster": draw(cluster), "namespace": draw(alias)},
            }
        )
    instances = []
    if names:
        keys = draw(st.lists(st.tuples(cluster, alias), max_size=6, unique=True))
        for key in keys:
            instances.append(
                {
                    "cluster": key[0],
                    "namespace": key[1],
                    "license": draw(st.sampled_from(names)),
                    "environment": draw(
                        st.sampled_from(["production", "staging", "test", "development"])
                    ),
                    "owner": draw(text),
                    "department": draw(text),
                }
            )
    renewals = []
    for name in draw(st.lists(st.sampled_from(names), unique=True)) if names else []:
        renewals.append(
            {
                "license": name,
                "notice_days": draw(
                    st.lists(st.integers(1, 3650), min_size=1, max_size=5, unique=True)
                ),
                "requester": draw(text),
                "activator": draw(text),
            }
        )
    return {
        "timezone": draw(st.sampled_from(ZONES)),
        "licenses": licenses,
        "instances": instances,
        "renewals": renewals,
    }


class QuotedDumper(yaml.SafeDumper):
    """Dumper that double-quotes every string.

    PyYAML follows YAML 1.1, so it leaves a string such as 0E0 plain, which a
    YAML 1.2 reader takes for a number.
    """


QuotedDumper.add_representer(
    str, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
)


def write(tmp_path, document: Any, name: str = "registry.yaml") -> str:
    path = tmp_path / name
    text = yaml.dump(document, Dumper=QuotedDumper, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def dump_registry(registry) -> dict[str, Any]:
    """Render a loaded Registry back into the registry format, dates as instants."""
    return {
        "timezone": registry.timezone,
        "licenses": [
            {
                "id": item.id,
                "name": item.name,
                "effective": format_instant(item.effective),
                "expires": format_instant(item.expires),
                "mode": item.mode,
                "bound_to": {
                    "cluster": item.bound_cluster,
                    "namespace": item.bound_namespace,
                },
            }
            for item in registry.licenses.values()
        ],
        "instances": [
            {
                "cluster": item.cluster,
                "namespace": item.namespace,
                "license": item.license,
                "environment": item.environment,
                "owner": item.owner,
                "department": item.department,
            }
            for item in registry.instances
        ],
        "renewals": [
            {
                "license": item.license,
                "notice_days": list(item.notice_days),
                "requester": item.requester,
                "activator": item.activator,
            }
            for item in registry.renewals.values()
        ],
    }


def midnight_after(day: date, zone: zoneinfo.ZoneInfo) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)


@MODEST
@given(document=registries())
def test_valid_registry_loads_and_round_trips(tmp_path_factory, document):
    folder = tmp_path_factory.mktemp("registry")
    registry = load_registry([write(folder, document)])
    zone = zoneinfo.ZoneInfo(document["timezone"])

    assert registry.timezone == document["timezone"]
    assert sorted(registry.licenses) == sorted(item["name"] for item in document["licenses"])
    for item in document["licenses"]:
        loaded = registry.licenses[item["name"]]
        effective = date.fromisoformat(item["effective"])
        expires = date.fromisoformat(item["expires"])
        start = datetime.combine(effective, time(0), tzinfo=zone)
        assert loaded.effective == start.astimezone(timezone.utc)
        assert loaded.expires == midnight_after(expires, zone).astimezone(timezone.utc)
        assert loaded.id == item["id"]
    assert [item.key for item in registry.instances] == [
        (item["cluster"], item["namespace"]) for item in document["instances"]
    ]
    for item in document["renewals"]:
        renewal = registry.renewal_for(item["license"])
        assert renewal.notice_days == tuple(sorted(item["notice_days"], reverse=True))

    again = load_registry([write(folder, dump_registry(registry), "again.yaml")])
    assert again == registry


# Each field with values that are wrong for it whatever else the registry holds.
not_text = st.one_of(
    st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
    st.lists(st.integers(), max_size=2), st.dictionaries(alias, st.integers(), max_size=2),
)
WRONG_VALUES = {
    "licenses[0].id": st.one_of(not_text, st.just("")),
    "licenses[0].name": st.one_of(not_text, st.from_regex(r"\A[A-Z_ ./]+\Z")),
    "licenses[0].effective": st.one_of(not_text, st.from_regex(r"\A[a-z ]{1,10}\Z")),
    "licenses[0].expires": st.one_of(not_text, st.from_regex(r"\A\d{4}-(1[3-9]|00)-\d\d\Z")),
    "licenses[0].mode": st.one_of(not_text, text.filter(lambda v: v not in ("online", "offline"))),
    "licenses[0].bound_to": st.one_of(
        st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2)
    ),
    "instances[0].cluster": st.one_of(not_text, st.just(""), st.just("a/b")),
    "instances[0].namespace": st.one_of(not_text, st.from_regex(r"\A[A-Z_ ./]+\Z")),
    "instances[0].license": st.one_of(not_text, alias.filter(lambda v: v != "prod-main")),
    "instances[0].environment": st.one_of(
        not_text,
        text.filter(lambda v: v not in ("production", "staging", "test", "development")),
    ),
    "instances[0].owner": not_text.filter(lambda v: v is not None),
    "renewals[0].notice_days": st.one_of(
        st.integers(), st.text(max_size=5), st.just([]),
        st.lists(st.integers(max_value=0), min_size=1, max_size=3),
        st.lists(st.text(max_size=3), min_size=1, max_size=3),
    ),
    "renewals[0].requester": not_text.filter(lambda v: v is not None),
    "timezone": st.one_of(not_text, st.from_regex(r"\A[A-Z][a-z]{2,8}/[A-Z][a-z]{2,8}x\Z")),
}
BASE = {
    "timezone": "UTC",
    "licenses": [
        {
            "id": "ID-0001",
            "name": "prod-main",
            "effective": "2026-01-01",
            "expires": "2026-12-31",
            "mode": "online",
            "bound_to": {"cluster": "prod-cn", "namespace": "dify"},
        }
    ],
    "instances": [
        {
            "cluster": "prod-cn",
            "namespace": "dify",
            "license": "prod-main",
            "environment": "production",
        }
    ],
    "renewals": [{"license": "prod-main"}],
}


def set_field(document: dict, path: str, value: Any) -> dict:
    document = json.loads(json.dumps(document))
    if path == "timezone":
        document["timezone"] = value
        return document
    section, rest = path.split("[0].")
    document[section][0][rest] = value
    return document


@MODEST
@given(data=st.data(), path=st.sampled_from(sorted(WRONG_VALUES)))
def test_invalid_value_names_its_field(tmp_path_factory, data, path):
    wrong = data.draw(WRONG_VALUES[path], label="value")
    folder = tmp_path_factory.mktemp("invalid")
    try:
        load_registry([write(folder, set_field(BASE, path, wrong))])
    except RegistryError as exc:
        paths = [problem.path for problem in exc.problems]
        assert any(p == path or p.startswith((path + ".", path + "[")) for p in paths), paths
        assert all("ID-0001" not in str(problem) for problem in exc.problems)
    else:
        raise AssertionError(f"{path}={wrong!r} was accepted")


@MODEST
@given(data=st.data(), key=st.sampled_from(["effective", "expires", "last_refreshed"]))
def test_any_text_as_date_loads_or_names_field(tmp_path_factory, data, key):
    """Text that looks roughly like a date either loads or names the field."""
    candidate = data.draw(
        st.one_of(
            st.from_regex(r"\A\d{1,5}-\d{1,3}-\d{1,3}([Tt ]\d\d:\d\d(:\d\d(\.\d+)?)?"
                          r"([Zz]|[+-]\d\d:\d\d)?)?\Z"),
            st.text(max_size=30),
        ),
        label="value",
    )
    folder = tmp_path_factory.mktemp("dates")
    try:
        load_registry([write(folder, set_field(BASE, f"licenses[0].{key}", candidate))])
    except RegistryError as exc:
        assert any(p.path == f"licenses[0].{key}" for p in exc.problems) or any(
            p.path == "licenses[0].effective" for p in exc.problems
        )


@MODEST
@given(day=st.dates(date(MIN_YEAR, 1, 2), date(MAX_YEAR, 12, 30)), zone_name=st.sampled_from(ZONES))
def test_expiry_is_first_instant_of_next_day(tmp_path_factory, day, zone_name):
    document = set_field(BASE, "licenses[0].expires", day.isoformat())
    document["licenses"][0]["effective"] = "1970-01-01"
    document["timezone"] = zone_name
    folder = tmp_path_factory.mktemp("expiry")
    expires = load_registry([write(folder, document)]).licenses["prod-main"].expires
    zone = zoneinfo.ZoneInfo(zone_name)

    # Where 00:00 exists it is the instant; in a DST gap at midnight it is the
    # first instant of the next day, which fold=0 resolution also gives.
    assert expires == midnight_after(day, zone).astimezone(timezone.utc)
    assert (expires - timedelta(microseconds=1)).astimezone(zone).date() == day
    assert expires.astimezone(zone).date() > day


@MODEST
@given(
    day=st.dates(date(1971, 1, 2), date(9990, 12, 30)),
    zone_name=st.sampled_from(ZONES),
    offset=st.floats(min_value=1e-3, max_value=86400 * 400),
)
def test_days_to_expiry_sign_flips_at_instant(tmp_path_factory, day, zone_name, offset):
    document = set_field(BASE, "licenses[0].expires", day.isoformat())
    document["licenses"][0]["effective"] = "1970-01-01"
    document["timezone"] = zone_name
    folder = tmp_path_factory.mktemp("flip")
    registry = load_registry([write(folder, document)])
    expires = registry.licenses["prod-main"].expires

    before = evaluate(registry, None, expires - timedelta(seconds=offset))[0]
    at = evaluate(registry, None, expires)[0]
    after = evaluate(registry, None, expires + timedelta(seconds=offset))[0]

    assert before.days_to_expiry > 0
    assert "expired" not in before.findings
    assert at.days_to_expiry == 0
    assert "expired" in at.findings
    assert after.days_to_expiry < 0
    assert "expired" in after.findings
    assert abs(before.days_to_expiry - offset / 86400) < 1e-6


# Helm release decoder -----------------------------------------------------------


def layered(raw: bytes) -> bytes:
    return base64.b64encode(base64.b64encode(raw))


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(text, children, max_size=4)
    ),
    max_leaves=20,
)
release_like = st.fixed_dictionaries(
    {},
    optional={
        "name": json_values,
        "namespace": json_values,
        "version": json_values,
        "info": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {}, optional={"status": json_values, "last_deployed": json_values}
            ),
        ),
        "chart": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "metadata": st.one_of(
                        json_values,
                        st.fixed_dictionaries({}, optional={"name": json_values}),
                    ),
                    "values": json_values,
                },
            ),
        ),
        "config": json_values,
    },
)


def decode_and_summarize(payload: bytes | str) -> None:
    """Decode a payload; anything but success or ReleaseDecodeError fails the test."""
    try:
        summarize_release(decode_release(payload))
    except ReleaseDecodeError as exc:
        assert str(exc)


@MODEST
@given(payload=st.one_of(st.binary(max_size=512), st.text(max_size=512)))
def test_release_decoder_random_bytes(payload):
    decode_and_summarize(payload)


@MODEST
@given(raw=st.binary(max_size=512))
def test_release_decoder_random_inner_layers(raw):
    decode_and_summarize(layered(raw))
    decode_and_summarize(layered(gzip.compress(raw, mtime=0)))
    decode_and_summarize(layered(b"\x1f\x8b\x08" + raw))


@MODEST
@given(release=release_like, cut=st.integers(min_value=0, max_value=400))
def test_release_decoder_random_release_json(release, cut):
    raw = gzip.compress(json.dumps(release).encode(), mtime=0)
    decode_and_summarize(layered(raw))
    decode_and_summarize(layered(raw[:cut]))
    assume(cut < len(raw))
    try:
        decode_release(layered(raw[:cut]))
    except ReleaseDecodeError:
        pass
    else:
        raise AssertionError("a truncated gzip stream was accepted")
