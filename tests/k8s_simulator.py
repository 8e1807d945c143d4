"""A small Kubernetes API server simulator for secrets, pods and namespaces.

It speaks the wire protocol the `kubernetes` client uses: lists with labelSelector,
limit and continue; watch streams (chunked JSON lines) with ADDED, MODIFIED, DELETED,
BOOKMARK and 410 ERROR events; Status bodies for errors. Tests inject 429 with
Retry-After, 5xx, slow answers and outages, and read the request count per path.
Helm release Secrets are encoded the way Helm v3 stores them.

Only 127.0.0.1 is served. Pages are cut from the current state, not from a snapshot
at the first page's resourceVersion as a real API server does.
"""

from __future__ import annotations

import base64
import bisect
import gzip
import json
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

RESOURCES = {"secrets": "Secret", "pods": "Pod", "namespaces": "Namespace"}
CLUSTER_SCOPED = {"namespaces"}


# --- objects -------------------------------------------------------------------


def encode_helm_release(release: dict[str, Any]) -> str:
    """Return the release string Helm v3 stores: base64 of gzip of the JSON."""
    raw = json.dumps(release, separators=(",", ":")).encode()
    return base64.b64encode(gzip.compress(raw, compresslevel=9)).decode()


def helm_time(moment: datetime) -> str:
    """Format a time the way Go marshals time.Time: RFC 3339, nanoseconds trimmed."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}000".rstrip("0")
    if fraction:
        text += "." + fraction
    offset = moment.strftime("%z")
    if offset in ("", "+0000"):
        return text + "Z"
    return f"{text}{offset[:3]}:{offset[3:]}"


def helm_release(
    name: str,
    namespace: str,
    revision: int,
    status: str,
    config: dict[str, Any],
    deployed: datetime,
    chart_name: str = "dify",
    chart_version: str = "3.2.0",
    chart_values: dict[str, Any] | None = None,
    templates: list[dict[str, str]] | None = None,
    manifest: str = "",
) -> dict[str, Any]:
    """Build a release object with the fields and layout Helm v3 marshals."""
    if chart_values is None:
        chart_values = {
            "enterprise": {
                "enabled": True,
                "licenseMode": "online",
                "licenseServer": "https://licenses.dify.ai",
            }
        }
    return {
        "name": name,
        "info": {
            "first_deployed": helm_time(deployed),
            "last_deployed": helm_time(deployed),
            "deleted": "",
            "description": "Upgrade complete" if revision > 1 else "Install complete",
            "status": status,
        },
        "chart": {
            "metadata": {
                "name": chart_name,
                "version": chart_version,
                "appVersion": "1.9.0",
                "apiVersion": "v2",
                "type": "application",
            },
            "lock": None,
            "templates": templates or [],
            "values": chart_values,
            "schema": None,
            "files": [],
        },
        "config": config,
        "manifest": manifest,
        "version": revision,
        "namespace": namespace,
    }


def release_secret(
    release: dict[str, Any], release_string: str | None = None
) -> dict[str, Any]:
    """Wrap a release in the Secret Helm's storage driver writes."""
    name = release["name"]
    revision = release["version"]
    if release_string is None:
        release_string = encode_helm_release(release)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": f"sh.helm.release.v1.{name}.v{revision}",
            "namespace": release["namespace"],
            "labels": {
                "name": name,
                "owner": "helm",
                "status": release["info"]["status"],
                "version": str(revision),
            },
        },
        "type": "helm.sh/release.v1",
        # The Secret's own base64 layer over Helm's release string.
        "data": {"release": base64.b64encode(release_string.encode()).decode()},
    }


def pod(
    name: str,
    namespace: str,
    started: datetime,
    labels: dict[str, str] | None = None,
    phase: str = "Running",
    ready: bool = True,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels if labels is not None else {"app": "dify-enterprise"},
        },
        "spec": {"containers": [{"name": "enterprise", "image": "dify-enterprise:1"}]},
        "status": {
            "phase": phase,
            "startTime": started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "conditions": [
                {"type": "Ready", "status": "True" if ready else "False"},
            ],
        },
    }


def namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels or {}},
        "status": {"phase": "Active"},
    }


# --- label selectors -------------------------------------------------------------

_TERM = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9._/-]+)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<value>[A-Za-z0-9._-]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?\s*$"
)


def parse_selector(text: str) -> Callable[[dict[str, str]], bool]:
    """Compile a label selector; raises ValueError on invalid syntax."""
    terms = []
    for part in re.split(r",(?![^(]*\))", text or ""):
        if not part.strip():
            continue
        match = _TERM.match(part)
        if not match:
            raise ValueError(f"invalid label selector term {part!r}")
        terms.append(match.groupdict())

    def matches(labels: dict[str, str]) -> bool:
        for term in terms:
            key = term["key"]
            if term["op"] in ("=", "=="):
                ok = labels.get(key) == term["value"]
            elif term["op"] == "!=":
                ok = labels.get(key) != term["value"]
            elif term["setop"]:
                values = {v.strip() for v in term["values"].split(",")}
                inside = labels.get(key) in values
                ok = (
                    inside if term["setop"] == "in" else key not in labels or not inside
                )
            else:
                ok = key in labels
            if term["neg"]:
                ok = key not in labels
            if not ok:
                return False
        return True

    return matches


# --- store ---------------------------------------------------------------------


@dataclass
class Stored:
    labels: dict[str, str]
    body: bytes  # the object's JSON, resourceVersion included


@dataclass
class Event:
    revision: int
    resource: str
    kind: str  # ADDED, MODIFIED or DELETED as stored
    namespace: str
    old_labels: dict[str, str] | None
    new_labels: dict[str, str] | None
    body: bytes


@dataclass
class Fault:
    """An injected response for requests whose path contains `path` (all when '')."""

    status: int = 500
    times: int = 1
    path: str = ""
    retry_after: int | None = None
    delay: float = 0.0  # seconds to wait first; with status 0 the request then succeeds
    watch: bool | None = None  # None: lists and watches; True or False: only those


@dataclass
class Simulator:
    """State and fault settings of the simulated API server."""

    token: str | None = None
    bookmark_interval: float = 1.0
    resource_version: int = 100
    compacted: int = 0
    down: bool = False
    objects: dict[str, dict[tuple[str, str], Stored]] = field(default_factory=dict)
    keys: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    requests: Counter = field(default_factory=Counter)
    request_log: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    watch_generation: int = 0
    record_events: bool = True

    def __post_init__(self) -> None:
        self.lock = threading.Condition()
        for resource in RESOURCES:
            self.objects.setdefault(resource, {})
            self.keys.setdefault(resource, [])
        self.server: SimulatorServer | None = None

    # -- object changes ----------------------------------------------------------

    def put(self, resource: str, obj: dict[str, Any]) -> None:
        """Create or replace an object, recording ADDED or MODIFIED."""
        metadata = obj["metadata"]
        key = (metadata.get("namespace", ""), metadata["name"])
        with self.lock:
            self.resource_version += 1
            metadata["resourceVersion"] = str(self.resource_version)
            metadata.setdefault("uid", f"uid-{resource}-{key[0]}-{key[1]}")
            body = json.dumps(obj, separators=(",", ":")).encode()
            labels = dict(metadata.get("labels") or {})
            previous = self.objects[resource].get(key)
            if previous is None:
                bisect.insort(self.keys[resource], key)
            self.objects[resource][key] = Stored(labels, body)
            if self.record_events:
                self.events.append(
                    Event(
                        self.resource_version,
                        resource,
                        "MODIFIED" if previous else "ADDED",
                        key[0],
                        previous.labels if previous else None,
                        labels,
                        body,
                    )
                )
            self.lock.notify_all()

    def delete(self, resource: str, namespace_name: str, name: str) -> None:
        key = (namespace_name, name)
        with self.lock:
            stored = self.objects[resource].pop(key)
            self.keys[resource].remove(key)
            self.resource_version += 1
            obj = json.loads(stored.body)
            obj["metadata"]["resourceVersion"] = str(self.resource_version)
            self.events.append(
                Event(
                    self.resource_version,
                    resource,
                    "DELETED",
                    namespace_name,
                    stored.labels,
                    None,
                    json.dumps(obj, separators=(",", ":")).encode(),
                )
            )
            self.lock.notify_all()

    def get(self, resource: str, namespace_name: str, name: str) -> dict[str, Any]:
        with self.lock:
            return json.loads(self.objects[resource][(namespace_name, name)].body)

    def compact(self) -> None:
        """Forget every event so far: older resourceVersions get 410 Gone."""
        with self.lock:
            self.compacted = self.resource_version
            self.events.clear()

    def expire_watches(self) -> None:
        """Compact, and end every open watch with a 410 ERROR event.

        The resourceVersion moves on first, as it does in a live cluster, so a
        watch that was reconnecting at that moment, from the last version it saw,
        also gets 410 and lists again.
        """
        with self.lock:
            self.resource_version += 1
            self.compacted = self.resource_version
            self.events.clear()
            self.watch_generation += 1
            self.lock.notify_all()

    def set_down(self, down: bool) -> None:
        """Return 503 for every request and drop open watches while down."""
        with self.lock:
            self.down = down
            self.lock.notify_all()

    def add_fault(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    # -- Helm helpers -------------------------------------------------------------

    def install(
        self, release: dict[str, Any], release_string: str | None = None
    ) -> None:
        self.put("secrets", release_secret(release, release_string))

    def upgrade(self, release: dict[str, Any]) -> None:
        """Store a new deployed revision and mark the previous one superseded."""
        previous = f"sh.helm.release.v1.{release['name']}.v{release['version'] - 1}"
        secret = self.get("secrets", release["namespace"], previous)
        secret["metadata"]["labels"]["status"] = "superseded"
        self.put("secrets", secret)
        self.install(release)

    def uninstall(self, namespace_name: str, release_name: str) -> None:
        with self.lock:
            keys = [
                key
                for key, stored in self.objects["secrets"].items()
                if key[0] == namespace_name
                and stored.labels.get("name") == release_name
            ]
        for key in keys:
            self.delete("secrets", *key)

    # -- requests -----------------------------------------------------------------

    def take_fault(self, path: str, watch: bool) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.times <= 0 or fault.path not in path:
                    continue
                if fault.watch is not None and fault.watch != watch:
                    continue
                fault.times -= 1
                return fault
        return None

    def count(self, path: str, query: dict[str, str]) -> None:
        with self.lock:
            self.requests[path] += 1
            self.request_log.append((path, query))

    def list_page(
        self,
        resource: str,
        namespace_name: str | None,
        selector: Callable[[dict[str, str]], bool],
        limit: int,
        token: str | None,
    ) -> tuple[int, bytes]:
        """Return (status, body) of one list page."""
        with self.lock:
            start: tuple[str, str] = ("", "")
            list_revision = self.resource_version
            if token:
                try:
                    state = json.loads(base64.urlsafe_b64decode(token))
                    start = (state["start"][0], state["start"][1])
                    list_revision = int(state["rv"])
                except (ValueError, KeyError, TypeError):
                    return 400, status_body(400, "BadRequest", "invalid continue token")
                if list_revision < self.compacted:
                    return 410, status_body(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a "
                        "consistent list result.",
                    )
            keys = self.keys[resource]
            index = bisect.bisect_right(keys, start) if token else 0
            if namespace_name is not None and not token:
                index = bisect.bisect_left(keys, (namespace_name, ""))
            items: list[bytes] = []
            next_token = ""
            stored_objects = self.objects[resource]
            while index < len(keys):
                key = keys[index]
                index += 1
                if namespace_name is not None and key[0] != namespace_name:
                    break
                stored = stored_objects[key]
                if not selector(stored.labels):
                    continue
                items.append(stored.body)
                if limit and len(items) >= limit:
                    if self._more(resource, index, namespace_name, selector):
                        state = {"rv": list_revision, "start": list(key)}
                        next_token = base64.urlsafe_b64encode(
                            json.dumps(state).encode()
                        ).decode()
                    break
        kind = RESOURCES[resource] + "List"
        metadata: dict[str, Any] = {"resourceVersion": str(list_revision)}
        if next_token:
            metadata["continue"] = next_token
        head = json.dumps({"kind": kind, "apiVersion": "v1", "metadata": metadata})
        return 200, head[:-1].encode() + b',"items":[' + b",".join(items) + b"]}"

    def _more(self, resource, index, namespace_name, selector) -> bool:
        """Return whether an object after position `index` matches the list."""
        keys = self.keys[resource]
        for position in range(index, len(keys)):
            key = keys[position]
            if namespace_name is not None and key[0] != namespace_name:
                return False
            if selector(self.objects[resource][key].labels):
                return True
        return False

    # -- server -------------------------------------------------------------------

    def start(self) -> str:
        """Serve on a free port of 127.0.0.1; return the base URL."""
        handler = type("Handler", (SimulatorHandler,), {"simulator": self})
        self.server = SimulatorServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        if self.server is not None:
            with self.lock:
                self.down = True
                self.lock.notify_all()
            self.server.shutdown()
            self.server.server_close()


def status_body(code: int, reason: str, message: str) -> bytes:
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
    ).encode()


class SimulatorServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # Clients that hang up (timeouts, stopped watches) are part of the tests.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class SimulatorHandler(BaseHTTPRequestHandler):
    simulator: Simulator
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes; without this, Nagle's algorithm
    # and delayed ACKs add about 40 ms to every answer.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802 - name fixed by BaseHTTPRequestHandler
        sim = self.simulator
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        sim.count(parts.path, query)
        watch = query.get("watch") in ("true", "1")

        fault = sim.take_fault(parts.path, watch)
        if fault is not None:
            time.sleep(fault.delay)
            if fault.status:
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = str(fault.retry_after)
                reason = {429: "TooManyRequests", 403: "Forbidden"}.get(
                    fault.status, "InternalError"
                )
                self._send(
                    fault.status, status_body(fault.status, reason, "injected"), headers
                )
                return
        if sim.down:
            self._send(503, status_body(503, "ServiceUnavailable", "API server down"))
            return
        if sim.token is not None:
            if self.headers.get("Authorization") != f"Bearer {sim.token}":
                self._send(401, status_body(401, "Unauthorized", "Unauthorized"))
                return

        route = parse_path(parts.path)
        if route is None:
            self._send(404, status_body(404, "NotFound", f"{parts.path} not found"))
            return
        resource, namespace_name = route
        try:
            selector = parse_selector(query.get("labelSelector", ""))
        except ValueError as exc:
            self._send(400, status_body(400, "BadRequest", str(exc)))
            return
        if watch:
            self._watch(resource, namespace_name, selector, query)
            return
        limit = int(query.get("limit") or 0)
        status, body = sim.list_page(
            resource, namespace_name, selector, limit, query.get("continue")
        )
        self._send(status, body)

    def do_POST(self) -> None:  # noqa: N802 - name fixed by BaseHTTPRequestHandler
        """Control requests for a simulator in another process (benchmarks)."""
        sim = self.simulator
        path = urlsplit(self.path).path
        if path == "/_sim/requests":
            with sim.lock:
                counts = dict(sim.requests)
                sim.requests.clear()
                sim.request_log.clear()
            self._send(200, json.dumps(counts).encode())
        elif path == "/_sim/expire-watches":
            sim.expire_watches()
            self._send(200, b"{}")
        else:
            self._send(404, status_body(404, "NotFound", f"{path} not found"))

    def _send(
        self, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _watch(self, resource, namespace_name, selector, query) -> None:
        sim = self.simulator
        timeout = float(query.get("timeoutSeconds") or 1800)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        deadline = time.monotonic() + timeout
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def line(event_type: str, body: bytes) -> bytes:
            return b'{"type":"%s","object":%s}\n' % (event_type.encode(), body)

        with sim.lock:
            generation = sim.watch_generation
            since = int(query.get("resourceVersion") or 0)
            pending: list[bytes] = []
            if since == 0:
                for key in sim.keys[resource]:
                    stored = sim.objects[resource][key]
                    if namespace_name in (None, key[0]) and selector(stored.labels):
                        pending.append(line("ADDED", stored.body))
                since = sim.resource_version
            elif since < sim.compacted:
                pending.append(
                    line(
                        "ERROR", status_body(410, "Expired", "too old resource version")
                    )
                )
                since = -1
        try:
            for item in pending:
                self._chunk(item)
            if since < 0:
                self._chunk(b"")
                return
            last_bookmark = time.monotonic()
            while True:
                with sim.lock:
                    if sim.down:
                        self.close_connection = True
                        return
                    if sim.watch_generation != generation:
                        pending = [
                            line(
                                "ERROR",
                                status_body(410, "Expired", "too old resource version"),
                            )
                        ]
                        since = -1
                    else:
                        pending = []
                        for event in sim.events:
                            if event.revision <= since or event.resource != resource:
                                continue
                            if namespace_name not in (None, event.namespace):
                                continue
                            was = event.old_labels is not None and selector(
                                event.old_labels
                            )
                            now = event.new_labels is not None and selector(
                                event.new_labels
                            )
                            if was and now:
                                pending.append(line("MODIFIED", event.body))
                            elif now:
                                pending.append(line("ADDED", event.body))
                            elif was:
                                pending.append(line("DELETED", event.body))
                        since = sim.resource_version
                        remaining = deadline - time.monotonic()
                        if not pending and remaining > 0:
                            sim.lock.wait(min(remaining, sim.bookmark_interval, 0.2))
                for item in pending:
                    self._chunk(item)
                if since < 0:
                    break
                now_time = time.monotonic()
                if bookmarks and now_time - last_bookmark >= sim.bookmark_interval:
                    kind = RESOURCES[resource]
                    mark = json.dumps(
                        {
                            "kind": kind,
                            "apiVersion": "v1",
                            "metadata": {"resourceVersion": str(since)},
                        }
                    ).encode()
                    self._chunk(line("BOOKMARK", mark))
                    last_bookmark = now_time
                if now_time >= deadline:
                    break
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def parse_path(path: str) -> tuple[str, str | None] | None:
    """Map an API path to (resource, namespace or None for all namespaces)."""
    parts = path.strip("/").split("/")
    if parts[:2] != ["api", "v1"]:
        return None
    rest = parts[2:]
    if len(rest) == 1 and rest[0] in RESOURCES:
        return rest[0], None
    if len(rest) == 3 and rest[0] == "namespaces" and rest[2] in RESOURCES:
        if rest[2] in CLUSTER_SCOPED:
            return None
        return rest[2], rest[1]
    return None


def write_kubeconfig(path: str, server: str, token: str | None = None) -> str:
    """Write a kubeconfig whose context `sim` points at the simulator."""
    user: dict[str, Any] = {"token": token} if token else {}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sim", "cluster": {"server": server}}],
        "users": [{"name": "sim", "user": user}],
        "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": "sim"}}],
        "current-context": "sim",
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(config, handle)
    return path
