"""Kubernetes source: Helm release Secrets and enterprise pods read from the API server.

Releases come from Secrets labelled `owner=helm,status=deployed`, listed in pages
with the selector sent to the API server and decoded in-process (see helmrelease).
Pods matching `--enterprise-pod-selector` give the start time of the oldest running
enterprise pod per namespace. `check` and `report` list once. `serve` lists once,
then keeps the data current with watches (resourceVersion, bookmarks), so a refresh
reads memory instead of the API server. A 410 Gone re-lists. A 429 waits for
Retry-After, and 5xx answers and timeouts back off exponentially with jitter.
"""

from __future__ import annotations

import argparse
import atexit
import fnmatch
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import urllib3
import yaml
from kubernetes import client as kube_client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.watch.watch import iter_resp_lines

from ..helmrelease import (
    ReleaseDecodeError,
    ReleaseSummary,
    decode_release,
    parse_helm_time,
    summarize_release,
)
from ..observations import Observation, ObservationSet, SourceError
from .files import interpret_values

log = logging.getLogger(__name__)

RELEASE_SELECTOR = "owner=helm,status=deployed"
# A release Secret is tens of KiB on the wire, so its pages stay small. Pods and
# namespaces are a few KiB each.
SECRET_PAGE_SIZE = 50
POD_PAGE_SIZE = 500
NAMESPACE_PAGE_SIZE = 500
# Helm revisions whose settings describe what ran: failed and pending ones never did.
EFFECTIVE_STATUSES = frozenset({"deployed", "superseded"})
GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff and timeout settings, in seconds."""

    initial_backoff: float = 1.0
    max_backoff: float = 60.0
    max_retry_after: float = 120.0
    # Tries of one list request before the list fails.
    attempts: int = 4
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    # Server-side length of one watch, after which the client reconnects.
    watch_seconds: int = 300

    def backoff(self, failures: int) -> float:
        """Return the delay after `failures` consecutive failures (1 or more).

        The delay doubles per failure up to max_backoff, and a random half of it is
        dropped so that many exporters do not retry in step.
        """
        ceiling = min(self.max_backoff, self.initial_backoff * 2 ** (failures - 1))
        return ceiling * random.uniform(0.5, 1.0)


class ApiError(Exception):
    """A failed API request, classified into a refresh error reason."""

    def __init__(self, reason: str, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


def classify_error(exc: Exception, what: str) -> ApiError:
    """Map a client exception to an ApiError with a reason from the fixed list."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ApiException):
        status = exc.status or 0
        if status == 429:
            return ApiError(
                "rate_limited",
                f"{what}: the API server returned 429 Too Many Requests",
                _retry_after(exc),
            )
        if status in (401, 403):
            return ApiError(
                "forbidden",
                f"{what}: the API server returned {status}; grant get, list and watch "
                "as docs/kubernetes.md describes",
            )
        if status == 410:
            return ApiError(
                "watch_expired", f"{what}: resourceVersion expired (410 Gone)"
            )
        return ApiError(
            "api_unavailable", f"{what}: the API server returned {status} {exc.reason}"
        )
    timeout_types = (urllib3.exceptions.TimeoutError, TimeoutError)
    if isinstance(exc, urllib3.exceptions.MaxRetryError):
        # urllib3 derives NewConnectionError (refused, unreachable) from
        # ConnectTimeoutError, so it is checked first.
        refused = isinstance(exc.reason, urllib3.exceptions.NewConnectionError)
        if isinstance(exc.reason, timeout_types) and not refused:
            return ApiError("timeout", f"{what}: request timed out")
        return ApiError("api_unavailable", f"{what}: connection failed: {exc.reason}")
    if isinstance(exc, timeout_types):
        return ApiError("timeout", f"{what}: request timed out")
    return ApiError("api_unavailable", f"{what}: {type(exc).__name__}: {exc}")


def _retry_after(exc: ApiException) -> float | None:
    value = (exc.headers or {}).get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


# --- records kept per object ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    """A deployed release Secret: its summary, or why it could not be decoded."""

    namespace: str
    secret: str
    release: str
    summary: ReleaseSummary | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PodRecord:
    namespace: str
    running: bool
    started: datetime | None
    ready: bool


def release_record(item: dict[str, Any]) -> ReleaseRecord:
    """Decode a release Secret from a list or watch, keeping only its summary."""
    metadata = item.get("metadata") or {}
    namespace = metadata.get("namespace") or ""
    labels = metadata.get("labels") or {}
    record = ReleaseRecord(
        namespace, metadata.get("name") or "", labels.get("name") or ""
    )
    try:
        value = (item.get("data") or {}).get("release")
        if not value:
            raise ReleaseDecodeError("Secret has no data.release")
        summary = summarize_release(decode_release(value))
    except ReleaseDecodeError as exc:
        return ReleaseRecord(
            record.namespace, record.secret, record.release, error=str(exc)
        )
    return ReleaseRecord(record.namespace, record.secret, summary.name, summary=summary)


def pod_record(item: dict[str, Any]) -> PodRecord:
    metadata = item.get("metadata") or {}
    status = item.get("status") or {}
    ready = any(
        condition.get("type") == "Ready" and condition.get("status") == "True"
        for condition in status.get("conditions") or []
    )
    try:
        started = parse_helm_time(status.get("startTime"))
    except ValueError:
        started = None
    return PodRecord(
        namespace=metadata.get("namespace") or "",
        running=status.get("phase") == "Running",
        started=started,
        ready=ready,
    )


def namespace_record(item: dict[str, Any]) -> str:
    return (item.get("metadata") or {}).get("name") or ""


# --- list and watch ---------------------------------------------------------------


@dataclass
class Reflector:
    """List one resource in pages, then optionally keep it current with a watch.

    `store` maps (namespace, name) to the record `transform` made of the object,
    together with the object's resourceVersion, so a re-list reuses the records of
    unchanged objects instead of decoding them again.
    """

    resource: str
    list_call: Callable[..., Any]
    label_selector: str
    page_size: int
    transform: Callable[[dict[str, Any]], Any]
    policy: RetryPolicy
    namespace: str | None = None
    keep: Callable[[str], bool] = lambda namespace: True
    store: dict[tuple[str, str], tuple[str, Any]] = field(default_factory=dict)
    resource_version: str = ""
    synced: bool = False
    # Set while the watch cannot reconnect; cleared once it can.
    failure: ApiError | None = None
    requests: int = 0

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[SourceError] = []
        self.stopped = threading.Event()
        self.response: Any = None
        self.thread: threading.Thread | None = None
        where = f"namespace {self.namespace}" if self.namespace else "all namespaces"
        self.what = (
            f"list {self.resource} ({where}, {self.label_selector or 'no selector'})"
        )

    def records(self) -> list[Any]:
        with self.lock:
            return [record for _version, record in self.store.values()]

    def list_all(self) -> None:
        """Replace the store with a full paged list; raises ApiError."""
        while True:
            try:
                store, version = self._list_pages()
            except ApiError as exc:
                if exc.reason != "watch_expired":
                    raise
                # The continue token outlived the server's history: start again.
                self._note(SourceError("watch_expired", f"{exc}; listing again"))
                continue
            with self.lock:
                self.store = store
                self.resource_version = version
                self.synced = True
            return

    def _list_pages(self) -> tuple[dict[tuple[str, str], tuple[str, Any]], str]:
        with self.lock:
            previous = self.store
        store: dict[tuple[str, str], tuple[str, Any]] = {}
        token: str | None = None
        version = ""
        while True:
            page = self._request_page(token)
            version = (page.get("metadata") or {}).get("resourceVersion") or version
            for item in page.get("items") or ():
                self._keep_item(item, store, previous)
            token = (page.get("metadata") or {}).get("continue") or None
            del page
            if not token:
                return store, version

    def _keep_item(self, item, store, previous) -> None:
        metadata = item.get("metadata") or {}
        key = (metadata.get("namespace") or "", metadata.get("name") or "")
        if not self.keep(key[0] or key[1]):
            return
        item_version = metadata.get("resourceVersion") or ""
        known = previous.get(key)
        if known is not None and item_version and known[0] == item_version:
            store[key] = known
        else:
            store[key] = (item_version, self.transform(item))

    def _request_page(self, token: str | None) -> dict[str, Any]:
        """Fetch one page, retrying 429, 5xx and timeouts as set by RetryPolicy."""
        failures = 0
        while True:
            kwargs: dict[str, Any] = {
                "label_selector": self.label_selector,
                "limit": self.page_size,
                "_preload_content": False,
                "_request_timeout": (
                    self.policy.connect_timeout,
                    self.policy.read_timeout,
                ),
            }
            if token:
                kwargs["_continue"] = token
            try:
                self.requests += 1
                response = self._call(**kwargs)
                try:
                    body = response.data
                finally:
                    response.release_conn()
                return json.loads(body)
            except Exception as exc:  # noqa: BLE001 - classified below
                error = classify_error(exc, self.what)
            if error.reason in ("forbidden", "watch_expired"):
                raise error
            failures += 1
            if failures >= self.policy.attempts:
                raise error
            delay = self.policy.backoff(failures)
            if error.retry_after is not None:
                delay = min(self.policy.max_retry_after, error.retry_after)
            log.info(
                "retrying request",
                extra={
                    "resource": self.resource,
                    "reason": error.reason,
                    "delay": round(delay, 3),
                },
            )
            if self.stopped.wait(delay):
                raise error

    def _call(self, **kwargs: Any) -> Any:
        if self.namespace is not None:
            return self.list_call(self.namespace, **kwargs)
        return self.list_call(**kwargs)

    # -- watch ----------------------------------------------------------------------

    def start(self) -> None:
        """Keep the store current in a daemon thread until `stop`."""
        self.thread = threading.Thread(
            target=self._run, name=f"watch-{self.resource}", daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        response = self.response
        if response is not None:
            try:
                response.shutdown()
            except Exception:  # noqa: BLE001 - best effort to end a blocked read
                pass

    def drain_events(self) -> list[SourceError]:
        """Return and forget the non-fatal errors seen since the last call."""
        with self.lock:
            events, self.events = self.events, []
        return events

    def _note(self, error: SourceError) -> None:
        log.warning(
            "kubernetes watch event",
            extra={"reason": error.reason, "error": error.message},
        )
        with self.lock:
            self.events.append(error)

    def _run(self) -> None:
        failures = 0
        while not self.stopped.is_set():
            try:
                if not self.synced:
                    self.list_all()
                    self.failure = None
                self._watch()
                failures = 0
            except ApiError as exc:
                if self.stopped.is_set():
                    return
                if exc.reason == "watch_expired":
                    # History compacted past our resourceVersion: list again now.
                    self._note(SourceError("watch_expired", f"{exc}; listing again"))
                    with self.lock:
                        self.synced = False
                    continue
                failures += 1
                self.failure = exc
                delay = self.policy.backoff(failures)
                if exc.retry_after is not None:
                    delay = min(self.policy.max_retry_after, exc.retry_after)
                log.warning(
                    "kubernetes watch failed",
                    extra={
                        "resource": self.resource,
                        "reason": exc.reason,
                        "error": str(exc),
                        "delay": round(delay, 3),
                    },
                )
                self.stopped.wait(delay)
            except Exception:  # noqa: BLE001 - the watch thread must survive
                log.exception(
                    "kubernetes watch failed unexpectedly",
                    extra={"resource": self.resource},
                )
                failures += 1
                self.failure = ApiError(
                    "api_unavailable", f"{self.what}: unexpected failure"
                )
                self.stopped.wait(self.policy.backoff(failures))

    def _watch(self) -> None:
        """Follow one watch stream from resource_version until the server ends it."""
        kwargs: dict[str, Any] = {
            "label_selector": self.label_selector,
            "watch": True,
            "allow_watch_bookmarks": True,
            "resource_version": self.resource_version,
            "timeout_seconds": self.policy.watch_seconds,
            "_preload_content": False,
            "_request_timeout": (
                self.policy.connect_timeout,
                self.policy.watch_seconds + 30,
            ),
        }
        try:
            self.requests += 1
            self.response = self._call(**kwargs)
        except Exception as exc:  # noqa: BLE001 - classified
            raise classify_error(exc, self.what.replace("list", "watch", 1)) from None
        self.failure = None
        try:
            for line in iter_resp_lines(self.response):
                if self.stopped.is_set():
                    return
                self._apply(json.loads(line))
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken stream is retried
            raise classify_error(exc, self.what.replace("list", "watch", 1)) from None
        finally:
            response, self.response = self.response, None
            if response is not None:
                response.release_conn()

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        metadata = obj.get("metadata") or {}
        version = metadata.get("resourceVersion") or ""
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise ApiError(
                    "watch_expired",
                    f"watch {self.resource}: {obj.get('message') or '410 Gone'}",
                )
            raise ApiError(
                "api_unavailable",
                f"watch {self.resource}: error event {code}: {obj.get('message')}",
            )
        key = (metadata.get("namespace") or "", metadata.get("name") or "")
        if kind in ("ADDED", "MODIFIED"):
            if self.keep(key[0] or key[1]):
                record = self.transform(obj)
                with self.lock:
                    self.store[key] = (version, record)
        elif kind == "DELETED":
            with self.lock:
                self.store.pop(key, None)
        if version:
            with self.lock:
                self.resource_version = version


# --- the source ---------------------------------------------------------------------


@dataclass(frozen=True)
class NamespaceFilter:
    """Namespace name globs to include (empty: all) and to exclude."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __call__(self, namespace: str) -> bool:
        if self.include and not any(
            fnmatch.fnmatchcase(namespace, g) for g in self.include
        ):
            return False
        return not any(fnmatch.fnmatchcase(namespace, g) for g in self.exclude)

    def literal_namespaces(self) -> list[str] | None:
        """Return the included names when every include is a plain name, else None.

        Then the source lists inside those namespaces only, which namespaced Roles
        allow, instead of across the cluster.
        """
        if not self.include or any(GLOB_CHARACTERS & set(g) for g in self.include):
            return None
        return sorted(name for name in set(self.include) if self(name))


# --- client configuration ---------------------------------------------------------


class KubeconfigError(ValueError):
    """Failure to load the Kubernetes client configuration.

    The message names the file, what is wrong with it and the fix.
    """


# The lists of named entries in a kubeconfig.
KUBECONFIG_LISTS = ("clusters", "contexts", "users")
# The kubeconfig that kubectl and the kubernetes client read when $KUBECONFIG is
# unset or empty.
DEFAULT_KUBECONFIG = "~/.kube/config"


def load_configuration(
    kubeconfig: str | None, context: str | None
) -> kube_client.Configuration:
    """Load the API client settings the --kubeconfig and --context flags select.

    With neither flag, the pod's service account is used, then the default
    kubeconfig ($KUBECONFIG or ~/.kube/config). Raises KubeconfigError naming the
    file, what is wrong with it and the fix.
    """
    configuration = kube_client.Configuration()
    if kubeconfig:
        subject = f"--kubeconfig {kubeconfig}"
        _check_kubeconfig_file(kubeconfig, subject)
        _load_kubeconfig(kubeconfig, context, configuration, subject)
        return configuration

    in_cluster_error: ConfigException | None = None
    if not context:
        try:
            kube_config.load_incluster_config(client_configuration=configuration)
            return configuration
        except ConfigException as exc:
            in_cluster_error = exc

    from_environment = bool(os.environ.get("KUBECONFIG"))
    default = os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG
    paths = [path for path in default.split(os.pathsep) if path]
    existing = [path for path in paths if os.path.exists(os.path.expanduser(path))]
    origin = "$KUBECONFIG" if from_environment else "the default kubeconfig"
    if not existing:
        shown = ", ".join(paths)
        if in_cluster_error is None:
            raise KubeconfigError(
                f"--context {context}: {origin} ({shown}) does not exist; pass "
                "--kubeconfig PATH with the file that defines this context"
            )
        raise KubeconfigError(
            f"no Kubernetes configuration found: not running inside a cluster "
            f"({in_cluster_error}) and {origin} ({shown}) does not exist; run inside "
            "the cluster with a service account, or pass --kubeconfig PATH (and "
            "--context NAME)"
        )
    for path in existing:
        _check_kubeconfig_file(path, f"{origin} {path}")
    subject = f"{origin} {', '.join(existing)}"
    _load_kubeconfig(default, context, configuration, subject)
    return configuration


def _load_kubeconfig(
    path: str,
    context: str | None,
    configuration: kube_client.Configuration,
    subject: str,
) -> None:
    """Load `path` into `configuration`; `subject` names the file in errors."""
    try:
        kube_config.load_kube_config(
            config_file=path, context=context, client_configuration=configuration
        )
    except ConfigException as exc:
        if context and "context" in str(exc):
            fix = (
                f"pass a context the file defines to --context (kubectl config "
                f"get-contexts --kubeconfig {path} lists them)"
            )
        elif "context" in str(exc):
            fix = "set current-context in the file or pass --context NAME"
        else:
            fix = "compare the file with the output of `kubectl config view --raw`"
        raise KubeconfigError(f"{subject}: {exc}; {fix}") from None
    except OSError as exc:
        raise KubeconfigError(
            f"{subject}: cannot read a file it names: {exc}; fix the path in the "
            "kubeconfig"
        ) from None
    except (yaml.YAMLError, TypeError, KeyError, AttributeError, ValueError) as exc:
        # The client indexes the parsed YAML without checking its shape, so a
        # structure that _check_kubeconfig_file lets through can still fail here.
        raise KubeconfigError(
            f"{subject}: not a valid kubeconfig ({type(exc).__name__}: {exc}); "
            "compare it with the output of `kubectl config view --raw`"
        ) from None


def _check_kubeconfig_file(path: str, subject: str) -> None:
    """Read one kubeconfig file and raise KubeconfigError if it is not one.

    The kubernetes client would fail on such a file with a YAML, Unicode or type
    error deep in its own code, which says nothing about the file.
    """
    fix = "compare it with the output of `kubectl config view --raw`"
    try:
        with open(os.path.expanduser(path), "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise KubeconfigError(
            f"{subject}: file not found; pass the path of an existing kubeconfig"
        ) from None
    except OSError as exc:
        raise KubeconfigError(
            f"{subject}: cannot read the file: {exc.strerror or exc}; check the path "
            "and its permissions"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise KubeconfigError(
            f"{subject}: not UTF-8 text (invalid byte at offset {exc.start}), but a "
            f"kubeconfig is YAML text; {fix}"
        ) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"{subject}: {_yaml_problem(exc)}; {fix}") from None
    if document is None:
        raise KubeconfigError(f"{subject}: the file is empty; {fix}")
    if not isinstance(document, dict):
        raise KubeconfigError(
            f"{subject}: the top level is a {_yaml_type(document)}, expected a "
            f"mapping with clusters, contexts and users; {fix}"
        )
    for key in KUBECONFIG_LISTS:
        entries = document.get(key)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise KubeconfigError(
                f"{subject}: {key} is a {_yaml_type(entries)}, expected a list; {fix}"
            )
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise KubeconfigError(
                    f"{subject}: {key}[{index}] is not a mapping with a name; {fix}"
                )
    current = document.get("current-context")
    if current is not None and not isinstance(current, str):
        raise KubeconfigError(
            f"{subject}: current-context is a {_yaml_type(current)}, expected a "
            f"context name; {fix}"
        )


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Describe a YAML error by position and problem, without quoting the file."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return (
            f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: "
            f"{exc.problem}"
        )
    return "invalid YAML"


def _yaml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, str):
        return "string"
    return "number" if isinstance(value, (int, float)) else type(value).__name__


class KubernetesSource:
    """Observe the Dify releases and enterprise pods of one cluster."""

    name = "kubernetes"

    def __init__(
        self,
        api: kube_client.CoreV1Api,
        cluster: str,
        chart_name: str = "dify",
        pod_selector: str = "app=dify-enterprise",
        namespaces: NamespaceFilter = NamespaceFilter(),
        namespace_selector: str | None = None,
        watch: bool = False,
        policy: RetryPolicy = RetryPolicy(),
    ):
        self.api = api
        self.cluster = cluster
        self.chart_name = chart_name
        self.watch = watch
        self.policy = policy
        self.namespace_filter = namespaces
        self.releases: list[Reflector] = []
        self.pods: list[Reflector] = []
        self.namespace_labels: Reflector | None = None
        self._history: dict[tuple[str, str, int], datetime | None] = {}
        self._started = False
        self.history_requests = 0

        scopes: list[str | None] = list(namespaces.literal_namespaces() or []) or [None]
        for scope in scopes:
            self.releases.append(
                Reflector(
                    "secrets",
                    api.list_namespaced_secret
                    if scope
                    else api.list_secret_for_all_namespaces,
                    RELEASE_SELECTOR,
                    SECRET_PAGE_SIZE,
                    release_record,
                    policy,
                    namespace=scope,
                    keep=namespaces,
                )
            )
            self.pods.append(
                Reflector(
                    "pods",
                    api.list_namespaced_pod
                    if scope
                    else api.list_pod_for_all_namespaces,
                    pod_selector,
                    POD_PAGE_SIZE,
                    pod_record,
                    policy,
                    namespace=scope,
                    keep=namespaces,
                )
            )
        if namespace_selector:
            self.namespace_labels = Reflector(
                "namespaces",
                api.list_namespace,
                namespace_selector,
                NAMESPACE_PAGE_SIZE,
                namespace_record,
                policy,
            )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> KubernetesSource:
        """Build the source from the CLI's source flags; raises UsageError."""
        from ..cli import UsageError

        try:
            configuration = load_configuration(args.kubeconfig, args.context)
        except KubeconfigError as exc:
            raise UsageError(str(exc)) from None
        api = kube_client.CoreV1Api(kube_client.ApiClient(configuration))
        return cls(
            api,
            cluster=args.cluster,
            chart_name=args.chart_name,
            pod_selector=args.enterprise_pod_selector,
            namespaces=NamespaceFilter(
                tuple(args.namespace_include), tuple(args.namespace_exclude)
            ),
            namespace_selector=args.namespace_selector,
            watch=getattr(args, "command", None) == "serve",
        )

    def reflectors(self) -> Iterator[Reflector]:
        yield from self.releases
        yield from self.pods
        if self.namespace_labels is not None:
            yield self.namespace_labels

    def observe(self) -> ObservationSet:
        """Return the current observations, or a fatal error while the API fails."""
        result = ObservationSet(source=self.name, observes_pods=True)
        try:
            self._sync()
        except ApiError as exc:
            result.errors.append(SourceError(exc.reason, str(exc)))
            return result
        for reflector in self.reflectors():
            result.errors.extend(reflector.drain_events())
        try:
            self._build(result)
        except ApiError as exc:
            result.errors.append(SourceError(exc.reason, str(exc)))
            return result
        result.clusters = frozenset({self.cluster})
        return result

    def close(self, timeout: float = 2.0) -> None:
        """Stop the watches and wait up to `timeout` seconds for their threads."""
        for reflector in self.reflectors():
            reflector.stop()
        deadline = time.monotonic() + timeout
        for reflector in self.reflectors():
            if reflector.thread is not None:
                reflector.thread.join(max(0.0, deadline - time.monotonic()))

    def _sync(self) -> None:
        """List everything (once, when watching), or report a failing watch."""
        if self.watch and self._started:
            for reflector in self.reflectors():
                if reflector.failure is not None:
                    raise reflector.failure
            return
        for reflector in self.reflectors():
            reflector.list_all()
        if self.watch:
            for reflector in self.reflectors():
                reflector.start()
            self._started = True
            # Watch threads still reading a socket at interpreter exit can abort the
            # process, so they are stopped first.
            atexit.register(self.close)

    def _build(self, result: ObservationSet) -> None:
        allowed: set[str] | None = None
        if self.namespace_labels is not None:
            allowed = set(self.namespace_labels.records())

        chosen: dict[str, ReleaseRecord] = {}
        for reflector in self.releases:
            for record in reflector.records():
                if allowed is not None and record.namespace not in allowed:
                    continue
                if (
                    record.summary is not None
                    and record.summary.chart_name != self.chart_name
                ):
                    continue
                current = chosen.get(record.namespace)
                if current is None or _newer(record, current):
                    chosen[record.namespace] = record

        pods: dict[str, list[PodRecord]] = {}
        for reflector in self.pods:
            for pod in reflector.records():
                pods.setdefault(pod.namespace, []).append(pod)

        for namespace, record in sorted(chosen.items()):
            observation = self._observe_namespace(
                record, pods.get(namespace, []), result
            )
            if observation is not None:
                result.instances[observation.key] = observation

    def _observe_namespace(
        self, record: ReleaseRecord, pods: list[PodRecord], result: ObservationSet
    ) -> Observation | None:
        namespace = record.namespace
        if record.summary is None:
            message = f"release Secret {namespace}/{record.secret}: {record.error}"
            result.errors.append(SourceError("release_decode_failed", message))
            return Observation(
                self.cluster,
                namespace,
                release=record.release or None,
                error_reason="release_decode_failed",
                error_message=message,
            )
        summary = record.summary
        origin = f"release {namespace}/{summary.name} revision {summary.revision}"
        observation = interpret_values(summary.values, origin, self.cluster, namespace)
        if observation is None:
            return None  # Dify Enterprise is disabled in this release.
        if observation.error_reason:
            result.errors.append(
                SourceError("release_decode_failed", observation.error_message or "")
            )
            return Observation(
                self.cluster,
                namespace,
                release=summary.name,
                error_reason="release_decode_failed",
                error_message=observation.error_message,
            )

        running = [pod for pod in pods if pod.running and pod.started is not None]
        started = min((pod.started for pod in running), default=None)
        changed_at = None
        if (
            started is not None
            and summary.last_deployed
            and summary.last_deployed > started
        ):
            changed_at = self._license_changed_at(summary)
        return Observation(
            self.cluster,
            namespace,
            mode=observation.mode,
            license_server=observation.license_server,
            release=summary.name,
            pods_started=started,
            pods_ready=sum(1 for pod in running if pod.ready),
            license_changed_at=changed_at,
        )

    def _license_changed_at(self, deployed: ReleaseSummary) -> datetime | None:
        """Return when the license settings last changed, reading older revisions.

        Called only when the deployed revision is newer than the oldest running
        enterprise pod, and cached per revision. None when the change is older than
        the history Helm kept.
        """
        key = (deployed.namespace, deployed.name, deployed.revision)
        if key in self._history:
            return self._history[key]
        history = Reflector(
            "secrets",
            self.api.list_namespaced_secret,
            f"owner=helm,name={deployed.name}",
            SECRET_PAGE_SIZE,
            lambda item: item,
            self.policy,
            namespace=deployed.namespace,
        )
        history.list_all()
        self.history_requests += history.requests
        # Raw items live only for this call. They are decoded newest first, so the
        # walk usually stops after one revision.
        older = sorted(
            (
                (revision, item)
                for revision, status, item in map(_revision_of, history.records())
                if revision < deployed.revision and status in EFFECTIVE_STATUSES
            ),
            key=lambda entry: -entry[0],
        )
        del history

        current = deployed
        changed_at: datetime | None = None
        for revision, item in older:
            try:
                summary = summarize_release(decode_release(item["data"]["release"]))
            except (ReleaseDecodeError, KeyError, TypeError) as exc:
                log.warning(
                    "cannot decode an older release revision",
                    extra={
                        "namespace": deployed.namespace,
                        "release": deployed.name,
                        "revision": revision,
                        "error": str(exc),
                    },
                )
                break
            if summary.license_settings != current.license_settings:
                changed_at = current.last_deployed
                break
            current = summary
        else:
            # No change in the kept history: the settings date from the install when
            # Helm still has revision 1, and are of unknown age otherwise.
            if current.revision == 1:
                changed_at = current.last_deployed
        self._history[key] = changed_at
        return changed_at


def _revision_of(item: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
    """Return (revision, status, item) from a release Secret's Helm labels."""
    labels = (item.get("metadata") or {}).get("labels") or {}
    try:
        revision = int(labels.get("version", ""))
    except ValueError:
        revision = 0
    return revision, labels.get("status") or "", item


def _newer(record: ReleaseRecord, current: ReleaseRecord) -> bool:
    """Prefer a decodable release, then the most recently deployed one."""
    if (record.summary is None) != (current.summary is None):
        return record.summary is not None
    if record.summary is None or current.summary is None:
        return record.secret > current.secret
    left = record.summary.last_deployed
    right = current.summary.last_deployed
    if left is None or right is None:
        return record.summary.name > current.summary.name
    return left > right
