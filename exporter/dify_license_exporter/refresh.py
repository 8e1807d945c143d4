"""The refresh loop: reload the registry, observe the sources, keep the last good data.

A `Refresher` owns the snapshot that the collector renders. A refresh that fails
keeps the previous registry or observations, counts the error by reason and logs it
once per distinct error, not once per refresh.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, Sequence

from .observations import ObservationSet, SourceError
from .probe import PROBE_ERROR_REASONS, Prober, ProbeResult
from .registry import Registry, RegistryError, load_registry

log = logging.getLogger(__name__)

# The closed list of refresh error reasons per source, exposed from start with 0.
ERROR_REASONS: dict[str, tuple[str, ...]] = {
    "registry": (
        "read_failed",
        "invalid_yaml",
        "invalid_registry",
        "signature_invalid",
    ),
    "files": ("values_dir_missing", "values_unreadable", "values_invalid"),
    "kubernetes": (
        "api_unavailable",
        "timeout",
        "rate_limited",
        "forbidden",
        "watch_expired",
        "release_decode_failed",
    ),
    "probe": PROBE_ERROR_REASONS,
}


def registry_fingerprint(paths: Sequence[str]) -> tuple:
    """Identify the current content of the registry files and their signatures.

    `os.stat` follows symlinks, so the `..data` swap of a mounted ConfigMap changes
    the inode and thus the fingerprint.
    """
    parts = []
    for path in paths:
        for name in (path, path + ".sig"):
            try:
                info = os.stat(name)
            except OSError:
                parts.append(None)
                continue
            parts.append((info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns))
    return tuple(parts)


class Source(Protocol):
    name: str

    def observe(self) -> ObservationSet: ...


# Errors after which the whole observation is unusable and the last good one is kept.
FATAL_REASONS = frozenset(
    {"values_dir_missing", "api_unavailable", "timeout", "rate_limited", "forbidden"}
)


@dataclass(frozen=True)
class Snapshot:
    """The latest good data, replaced as a whole so readers never see a mix."""

    registry: Registry | None = None
    observations: ObservationSet | None = None
    probes: Mapping[tuple[str, str], ProbeResult] = field(default_factory=dict)


@dataclass
class Health:
    """Refresh health per source, rendered as exporter metrics."""

    errors_total: dict[tuple[str, str], int] = field(default_factory=dict)
    active_errors: dict[tuple[str, str], int] = field(default_factory=dict)
    last_success: dict[str, float] = field(default_factory=dict)
    duration: dict[str, float] = field(default_factory=dict)
    # Set together with the registry error counter, so a scrape in the middle of a
    # refresh never shows a counted failure next to a valid registry.
    registry_valid: bool = False


class Refresher:
    """Load the registry and observe the sources, on demand or in a background loop."""

    def __init__(
        self,
        registry_paths: Sequence[str],
        sources: Sequence[Source],
        registry_loader: Callable[[Sequence[str]], Registry] = load_registry,
        prober: Prober | None = None,
    ):
        self.registry_paths = list(registry_paths)
        self.sources = list(sources)
        self.registry_loader = registry_loader
        self.prober = prober
        self.snapshot = Snapshot()
        self.health = Health()
        for source, reasons in ERROR_REASONS.items():
            for reason in reasons:
                self.health.errors_total[(source, reason)] = 0
        self._seen_errors: dict[str, set[tuple[str, str]]] = {}
        self._registry_fingerprint: tuple | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        return self.snapshot.registry is not None

    def refresh(self) -> None:
        """Run one refresh of the registry and every source."""
        with self._lock:
            registry = self._refresh_registry()
            observations = self.snapshot.observations
            for source in self.sources:
                observations = self._refresh_source(source, observations)
            probes = self._refresh_probes(registry)
            # Keep the previous objects when nothing changed, so the rendered
            # metrics page can be reused (see exposition.py).
            if observations == self.snapshot.observations:
                observations = self.snapshot.observations
            if probes == self.snapshot.probes:
                probes = self.snapshot.probes
            self.snapshot = Snapshot(
                registry=registry,
                observations=observations,
                probes=probes,
            )

    def _refresh_registry(self) -> Registry | None:
        """Load the registry when its files changed; return the one to serve.

        A failed load returns the last good registry and sets
        `health.registry_valid` to False.
        """
        started = time.monotonic()
        fingerprint = registry_fingerprint(self.registry_paths)
        if fingerprint == self._registry_fingerprint and self.snapshot.registry:
            # Unchanged files: skip parsing, which takes seconds for 20,000
            # instances, and keep the same Registry object.
            if self.health.registry_valid:
                self.health.last_success["registry"] = time.time()
            self.health.duration["registry"] = time.monotonic() - started
            return self.snapshot.registry
        self._registry_fingerprint = fingerprint
        try:
            registry = self.registry_loader(self.registry_paths)
        except RegistryError as exc:
            self.health.registry_valid = False
            self._record("registry", [SourceError(exc.reason, str(exc))])
            self.health.duration["registry"] = time.monotonic() - started
            return self.snapshot.registry
        if registry == self.snapshot.registry:
            registry = self.snapshot.registry
        self._record("registry", [])
        self.health.registry_valid = True
        now = time.time()
        self.health.last_success["registry"] = now
        self.health.duration["registry"] = time.monotonic() - started
        return registry

    def _refresh_source(
        self, source: Source, previous: ObservationSet | None
    ) -> ObservationSet | None:
        started = time.monotonic()
        try:
            result = source.observe()
        except Exception:  # noqa: BLE001 - a source bug must not stop the exporter
            log.exception("source %s failed unexpectedly", source.name)
            result = ObservationSet(
                source=source.name,
                errors=[SourceError("api_unavailable", "unexpected source failure")],
            )
            self.health.duration[source.name] = time.monotonic() - started
            self._record(source.name, result.errors)
            return previous
        self.health.duration[source.name] = time.monotonic() - started
        self._record(source.name, result.errors)
        if any(error.reason in FATAL_REASONS for error in result.errors):
            return previous
        self.health.last_success[source.name] = time.time()
        return result

    def _refresh_probes(
        self, registry: Registry | None
    ) -> Mapping[tuple[str, str], ProbeResult]:
        """Probe the Dify API of every instance with an `api_url`.

        A failed probe leaves its instance without a live status instead of
        keeping an old one, so a stale status is never published.
        """
        if self.prober is None or registry is None:
            return {}
        started = time.monotonic()
        try:
            probes = self.prober.probe_registry(registry)
        except Exception:  # noqa: BLE001 - a prober bug must not stop the exporter
            log.exception("probing failed unexpectedly")
            probes = {}
        self.health.duration["probe"] = time.monotonic() - started
        errors = [
            SourceError(result.error_reason, result.error_message or "")
            for result in probes.values()
            if result.error_reason is not None
        ]
        self._record("probe", errors)
        if probes and not errors:
            self.health.last_success["probe"] = time.time()
        return probes

    def _record(self, source: str, errors: list[SourceError]) -> None:
        """Count and log each error once while it persists; log recoveries."""
        current = {(error.reason, error.message) for error in errors}
        seen = self._seen_errors.get(source, set())
        for reason, message in sorted(current - seen):
            key = (source, reason)
            self.health.errors_total[key] = self.health.errors_total.get(key, 0) + 1
            log.warning(
                "refresh error",
                extra={"source": source, "reason": reason, "error": message},
            )
        if seen and not current:
            log.info("refresh recovered", extra={"source": source})
        active: dict[tuple[str, str], int] = {}
        for reason, _message in current:
            active[(source, reason)] = active.get((source, reason), 0) + 1
        for key in [k for k in self.health.active_errors if k[0] == source]:
            del self.health.active_errors[key]
        self.health.active_errors.update(active)
        self._seen_errors[source] = current

    def prime(self, registry: Registry, fingerprint: tuple) -> None:
        """Start from a registry already loaded, as files with `fingerprint`.

        `serve` loads the registry once to refuse an invalid one; priming spares
        the first refresh a second parse of the same files.
        """
        self.snapshot = Snapshot(registry=registry)
        self.health.registry_valid = True
        self._registry_fingerprint = fingerprint
        self.health.last_success["registry"] = time.time()

    def snapshot_key(self) -> tuple:
        """Return the objects whose identity changes when the snapshot's data does."""
        snapshot = self.snapshot
        return (snapshot.registry, snapshot.observations, snapshot.probes)

    def start(
        self, interval: float, after_refresh: Callable[[], None] | None = None
    ) -> None:
        """Refresh every `interval` seconds in a daemon thread until `stop`.

        `after_refresh` runs after each refresh, for example to pre-render metrics.
        """

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.refresh()
                    if after_refresh is not None:
                        after_refresh()
                except Exception:  # noqa: BLE001 - keep serving the last snapshot
                    log.exception("refresh failed unexpectedly")

        self._thread = threading.Thread(target=loop, name="refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
