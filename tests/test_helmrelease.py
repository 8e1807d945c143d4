"""Helm release decoding: the Secret layers, the summary and the values merge."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import datetime, timedelta, timezone

import pytest
from dify_license_exporter import helmrelease
from dify_license_exporter.helmrelease import (
    ReleaseDecodeError,
    decode_release,
    merge_values,
    parse_helm_time,
    summarize_release,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from k8s_simulator import helm_release, helm_time, release_secret

DEPLOYED = datetime(2026, 5, 1, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=8)))


def secret_value(release: dict) -> str:
    return release_secret(release)["data"]["release"]


def test_decode_secret_layers():
    release = helm_release(
        "dify",
        "team-a",
        3,
        "deployed",
        {"enterprise": {"licenseMode": "offline"}},
        DEPLOYED,
    )
    decoded = decode_release(secret_value(release))
    assert decoded == release


def test_decode_plain_json_release():
    # Payloads without gzip are plain JSON under Helm's base64.
    release = helm_release("dify", "team-a", 1, "deployed", {}, DEPLOYED)
    inner = base64.b64encode(json.dumps(release).encode())
    assert decode_release(base64.b64encode(inner)) == release


def test_summary_fields():
    release = helm_release(
        "dify-prod",
        "team-a",
        7,
        "deployed",
        {"enterprise": {"licenseMode": "offline"}, "api": {"replicas": 3}},
        DEPLOYED,
        chart_version="3.4.1",
    )
    summary = summarize_release(decode_release(secret_value(release)))
    assert summary.name == "dify-prod"
    assert summary.namespace == "team-a"
    assert summary.revision == 7
    assert summary.status == "deployed"
    assert summary.chart_name == "dify"
    assert summary.chart_version == "3.4.1"
    assert summary.last_deployed == DEPLOYED
    assert summary.values == {
        "enterprise": {
            "enabled": True,
            "licenseMode": "offline",
            "licenseServer": "https://licenses.dify.ai",
        }
    }
    assert summary.license_settings == ("offline", "https://licenses.dify.ai")


def test_summary_drops_other_values():
    release = helm_release(
        "dify",
        "team-a",
        1,
        "deployed",
        {"enterprise": {"licenseMode": "online", "image": {"tag": "1.2"}}},
        DEPLOYED,
        chart_values={"enterprise": {"enabled": True}, "web": {"replicas": 1}},
    )
    summary = summarize_release(release)
    assert summary.values == {"enterprise": {"enabled": True, "licenseMode": "online"}}


def test_summary_keeps_wrong_enterprise_type():
    release = helm_release(
        "dify", "team-a", 1, "deployed", {"enterprise": "yes"}, DEPLOYED
    )
    assert summarize_release(release).values == {"enterprise": "yes"}
    assert summarize_release(release).license_settings == (None, None)


def test_merge_values_nested_override():
    defaults = {"enterprise": {"enabled": True, "licenseMode": "online"}, "a": 1}
    overrides = {"enterprise": {"licenseMode": "offline"}, "b": 2}
    assert merge_values(defaults, overrides) == {
        "enterprise": {"enabled": True, "licenseMode": "offline"},
        "a": 1,
        "b": 2,
    }


def test_merge_values_null_deletes_key():
    defaults = {"enterprise": {"licenseServer": "https://x", "licenseMode": "online"}}
    merged = merge_values(defaults, {"enterprise": {"licenseServer": None}})
    assert merged == {"enterprise": {"licenseMode": "online"}}


def test_merge_values_scalar_replaces_mapping():
    assert merge_values({"enterprise": {"enabled": True}}, {"enterprise": False}) == {
        "enterprise": False
    }


def test_merge_values_leaves_inputs_unchanged():
    defaults = {"enterprise": {"licenseMode": "online"}}
    merge_values(defaults, {"enterprise": {"licenseMode": "offline"}})
    assert defaults == {"enterprise": {"licenseMode": "online"}}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not base64!", "Secret data is not base64"),
        (base64.b64encode(b"not base64!").decode(), "release string is not base64"),
        (
            base64.b64encode(base64.b64encode(b"\x1f\x8b\x08garbage")).decode(),
            "release is not valid gzip",
        ),
        (
            base64.b64encode(base64.b64encode(gzip.compress(b"{not json"))).decode(),
            "release is not valid JSON",
        ),
        (
            base64.b64encode(base64.b64encode(gzip.compress(b"[1, 2]"))).decode(),
            "release JSON must be an object, got list",
        ),
    ],
)
def test_decode_rejects_bad_layer(value, message):
    with pytest.raises(ReleaseDecodeError) as caught:
        decode_release(value)
    assert str(caught.value).startswith(message)


def test_decode_rejects_oversized_payload(monkeypatch):
    monkeypatch.setattr(helmrelease, "MAX_DECODED_BYTES", 1000)
    payload = gzip.compress(json.dumps({"manifest": "x" * 5000}).encode())
    value = base64.b64encode(base64.b64encode(payload))
    with pytest.raises(ReleaseDecodeError) as caught:
        decode_release(value)
    assert str(caught.value) == "release is larger than 1000 bytes once decompressed"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("chart"), "release field chart must be an object"),
        (
            lambda r: r["chart"]["metadata"].pop("name"),
            "release field chart.metadata.name must be a non-empty string",
        ),
        (lambda r: r.update(version="3"), "release field version must be an integer"),
        (lambda r: r.update(config=[1]), "chart.values and config must be objects"),
        (
            lambda r: r.update(namespace=""),
            "release field namespace must be a non-empty",
        ),
        (
            lambda r: r["info"].update(last_deployed="yesterday"),
            "invalid time 'yesterday'",
        ),
    ],
)
def test_summary_rejects_bad_field(change, message):
    release = helm_release("dify", "team-a", 1, "deployed", {}, DEPLOYED)
    change(release)
    with pytest.raises(ReleaseDecodeError) as caught:
        summarize_release(release)
    assert str(caught.value).startswith(message)


def test_parse_helm_time_nanoseconds():
    parsed = parse_helm_time("2026-05-01T10:00:00.123456789+08:00")
    assert parsed == DEPLOYED


def test_parse_helm_time_zero_is_none():
    assert parse_helm_time("0001-01-01T00:00:00Z") is None
    assert parse_helm_time("") is None
    assert parse_helm_time(None) is None


def test_helm_time_round_trip():
    assert parse_helm_time(helm_time(DEPLOYED)) == DEPLOYED
    assert helm_time(DEPLOYED) == "2026-05-01T10:00:00.123456+08:00"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_decode_arbitrary_input_raises_only_decode_error(value):
    try:
        release = decode_release(value)
    except ReleaseDecodeError:
        return
    assert isinstance(release, dict)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=5), children, max_size=3)
        ),
        max_leaves=10,
    )
)
def test_summary_arbitrary_json_raises_only_decode_error(document):
    payload = base64.b64encode(gzip.compress(json.dumps(document).encode()))
    try:
        summarize_release(decode_release(base64.b64encode(payload)))
    except ReleaseDecodeError:
        pass
