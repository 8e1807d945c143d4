"""Files source: Helm values files laid out as DIR/<cluster>/<namespace>.yaml.

Each file is the output of `helm get values -n <namespace> <release> -o yaml`, with
or without `--all`. Only `enterprise.enabled`, `enterprise.licenseMode` and
`enterprise.licenseServer` are read. A bad file is an error for its namespace only.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .. import yamlfile
from ..observations import MODES, Observation, ObservationSet, SourceError

log = logging.getLogger(__name__)

VALUES_SUFFIXES = (".yaml", ".yml")
# `helm get values` without `-o yaml` prints one of these lines before the YAML.
HELM_HEADERS = ("USER-SUPPLIED VALUES:", "COMPUTED VALUES:")


class FilesSource:
    """Observe Dify deployments from a folder of Helm values files."""

    name = "files"

    def __init__(self, values_dir: str, cluster: str | None = None):
        self.values_dir = values_dir
        self.cluster = cluster

    def observe(self) -> ObservationSet:
        result = ObservationSet(source=self.name)
        if not os.path.isdir(self.values_dir):
            result.errors.append(
                SourceError(
                    "values_dir_missing",
                    f"{self.values_dir}: values folder not found; check --values-dir",
                )
            )
            return result
        if self.cluster is not None:
            clusters = [self.cluster]
        else:
            clusters = sorted(
                entry
                for entry in os.listdir(self.values_dir)
                if not entry.startswith(".")
                and os.path.isdir(os.path.join(self.values_dir, entry))
            )
        observed = []
        for cluster in clusters:
            folder = os.path.join(self.values_dir, cluster)
            if not os.path.isdir(folder):
                result.errors.append(
                    SourceError(
                        "values_dir_missing",
                        f"{folder}: cluster folder not found; create it or check "
                        "--cluster",
                    )
                )
                continue
            if not _is_utf8(cluster):
                result.errors.append(_bad_name_error(folder))
                continue
            observed.append(cluster)
            for entry in sorted(os.listdir(folder)):
                stem, suffix = os.path.splitext(entry)
                if entry.startswith(".") or suffix not in VALUES_SUFFIXES:
                    continue
                if not _is_utf8(entry):
                    result.errors.append(_bad_name_error(os.path.join(folder, entry)))
                    continue
                if (cluster, stem) in result.instances:
                    result.errors.append(
                        SourceError(
                            "values_invalid",
                            f"{os.path.join(folder, entry)}: namespace {stem!r} has "
                            "both a .yaml and a .yml file; keep one",
                        )
                    )
                    continue
                observation = read_values_file(os.path.join(folder, entry), cluster, stem)
                if observation is None:
                    continue
                if observation.error_reason:
                    result.errors.append(
                        SourceError(observation.error_reason, observation.error_message or "")
                    )
                result.instances[observation.key] = observation
        result.clusters = frozenset(observed)
        return result


def read_values_file(path: str, cluster: str, namespace: str) -> Observation | None:
    """Read one values file. Returns None when Dify Enterprise is disabled there."""
    try:
        text = yamlfile.read_text(path)
    except OSError as exc:
        return _failed(
            cluster,
            namespace,
            "values_unreadable",
            f"{path}: cannot read the file: {exc.strerror}; check permissions",
        )
    except yamlfile.YamlError as exc:
        return _failed(cluster, namespace, "values_unreadable", f"{path}: {exc}")
    stripped = text.lstrip()
    for header in HELM_HEADERS:
        if stripped.startswith(header):
            text = stripped[len(header) :]
    try:
        data, problems = yamlfile.parse(text)
    except yamlfile.YamlError as exc:
        return _failed(cluster, namespace, "values_invalid", f"{path}: {exc}")
    if problems:
        first = problems[0]
        return _failed(
            cluster,
            namespace,
            "values_invalid",
            f"{path}: {first.path}: {first.message}",
        )
    return interpret_values(data, path, cluster, namespace)


def interpret_values(
    data: Any, origin: str, cluster: str, namespace: str
) -> Observation | None:
    """Extract the license settings from Helm values (user-supplied or computed).

    The Dify Enterprise chart defaults are `enterprise.enabled: true` and
    `enterprise.licenseMode: online`; absent keys take those defaults.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return _failed(
            cluster,
            namespace,
            "values_invalid",
            f"{origin}: Helm values must be a mapping, got {yamlfile.type_name(data)}; "
            "save the output of `helm get values -o yaml`",
        )
    enterprise = data.get("enterprise")
    if enterprise is None:
        enterprise = {}
    if not isinstance(enterprise, dict):
        return _failed(
            cluster,
            namespace,
            "values_invalid",
            f"{origin}: enterprise must be a mapping, got {yamlfile.type_name(enterprise)}",
        )
    enabled = enterprise.get("enabled", True)
    if isinstance(enabled, str) and enabled.lower() in ("true", "false"):
        enabled = enabled.lower() == "true"
    if not isinstance(enabled, bool):
        return _failed(
            cluster,
            namespace,
            "values_invalid",
            f"{origin}: enterprise.enabled must be true or false, got {enabled!r}",
        )
    if not enabled:
        return None
    mode = enterprise.get("licenseMode")
    if mode is None or mode == "":
        mode = "online"
    if mode not in MODES:
        return _failed(
            cluster,
            namespace,
            "values_invalid",
            f"{origin}: enterprise.licenseMode must be online or offline, got "
            f"{str(mode)[:40]!r}; fix the Helm values",
        )
    server = enterprise.get("licenseServer")
    return Observation(
        cluster=cluster,
        namespace=namespace,
        mode=mode,
        license_server=server if isinstance(server, str) else None,
    )


def _is_utf8(name: str) -> bool:
    """Tell whether a name from os.listdir decoded as UTF-8.

    Undecodable bytes become lone surrogates, which cannot be encoded into label
    values, so such a name would make every scrape fail.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _bad_name_error(path: str) -> SourceError:
    shown = os.fsencode(path).decode("utf-8", "backslashreplace")
    return SourceError(
        "values_unreadable",
        f"{shown}: name is not valid UTF-8, so it cannot be a label value; rename it",
    )


def _failed(cluster: str, namespace: str, reason: str, message: str) -> Observation:
    return Observation(
        cluster=cluster,
        namespace=namespace,
        error_reason=reason,
        error_message=message,
    )
