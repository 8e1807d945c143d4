"""What a source observed in the clusters: one record per Dify namespace.

Sources only observe. They return an ObservationSet, which `evaluate` joins with the
registry. A source never raises for a problem confined to one namespace: it records
the error on that namespace's Observation and carries on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

MODES = ("online", "offline")


@dataclass(frozen=True)
class Observation:
    """The Dify Enterprise deployment seen in one namespace.

    `mode` is the configured `enterprise.licenseMode`, None when it could not be
    read (then `error_reason` and `error_message` say why). `pods_started` is the
    start time of the oldest running enterprise pod, None when pods are not
    observed. `license_changed_at` is when the release's license settings last
    changed, None when unknown.
    """

    cluster: str
    namespace: str
    mode: str | None = None
    license_server: str | None = None
    release: str | None = None
    error_reason: str | None = None
    error_message: str | None = None
    pods_started: datetime | None = None
    pods_ready: int | None = None
    license_changed_at: datetime | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.cluster, self.namespace)


@dataclass(frozen=True)
class SourceError:
    """A refresh error of a source, counted by `reason` (see docs/metrics.md)."""

    reason: str
    message: str


@dataclass
class ObservationSet:
    """Everything one refresh of a source observed.

    `clusters` lists the clusters that were fully observed: a registered instance of
    such a cluster without an observation is `not_deployed`. `observes_pods` is True
    when pod start times are known, so restart_pending can be published.
    """

    source: str
    clusters: frozenset[str] = frozenset()
    instances: dict[tuple[str, str], Observation] = field(default_factory=dict)
    errors: list[SourceError] = field(default_factory=list)
    observes_pods: bool = False
