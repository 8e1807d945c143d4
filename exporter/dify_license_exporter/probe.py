"""Probe the live license status of Dify instances through their API servers.

`GET <api_url>/console/api/system-features` needs no login and returns
`license.status`, `license.expired_at` and, in recent Dify versions,
`license.workspaces: {enabled, size, limit}`. With credentials, the probe also reads
`GET <api_url>/console/api/features`, whose `workspace_members` (Dify Enterprise) or
`members` (billing editions) carry the seat count of the token's workspace.

Probes run in the refresh loop, never during a scrape: each has a deadline that
covers connecting, TLS and reading the whole body, and a thread pool bounds how many
run at once. A failed probe is a ProbeResult with `error_reason` from
PROBE_ERROR_REASONS, never an exception and never a guessed status.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import math
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from . import __version__
from .registry import Instance, Registry, parse_instant

log = logging.getLogger(__name__)

SYSTEM_FEATURES_PATH = "/console/api/system-features"
FEATURES_PATH = "/console/api/features"

# Values of Dify's LicenseStatus enum, in api/services/feature_service.py of Dify.
LICENSE_STATUSES = ("none", "inactive", "active", "expiring", "expired", "lost")

# The closed list of probe failure reasons, the `reason` label of refresh errors
# with source "probe".
PROBE_ERROR_REASONS = (
    "connection_failed",
    "timeout",
    "tls_error",
    "http_error",
    "unauthorized",
    "invalid_response",
    "credentials_unavailable",
)

DEFAULT_TIMEOUT = 5.0
DEFAULT_CONCURRENCY = 8
# Upper bounds of --probe.timeout and --probe.concurrency. A probe that needs more
# than 5 minutes is a broken API, and each concurrent probe is one thread.
MAX_TIMEOUT = 300.0
MAX_CONCURRENCY = 256
MAX_BODY_BYTES = 1024 * 1024
_READ_CHUNK = 16 * 1024
UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True)
class ProbeResult:
    """What one probe of an instance's Dify API returned.

    `status` is None unless the system-features response was read and valid. Counts
    are None when the response does not carry them; an `*_allowed` of None with a
    known `*_used` means the limit is not enforced (Dify reports limit 0 then).
    `success` is False when any request of the probe failed, and `error_reason`
    then names the first failure.
    """

    cluster: str
    namespace: str
    probed_at: datetime
    duration: float
    success: bool
    status: str | None = None
    expired_at: datetime | None = None
    workspaces_used: int | None = None
    workspaces_allowed: int | None = None
    seats_used: int | None = None
    seats_allowed: int | None = None
    error_reason: str | None = None
    error_message: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.cluster, self.namespace)


class ProbeError(Exception):
    """A failed probe request; `reason` is one of PROBE_ERROR_REASONS."""

    def __init__(self, reason: str, message: str):
        assert reason in PROBE_ERROR_REASONS, reason
        self.reason = reason
        super().__init__(message)


CredentialsLoader = Callable[[], str]


def file_credentials(path: str) -> CredentialsLoader:
    """Return a loader that reads a bearer token from `path` at every probe round.

    Reading on every round lets a mounted Secret rotate without a restart.
    """

    def load() -> str:
        try:
            with open(path, encoding="utf-8") as handle:
                token = handle.read().strip()
        except OSError as exc:
            raise ProbeError(
                "credentials_unavailable",
                f"{path}: cannot read the credentials file: {exc.strerror}",
            ) from None
        except UnicodeDecodeError:
            raise ProbeError(
                "credentials_unavailable", f"{path}: the credentials file is not UTF-8"
            ) from None
        _check_token(token, path)
        return token

    return load


def secret_credentials(
    reference: str, key: str, kubeconfig: str | None, context: str | None
) -> CredentialsLoader:
    """Return a loader that reads a bearer token from a Kubernetes Secret.

    `reference` is NAMESPACE/NAME. The Secret is read at every probe round with the
    client settings the Kubernetes source uses: the kubeconfig when one is given,
    otherwise the in-cluster service account, then the default kubeconfig.
    """
    namespace, name = parse_secret_reference(reference)
    where = f"secret {namespace}/{name} key {key}"

    def load() -> str:
        import base64

        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        from .sources.kubernetes import KubeconfigError, load_configuration

        try:
            api_client = client.ApiClient(load_configuration(kubeconfig, context))
        except KubeconfigError as exc:
            raise ProbeError("credentials_unavailable", f"{where}: {exc}") from None
        try:
            secret = client.CoreV1Api(api_client).read_namespaced_secret(
                name, namespace, _request_timeout=DEFAULT_TIMEOUT
            )
        except ApiException as exc:
            raise ProbeError(
                "credentials_unavailable",
                f"{where}: reading the Secret failed with HTTP {exc.status}",
            ) from None
        except Exception as exc:  # noqa: BLE001 - urllib3 raises many connection errors
            raise ProbeError(
                "credentials_unavailable",
                f"{where}: reading the Secret failed: {type(exc).__name__}",
            ) from None
        finally:
            api_client.close()
        encoded = (secret.data or {}).get(key)
        if encoded is None:
            raise ProbeError("credentials_unavailable", f"{where}: key not found")
        try:
            token = base64.b64decode(encoded, validate=True).decode("utf-8").strip()
        except (ValueError, UnicodeDecodeError):
            raise ProbeError(
                "credentials_unavailable", f"{where}: value is not base64 UTF-8 text"
            ) from None
        _check_token(token, where)
        return token

    return load


def parse_secret_reference(reference: str) -> tuple[str, str]:
    """Split NAMESPACE/NAME; raises ValueError naming the expected form."""
    namespace, sep, name = reference.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise ValueError(
            f"invalid Secret reference {reference!r}; use NAMESPACE/NAME such as "
            "monitoring/dify-console-token"
        )
    return namespace, name


def _check_token(token: str, where: str) -> None:
    if not token:
        raise ProbeError(
            "credentials_unavailable", f"{where}: the credentials are empty"
        )
    if any(ord(char) < 0x21 or ord(char) > 0x7E for char in token):
        # A header value must not carry line breaks or non-ASCII characters.
        raise ProbeError(
            "credentials_unavailable",
            f"{where}: the token contains spaces, line breaks or non-ASCII characters",
        )


class Prober:
    """Probe the Dify API of every registered instance that has an `api_url`."""

    def __init__(
        self,
        timeout: float = DEFAULT_TIMEOUT,
        concurrency: int = DEFAULT_CONCURRENCY,
        ca_file: str | None = None,
        credentials: CredentialsLoader | None = None,
        clock: Callable[[], float] = time.time,
    ):
        if not (math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT):
            raise ValueError(
                f"invalid probe timeout {timeout}; use a number of seconds above 0 "
                f"and at most {MAX_TIMEOUT:g}"
            )
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ValueError(
                f"invalid probe concurrency {concurrency}; use 1 to {MAX_CONCURRENCY}"
            )
        self.timeout = timeout
        self.concurrency = concurrency
        self.credentials = credentials
        self.clock = clock
        try:
            self.tls_context = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"{ca_file}: cannot load the CA bundle: {exc}; give a PEM file"
            ) from None

    def probe_registry(self, registry: Registry) -> dict[tuple[str, str], ProbeResult]:
        """Probe every instance of the registry that has an `api_url`."""
        zone = ZoneInfo(registry.timezone)
        return self.probe_all(
            [instance for instance in registry.instances if instance.api_url], zone
        )

    def probe_all(
        self, instances: Iterable[Instance], zone: ZoneInfo = UTC_ZONE
    ) -> dict[tuple[str, str], ProbeResult]:
        """Probe the instances, at most `concurrency` at a time."""
        instances = [instance for instance in instances if instance.api_url]
        if not instances:
            return {}
        token: str | None = None
        credentials_error: ProbeError | None = None
        if self.credentials is not None:
            try:
                token = self.credentials()
            except ProbeError as exc:
                credentials_error = exc
        workers = min(self.concurrency, len(instances))
        with ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="probe"
        ) as pool:
            futures = [
                pool.submit(self.probe, instance, zone, token, credentials_error)
                for instance in instances
            ]
            results = [future.result() for future in futures]
        return {result.key: result for result in results}

    def probe(
        self,
        instance: Instance,
        zone: ZoneInfo = UTC_ZONE,
        token: str | None = None,
        credentials_error: ProbeError | None = None,
    ) -> ProbeResult:
        """Probe one instance; a failure of the remote side returns a failed result."""
        probed_at = datetime.fromtimestamp(self.clock(), tz=timezone.utc)
        started = time.monotonic()
        deadline = started + self.timeout
        base = {"cluster": instance.cluster, "namespace": instance.namespace}
        if credentials_error is not None:
            return ProbeResult(
                **base,
                probed_at=probed_at,
                duration=0.0,
                success=False,
                error_reason=credentials_error.reason,
                error_message=str(credentials_error),
            )
        assert instance.api_url is not None
        fields: dict[str, Any] = {}
        try:
            url = instance.api_url
            document = self._get_json(url, SYSTEM_FEATURES_PATH, deadline, token)
            fields.update(
                _with_url(
                    url, SYSTEM_FEATURES_PATH, parse_system_features, document, zone
                )
            )
            if token is not None:
                document = self._get_json(url, FEATURES_PATH, deadline, token)
                fields.update(_with_url(url, FEATURES_PATH, parse_features, document))
        except ProbeError as exc:
            log.debug(
                "probe failed",
                extra={
                    "cluster": instance.cluster,
                    "namespace": instance.namespace,
                    "reason": exc.reason,
                    "error": str(exc),
                },
            )
            return ProbeResult(
                **base,
                probed_at=probed_at,
                duration=time.monotonic() - started,
                success=False,
                error_reason=exc.reason,
                error_message=f"{instance.cluster}/{instance.namespace}: {exc}",
                **fields,
            )
        return ProbeResult(
            **base,
            probed_at=probed_at,
            duration=time.monotonic() - started,
            success=True,
            **fields,
        )

    def _get_json(
        self, api_url: str, path: str, deadline: float, token: str | None
    ) -> Any:
        """GET a JSON document, bounded by `deadline` as a whole."""
        url = urlsplit(api_url)
        target = url.path.rstrip("/") + path
        shown = _describe_request(api_url, path)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProbeError("timeout", f"{shown}: timed out after {self.timeout:g}s")
        if url.scheme == "https":
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                url.hostname or "",
                url.port,
                timeout=remaining,
                context=self.tls_context,
            )
        else:
            connection = http.client.HTTPConnection(
                url.hostname or "", url.port, timeout=remaining
            )
        headers = {
            "Accept": "application/json",
            "User-Agent": f"dify-license-exporter/{__version__}",
        }
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            connection.request("GET", target, headers=headers)
            _set_timeout(connection, deadline)
            response = connection.getresponse()
            status = response.status
            if status in (401, 403):
                raise ProbeError(
                    "unauthorized",
                    f"{shown}: HTTP {status}; check the probe credentials",
                )
            if not 200 <= status < 300:
                raise ProbeError("http_error", f"{shown}: HTTP {status}")
            body = _read_body(connection, response, deadline, shown)
        except ProbeError:
            raise
        except ssl.SSLError as exc:
            raise ProbeError(
                "tls_error", f"{shown}: TLS failed: {exc.reason or exc}"
            ) from None
        except TimeoutError:
            raise ProbeError(
                "timeout", f"{shown}: timed out after {self.timeout:g}s"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise ProbeError(
                "connection_failed", f"{shown}: {type(exc).__name__}: {exc}"
            ) from None
        finally:
            connection.close()
        try:
            return json.loads(body)
        except (UnicodeDecodeError, ValueError):
            raise ProbeError(
                "invalid_response", f"{shown}: the body is not JSON"
            ) from None


def _describe_request(api_url: str, path: str) -> str:
    url = urlsplit(api_url)
    # Credentials written into api_url (user:password@host) never reach a message.
    host = url.netloc.rpartition("@")[2]
    return f"GET {url.scheme}://{host}{url.path.rstrip('/')}{path}"


def _with_url(api_url: str, path: str, parse: Callable[..., dict], *args: Any) -> dict:
    """Run a parser, prefixing its errors with the request they concern."""
    try:
        return parse(*args)
    except ProbeError as exc:
        raise ProbeError(
            exc.reason, f"{_describe_request(api_url, path)}: {exc}"
        ) from None


def _set_timeout(connection: http.client.HTTPConnection, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("deadline passed")
    if connection.sock is not None:
        connection.sock.settimeout(remaining)


def _read_body(
    connection: http.client.HTTPConnection,
    response: http.client.HTTPResponse,
    deadline: float,
    shown: str,
) -> bytes:
    """Read the body in chunks so a slow sender cannot outlast the deadline."""
    chunks = []
    size = 0
    while True:
        _set_timeout(connection, deadline)
        chunk = response.read1(_READ_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ProbeError(
                "invalid_response",
                f"{shown}: the body is larger than {MAX_BODY_BYTES} bytes",
            )
        chunks.append(chunk)


def parse_system_features(document: Any, zone: ZoneInfo) -> dict[str, Any]:
    """Read status, expiry and workspace counts from a system-features response.

    Raises ProbeError("invalid_response") when `license.status` is missing or not a
    known status, or when a present field has the wrong type.
    """
    if not isinstance(document, dict):
        raise ProbeError("invalid_response", "the response is not a JSON object")
    license_info = document.get("license")
    if not isinstance(license_info, dict):
        raise ProbeError("invalid_response", "`license` is missing")
    status = license_info.get("status")
    if status not in LICENSE_STATUSES:
        shown = json.dumps(status)[:40]
        raise ProbeError(
            "invalid_response",
            f"unknown license.status {shown}; expected one of "
            + ", ".join(LICENSE_STATUSES),
        )
    result: dict[str, Any] = {"status": status}
    expired_at = license_info.get("expired_at")
    if expired_at not in (None, ""):
        if not isinstance(expired_at, str):
            raise ProbeError("invalid_response", "license.expired_at is not a string")
        try:
            result["expired_at"] = parse_instant(expired_at, zone, end_of_day=True)
        except ValueError:
            raise ProbeError(
                "invalid_response",
                f"license.expired_at {expired_at[:40]!r} is not a "
                "date or RFC 3339 date-time",
            ) from None
    workspaces = _limitation(license_info, "workspaces", "license.workspaces")
    if workspaces is not None:
        result["workspaces_used"], result["workspaces_allowed"] = workspaces
    return result


def parse_features(document: Any) -> dict[str, Any]:
    """Read the seat count from a features response (requires a console login).

    Dify Enterprise reports `workspace_members: {enabled, size, limit}`; billing
    editions report `members: {size, limit}` with `billing.enabled` true. Dify
    always fills `members` with a placeholder limit of 1, so it is read only when
    billing is enabled.
    """
    if not isinstance(document, dict):
        raise ProbeError("invalid_response", "the response is not a JSON object")
    seats = _limitation(document, "workspace_members", "workspace_members")
    if seats is None:
        billing = document.get("billing")
        if isinstance(billing, dict) and billing.get("enabled") is True:
            seats = _limitation(document, "members", "members", default_enabled=True)
    if seats is None:
        return {}
    return {"seats_used": seats[0], "seats_allowed": seats[1]}


def _limitation(
    parent: Mapping[str, Any], key: str, where: str, default_enabled: bool = False
) -> tuple[int, int | None] | None:
    """Return (used, allowed) of a `{enabled, size, limit}` object.

    None when the object is absent or not enforced (`enabled` false). `allowed` is
    None when the limit is 0, which Dify uses for "no limit".
    """
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ProbeError("invalid_response", f"{where} is not an object")
    enabled = value.get("enabled", default_enabled)
    if not isinstance(enabled, bool):
        raise ProbeError("invalid_response", f"{where}.enabled is not a boolean")
    if not enabled:
        return None
    counts = []
    for name in ("size", "limit"):
        count = value.get(name, 0)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ProbeError(
                "invalid_response", f"{where}.{name} is not a non-negative integer"
            )
        counts.append(count)
    size, limit = counts
    return size, (limit if limit > 0 else None)


def add_probe_flags(parser: argparse.ArgumentParser) -> None:
    """Add the flags that configure probing of the instances' Dify APIs."""
    group = parser.add_argument_group("probe flags")
    group.add_argument(
        "--no-probe",
        dest="probe",
        action="store_false",
        help="do not probe the Dify API of instances that have an api_url",
    )
    group.add_argument(
        "--probe.timeout",
        dest="probe_timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="deadline of one probe in seconds, connection and body included, "
        f"above 0 and at most {MAX_TIMEOUT:g} (default: {DEFAULT_TIMEOUT:g})",
    )
    group.add_argument(
        "--probe.concurrency",
        dest="probe_concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"probes run at the same time, 1 to {MAX_CONCURRENCY} "
        f"(default: {DEFAULT_CONCURRENCY})",
    )
    group.add_argument(
        "--probe.ca-file",
        dest="probe_ca_file",
        metavar="PEM",
        help="CA bundle that verifies https api_url servers (default: system CAs)",
    )
    group.add_argument(
        "--probe.credentials-file",
        dest="probe_credentials_file",
        metavar="FILE",
        help="file holding a console bearer token; enables seat counts",
    )
    group.add_argument(
        "--probe.credentials-secret",
        dest="probe_credentials_secret",
        metavar="NAMESPACE/NAME",
        help="Kubernetes Secret holding a console bearer token; enables seat counts",
    )
    group.add_argument(
        "--probe.credentials-secret-key",
        dest="probe_credentials_secret_key",
        default="token",
        metavar="KEY",
        help="key of the token in that Secret (default: token)",
    )


def prober_from_args(args: argparse.Namespace) -> Prober | None:
    """Build the Prober the probe flags ask for; None with --no-probe.

    Raises ValueError with the flag name, the bad value and the fix.
    """
    if args.probe_credentials_file and args.probe_credentials_secret:
        raise ValueError(
            "--probe.credentials-file and --probe.credentials-secret exclude each "
            "other; give one"
        )
    credentials: CredentialsLoader | None = None
    if args.probe_credentials_file:
        credentials = file_credentials(args.probe_credentials_file)
    elif args.probe_credentials_secret:
        try:
            parse_secret_reference(args.probe_credentials_secret)
        except ValueError as exc:
            raise ValueError(f"--probe.credentials-secret: {exc}") from None
        kubeconfig = getattr(args, "kubeconfig", None)
        if kubeconfig:
            from .sources.kubernetes import load_configuration

            # Raises KubeconfigError, a ValueError, so a bad file stops the start
            # instead of failing every probe round.
            load_configuration(kubeconfig, getattr(args, "context", None))
        credentials = secret_credentials(
            args.probe_credentials_secret,
            args.probe_credentials_secret_key,
            kubeconfig,
            getattr(args, "context", None),
        )
    timeout = args.probe_timeout
    if not (math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT):
        raise ValueError(
            f"--probe.timeout: invalid value {timeout:g}; use a number of seconds "
            f"above 0 and at most {MAX_TIMEOUT:g}"
        )
    if not 1 <= args.probe_concurrency <= MAX_CONCURRENCY:
        raise ValueError(
            f"--probe.concurrency: invalid value {args.probe_concurrency}; use a "
            f"whole number from 1 to {MAX_CONCURRENCY}"
        )
    if not getattr(args, "probe", True):
        return None
    try:
        return Prober(
            timeout=args.probe_timeout,
            concurrency=args.probe_concurrency,
            ca_file=args.probe_ca_file,
            credentials=credentials,
        )
    except ValueError as exc:
        raise ValueError(f"--probe.ca-file: {exc}") from None
