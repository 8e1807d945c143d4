"""Decode Helm v3 release Secrets into the few fields the exporter needs.

Helm stores a release in a Secret of type `helm.sh/release.v1` named
`sh.helm.release.v1.<release>.v<revision>`, labelled `owner=helm`, `name`, `status`
and `version`. Its `data.release` is base64 (the Secret encoding) of a string that is
itself base64 of the gzip-compressed release JSON. Example:

    summary = summarize_release(decode_release(secret["data"]["release"]))
    summary.values  # {"enterprise": {"licenseMode": "offline"}}
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

GZIP_MAGIC = b"\x1f\x8b\x08"
# A Secret holds at most 1 MiB, and release JSON compresses about 5 to 10 times,
# so a larger payload is not a Helm release.
MAX_DECODED_BYTES = 64 * 1024 * 1024
# The Helm values read by the exporter; every other key is dropped after decoding.
KEPT_VALUES = {"enterprise": ("enabled", "licenseMode", "licenseServer")}


class ReleaseDecodeError(ValueError):
    """A release payload that is not base64, gzip and JSON in Helm's layout."""


@dataclass(frozen=True, slots=True)
class ReleaseSummary:
    """One Helm release revision, reduced to what the license findings need.

    `values` is the user config merged over the chart's default values, keeping only
    the keys in KEPT_VALUES. `last_deployed` is None when Helm recorded no time.
    """

    name: str
    namespace: str
    revision: int
    status: str
    chart_name: str
    chart_version: str
    last_deployed: datetime | None
    values: dict[str, Any]

    @property
    def license_settings(self) -> tuple[Any, Any]:
        """Return (licenseMode, licenseServer): a change to either needs a restart."""
        enterprise = self.values.get("enterprise")
        if not isinstance(enterprise, dict):
            return (None, None)
        return (enterprise.get("licenseMode"), enterprise.get("licenseServer"))


def decode_release(secret_value: str | bytes) -> dict[str, Any]:
    """Decode a Secret's `data.release` value into the release JSON object.

    Raises ReleaseDecodeError naming the layer that failed.
    """
    try:
        release_text = base64.b64decode(secret_value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ReleaseDecodeError(f"Secret data is not base64: {exc}") from None
    try:
        payload = base64.b64decode(release_text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ReleaseDecodeError(f"release string is not base64: {exc}") from None
    del release_text

    # Helm has written gzip since v3.0; older payloads are plain JSON.
    if payload.startswith(GZIP_MAGIC):
        inflater = zlib.decompressobj(wbits=31)
        try:
            payload = inflater.decompress(payload, MAX_DECODED_BYTES + 1)
        except zlib.error as exc:
            raise ReleaseDecodeError(f"release is not valid gzip: {exc}") from None
        if len(payload) > MAX_DECODED_BYTES or inflater.unconsumed_tail:
            raise ReleaseDecodeError(
                f"release is larger than {MAX_DECODED_BYTES} bytes once decompressed"
            )
        if not inflater.eof:
            raise ReleaseDecodeError("release gzip stream is truncated")
    try:
        release = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ReleaseDecodeError(f"release is not valid JSON: {exc}") from None
    except RecursionError:
        raise ReleaseDecodeError("release JSON is nested too deeply") from None
    if not isinstance(release, dict):
        raise ReleaseDecodeError(
            f"release JSON must be an object, got {type(release).__name__}"
        )
    return release


def summarize_release(release: dict[str, Any]) -> ReleaseSummary:
    """Reduce a decoded release to a ReleaseSummary.

    Raises ReleaseDecodeError when a field Helm always writes is missing or has the
    wrong type.
    """
    chart = _mapping(release, "chart")
    metadata = _mapping(chart, "metadata", "chart.")
    info = release.get("info") or {}
    if not isinstance(info, dict):
        raise ReleaseDecodeError("release field info must be an object")
    revision = release.get("version")
    if not isinstance(revision, int) or isinstance(revision, bool):
        raise ReleaseDecodeError(
            f"release field version must be an integer, got {revision!r}"
        )

    defaults = chart.get("values") or {}
    config = release.get("config") or {}
    if not isinstance(defaults, dict) or not isinstance(config, dict):
        raise ReleaseDecodeError("chart.values and config must be objects")
    values = keep_license_values(merge_values(defaults, config))

    return ReleaseSummary(
        name=_text(release, "name"),
        namespace=_text(release, "namespace"),
        revision=revision,
        status=str(info.get("status") or ""),
        chart_name=_text(metadata, "name", "chart.metadata."),
        chart_version=str(metadata.get("version") or ""),
        last_deployed=parse_helm_time(info.get("last_deployed")),
        values=values,
    )


def merge_values(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Merge user values over chart defaults the way Helm coalesces them.

    Nested mappings merge key by key, any other override replaces the default, and
    an override of null deletes the key.
    """
    merged = dict(defaults)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


def keep_license_values(values: dict[str, Any]) -> dict[str, Any]:
    """Return the KEPT_VALUES keys of merged values, so the rest can be freed."""
    kept: dict[str, Any] = {}
    for section, keys in KEPT_VALUES.items():
        if section not in values:
            continue
        content = values[section]
        if isinstance(content, dict):
            kept[section] = {key: content[key] for key in keys if key in content}
        else:
            # A scalar is kept as found and a list emptied, so the caller can still
            # report the wrong type.
            kept[section] = [] if isinstance(content, list) else content
    return kept


def parse_helm_time(value: Any) -> datetime | None:
    """Parse a Go time in RFC 3339 form; None for absent or Go's zero time."""
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ReleaseDecodeError(f"invalid time {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise ReleaseDecodeError(f"time without a UTC offset: {value[:40]!r}")
    return parsed


def _mapping(data: dict[str, Any], key: str, prefix: str = "") -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise ReleaseDecodeError(f"release field {prefix}{key} must be an object")
    return value


def _text(data: dict[str, Any], key: str, prefix: str = "") -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ReleaseDecodeError(
            f"release field {prefix}{key} must be a non-empty string"
        )
    return value
