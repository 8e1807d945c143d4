"""Kubernetes source against the API simulator, through the unmodified client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dify_license_exporter.cli import main
from dify_license_exporter.collector import LicenseCollector
from dify_license_exporter.evaluate import evaluate
from dify_license_exporter.refresh import Refresher
from dify_license_exporter.registry import load_registry
from dify_license_exporter.sources.kubernetes import (
    KubeconfigError,
    KubernetesSource,
    NamespaceFilter,
    RetryPolicy,
    load_configuration,
)
from k8s_simulator import (
    Fault,
    Simulator,
    helm_release,
    namespace,
    pod,
    release_secret,
    write_kubeconfig,
)
from kubernetes import client, config
from prometheus_client import CollectorRegistry, generate_latest

REPO = Path(__file__).resolve().parent.parent
TOKEN = "simulator-token"
T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
NOW = datetime(2026, 6, 1, tzinfo=UTC)
# Short settings so outages and retries take fractions of a second.
FAST = RetryPolicy(
    initial_backoff=0.05,
    max_backoff=0.2,
    max_retry_after=2.0,
    attempts=3,
    read_timeout=2.0,
    watch_seconds=2,
)

REGISTRY = """\
timezone: UTC
licenses:
  - id: DIFY-ENT-TEST-0001
    name: team-a
    effective: 2026-01-01
    expires: 2026-12-31
    mode: offline
    bound_to: {cluster: sim, namespace: team-a}
  - id: DIFY-ENT-TEST-0002
    name: team-b
    effective: 2026-01-01
    expires: 2026-06-10
    mode: online
    bound_to: {cluster: sim, namespace: team-b}
instances:
  - cluster: sim
    namespace: team-a
    license: team-a
    environment: production
    owner: Jane Roe <jane@example.com>
    department: AI Platform
  - cluster: sim
    namespace: team-b
    license: team-b
    environment: staging
    owner: John Doe <john@example.com>
    department: Search
renewals:
  - license: team-a
    requester: procurement@example.com
    activator: sre@example.com
  - license: team-b
    requester: procurement@example.com
    activator: sre@example.com
"""


def release(ns, revision, mode, deployed, status="deployed", name="dify", **kwargs):
    config_values = {"enterprise": {"licenseMode": mode}} if mode else {}
    return helm_release(name, ns, revision, status, config_values, deployed, **kwargs)


@pytest.fixture
def sim():
    simulator = Simulator(token=TOKEN, bookmark_interval=0.3)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def kubeconfig(sim, tmp_path):
    base = f"http://127.0.0.1:{sim.server.server_address[1]}"
    return write_kubeconfig(os.fspath(tmp_path / "kubeconfig.json"), base, TOKEN)


@pytest.fixture
def api(kubeconfig):
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    api_client = client.ApiClient(configuration)
    yield client.CoreV1Api(api_client)
    api_client.close()


@pytest.fixture
def make_source(api):
    sources = []

    def make(**kwargs):
        kwargs.setdefault("policy", FAST)
        source = KubernetesSource(api, "sim", **kwargs)
        sources.append(source)
        return source

    yield make
    for source in sources:
        source.close()


@pytest.fixture
def registry(tmp_path):
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY, encoding="utf-8")
    return load_registry([os.fspath(path)])


def wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout:.1f} s")


def secret_queries(sim, path="/api/v1/secrets"):
    return [query for logged, query in sim.request_log if logged == path]


def two_teams(sim):
    """team-a: offline, pod up since T0+1h; team-b: online, two pods, one unready."""
    sim.install(release("team-a", 1, "offline", T0))
    sim.put("pods", pod("enterprise-a", "team-a", T0 + timedelta(hours=1)))
    sim.install(release("team-b", 1, None, T0))
    sim.put("pods", pod("enterprise-b1", "team-b", T0 + timedelta(hours=3)))
    sim.put(
        "pods", pod("enterprise-b2", "team-b", T0 + timedelta(hours=2), ready=False)
    )
    sim.put("pods", pod("pending-b", "team-b", T0, phase="Pending"))
    sim.put("pods", pod("web-b", "team-b", T0, labels={"app": "dify-web"}))


# --- discovery -----------------------------------------------------------------


def test_discovery_reads_releases_and_pods(sim, make_source):
    two_teams(sim)
    sim.install(release("cache", 1, "offline", T0, name="redis", chart_name="redis"))
    disabled = {"enterprise": {"enabled": False}}
    sim.install(helm_release("dify", "disabled", 1, "deployed", disabled, T0))
    result = make_source().observe()

    assert result.errors == []
    assert result.clusters == frozenset({"sim"})
    assert result.observes_pods is True
    assert sorted(result.instances) == [("sim", "team-a"), ("sim", "team-b")]
    team_a = result.instances[("sim", "team-a")]
    assert team_a.mode == "offline"
    assert team_a.license_server == "https://licenses.dify.ai"
    assert team_a.release == "dify"
    assert team_a.pods_started == T0 + timedelta(hours=1)
    assert team_a.pods_ready == 1
    assert team_a.license_changed_at is None
    team_b = result.instances[("sim", "team-b")]
    assert team_b.mode == "online"
    assert team_b.pods_started == T0 + timedelta(hours=2)
    assert team_b.pods_ready == 1


def test_discovery_sends_selectors_to_server(sim, make_source):
    two_teams(sim)
    make_source(pod_selector="app=dify-enterprise").observe()
    secrets = secret_queries(sim)
    pods = secret_queries(sim, "/api/v1/pods")
    assert secrets == [{"labelSelector": "owner=helm,status=deployed", "limit": "50"}]
    assert pods == [{"labelSelector": "app=dify-enterprise", "limit": "500"}]


def test_discovery_pages_of_fifty(sim, make_source):
    for index in range(120):
        sim.install(release(f"ns-{index:03d}", 1, "online", T0))
    result = make_source().observe()
    queries = secret_queries(sim)
    assert len(result.instances) == 120
    assert len(queries) == 3
    assert [query.get("limit") for query in queries] == ["50", "50", "50"]
    assert "continue" not in queries[0]
    assert queries[1]["continue"] != queries[2]["continue"]


def test_namespace_globs_filter(sim, make_source):
    for ns in ("dify-prod", "dify-staging", "dify-scratch", "other"):
        sim.install(release(ns, 1, "online", T0))
    source = make_source(
        namespaces=NamespaceFilter(include=("dify-*",), exclude=("*-scratch",))
    )
    result = source.observe()
    assert sorted(ns for _, ns in result.instances) == ["dify-prod", "dify-staging"]
    # Globs need the cluster-wide list.
    assert len(secret_queries(sim)) == 1


def test_namespace_literal_include_lists_namespaced(sim, make_source):
    for ns in ("team-a", "team-b", "team-c"):
        sim.install(release(ns, 1, "online", T0))
    source = make_source(namespaces=NamespaceFilter(include=("team-a", "team-c")))
    result = source.observe()
    assert sorted(ns for _, ns in result.instances) == ["team-a", "team-c"]
    assert sim.requests["/api/v1/secrets"] == 0
    assert sim.requests["/api/v1/pods"] == 0
    assert sim.requests["/api/v1/namespaces/team-a/secrets"] == 1
    assert sim.requests["/api/v1/namespaces/team-c/pods"] == 1


def test_namespace_label_selector(sim, make_source):
    for ns, labels in (("team-a", {"dify": "yes"}), ("team-b", {"dify": "no"})):
        sim.put("namespaces", namespace(ns, labels))
        sim.install(release(ns, 1, "online", T0))
    result = make_source(namespace_selector="dify=yes").observe()
    assert sorted(ns for _, ns in result.instances) == ["team-a"]
    assert secret_queries(sim, "/api/v1/namespaces") == [
        {"labelSelector": "dify=yes", "limit": "500"}
    ]


def test_newest_of_two_dify_releases_wins(sim, make_source):
    sim.install(release("team-a", 1, "online", T0, name="dify-old"))
    sim.install(
        release("team-a", 1, "offline", T0 + timedelta(days=1), name="dify-new")
    )
    observation = make_source().observe().instances[("sim", "team-a")]
    assert observation.release == "dify-new"
    assert observation.mode == "offline"


# --- restart_pending from revisions --------------------------------------------


def test_upgrade_to_offline_then_pod_restart(sim, make_source, registry):
    sim.install(release("team-a", 1, "online", T0))
    sim.put("pods", pod("enterprise-a", "team-a", T0 + timedelta(hours=1)))
    source = make_source(watch=True)
    first = source.observe()
    assert first.instances[("sim", "team-a")].mode == "online"
    assert evaluate(registry, first, NOW)[0].restart_pending is False

    # The upgrade to offline mode leaves the running pod alone.
    upgraded = T0 + timedelta(hours=5)
    sim.upgrade(release("team-a", 2, "offline", upgraded))
    wait_for(
        lambda: ("team-a", "sh.helm.release.v1.dify.v2") in source.releases[0].store
    )
    pending = source.observe()
    observation = pending.instances[("sim", "team-a")]
    assert observation.mode == "offline"
    assert observation.license_changed_at == upgraded
    status = evaluate(registry, pending, NOW)[0]
    assert status.restart_pending is True
    assert "restart_pending" in status.findings

    # The pod restarts: a new pod starts after the upgrade, the old one goes away.
    sim.put("pods", pod("enterprise-a2", "team-a", upgraded + timedelta(minutes=10)))
    sim.delete("pods", "team-a", "enterprise-a")
    restart = upgraded + timedelta(minutes=10)
    wait_for(lambda: [p.started for p in source.pods[0].records()] == [restart])
    restarted = source.observe()
    observation = restarted.instances[("sim", "team-a")]
    assert observation.pods_started == restart
    status = evaluate(registry, restarted, NOW)[0]
    assert status.restart_pending is False
    assert "restart_pending" not in status.findings


def test_upgrade_without_license_change_not_pending(sim, make_source, registry):
    sim.install(release("team-a", 1, "offline", T0))
    sim.put("pods", pod("enterprise-a", "team-a", T0 + timedelta(hours=1)))
    sim.upgrade(release("team-a", 2, "offline", T0 + timedelta(hours=2)))
    result = make_source().observe()
    observation = result.instances[("sim", "team-a")]
    # Revision 1 is the install and carries the same settings.
    assert observation.license_changed_at == T0
    assert evaluate(registry, result, NOW)[0].restart_pending is False


def test_license_change_before_pod_start_reads_history_once(sim, make_source):
    sim.install(release("team-a", 1, "online", T0))
    sim.upgrade(release("team-a", 2, "offline", T0 + timedelta(hours=1)))
    sim.upgrade(release("team-a", 3, "offline", T0 + timedelta(hours=3)))
    sim.put("pods", pod("enterprise-a", "team-a", T0 + timedelta(hours=2)))
    source = make_source()
    first = source.observe().instances[("sim", "team-a")]
    second = source.observe().instances[("sim", "team-a")]
    assert first.license_changed_at == T0 + timedelta(hours=1)
    assert second.license_changed_at == T0 + timedelta(hours=1)
    history = secret_queries(sim, "/api/v1/namespaces/team-a/secrets")
    assert history == [{"labelSelector": "owner=helm,name=dify", "limit": "50"}]


def test_superseded_revisions_not_fetched(sim, make_source):
    for ns in ("team-a", "team-b"):
        sim.install(release(ns, 1, "online", T0))
        for revision in (2, 3, 4):
            mode = "offline" if revision % 2 else "online"
            sim.upgrade(release(ns, revision, mode, T0 + timedelta(hours=revision)))
        sim.put("pods", pod("enterprise", ns, T0 + timedelta(days=1)))
    result = make_source().observe()
    assert len(result.instances) == 2
    assert [path for path, _ in sim.request_log] == ["/api/v1/secrets", "/api/v1/pods"]
    assert secret_queries(sim)[0]["labelSelector"] == "owner=helm,status=deployed"


# --- change tracking -------------------------------------------------------------


def test_deleted_release_leaves_observations(sim, make_source, registry):
    two_teams(sim)
    source = make_source(watch=True)
    assert ("sim", "team-b") in source.observe().instances
    sim.uninstall("team-b", "dify")
    wait_for(lambda: len(source.releases[0].records()) == 1)
    result = source.observe()
    assert sorted(result.instances) == [("sim", "team-a")]
    team_b = [s for s in evaluate(registry, result, NOW) if s.namespace == "team-b"][0]
    assert team_b.findings[-1] == "not_deployed"
    assert team_b.mode is None


def test_watch_uses_resource_version_and_bookmarks(sim, make_source):
    two_teams(sim)
    source = make_source(watch=True)
    source.observe()
    listed = int(source.releases[0].resource_version)
    wait_for(lambda: len(secret_queries(sim)) >= 2)
    watch = secret_queries(sim)[1]
    assert watch["watch"] == "true"
    assert watch["allowWatchBookmarks"] == "true"
    assert watch["resourceVersion"] == str(listed)
    # Bookmarks move the resourceVersion on without any change to secrets.
    sim.put("pods", pod("enterprise-x", "team-a", T0))
    wait_for(lambda: int(source.releases[0].resource_version) > listed)


def test_watch_expired_relists_and_keeps_records(sim, make_source):
    two_teams(sim)
    source = make_source(watch=True)
    source.observe()
    wait_for(lambda: len(secret_queries(sim)) >= 2)
    team_b_record = source.releases[0].store[("team-b", "sh.helm.release.v1.dify.v1")]

    sim.expire_watches()
    sim.upgrade(release("team-a", 2, "online", T0 + timedelta(hours=6)))
    wait_for(lambda: any(q.get("watch") is None for q in secret_queries(sim)[2:]))
    wait_for(lambda: source.observe().instances[("sim", "team-a")].mode == "online")
    result = source.observe()
    # The re-list reused the decoded record of the unchanged release.
    assert source.releases[0].store[("team-b", "sh.helm.release.v1.dify.v1")] is (
        team_b_record
    )
    assert result.errors == []


def test_watch_expired_is_reported_once(sim, make_source):
    two_teams(sim)
    source = make_source(watch=True)
    source.observe()
    wait_for(lambda: len(secret_queries(sim)) >= 2)
    secrets_before = len(secret_queries(sim))
    pods_before = len(secret_queries(sim, "/api/v1/pods"))
    sim.expire_watches()
    # Watches also reconnect on their own timeout, so wait for the re-lists (no
    # `watch` parameter) that only a 410 causes, not for any new request.
    wait_for(
        lambda: any(q.get("watch") is None for q in secret_queries(sim)[secrets_before:])
    )
    wait_for(
        lambda: any(
            q.get("watch") is None
            for q in secret_queries(sim, "/api/v1/pods")[pods_before:]
        )
    )
    reasons = [error.reason for error in source.observe().errors]
    assert "watch_expired" in reasons
    assert set(reasons) == {"watch_expired"}
    assert [error.reason for error in source.observe().errors] == []


def test_api_down_keeps_last_snapshot(sim, make_source, tmp_path):
    two_teams(sim)
    registry_path = tmp_path / "registry.yaml"
    registry_path.write_text(REGISTRY, encoding="utf-8")
    source = make_source(watch=True)
    refresher = Refresher([os.fspath(registry_path)], [source])
    refresher.refresh()
    good = refresher.snapshot.observations
    good_time = refresher.health.last_success["kubernetes"]
    assert len(good.instances) == 2

    sim.set_down(True)
    wait_for(lambda: source.releases[0].failure is not None)
    refresher.refresh()
    refresher.refresh()
    assert refresher.snapshot.observations is good
    assert refresher.health.last_success["kubernetes"] == good_time
    assert refresher.health.errors_total[("kubernetes", "api_unavailable")] >= 1
    assert refresher.health.active_errors == {("kubernetes", "api_unavailable"): 1}

    metrics = generate_metrics(refresher)
    assert (
        'dify_license_mode{cluster="sim",environment="production",license="team-a",'
        'mode="offline",namespace="team-a"} 1.0' in metrics
    )
    assert (
        'dify_license_exporter_active_errors{reason="api_unavailable",'
        'source="kubernetes"} 1.0' in metrics
    )

    # While down, team-b switched to offline; once back, the watch resumes.
    sim.upgrade(release("team-b", 2, "offline", T0 + timedelta(days=2)))
    sim.set_down(False)
    wait_for(
        lambda: all(reflector.failure is None for reflector in source.reflectors())
    )
    wait_for(
        lambda: ("team-b", "sh.helm.release.v1.dify.v2") in source.releases[0].store
    )
    refresher.refresh()
    assert refresher.snapshot.observations is not good
    assert (
        refresher.snapshot.observations.instances[("sim", "team-b")].mode == "offline"
    )
    assert refresher.health.last_success["kubernetes"] > good_time
    assert refresher.health.active_errors == {}


def generate_metrics(refresher) -> str:
    registry = CollectorRegistry()
    registry.register(LicenseCollector(refresher, clock=NOW.timestamp))
    return generate_latest(registry).decode()


# --- errors ----------------------------------------------------------------------


def test_malformed_release_only_fails_its_namespace(sim, make_source, tmp_path):
    two_teams(sim)
    broken = release_secret(release("broken", 1, "online", T0), "bm90IGd6aXAgYXQgYWxs")
    sim.put("secrets", broken)
    registry_path = tmp_path / "registry.yaml"
    registry_path.write_text(REGISTRY, encoding="utf-8")
    refresher = Refresher([os.fspath(registry_path)], [make_source()])
    refresher.refresh()

    observations = refresher.snapshot.observations
    assert sorted(ns for _, ns in observations.instances) == [
        "broken",
        "team-a",
        "team-b",
    ]
    bad = observations.instances[("sim", "broken")]
    assert bad.error_reason == "release_decode_failed"
    assert bad.mode is None
    assert observations.instances[("sim", "team-a")].mode == "offline"
    assert refresher.health.errors_total[("kubernetes", "release_decode_failed")] == 1
    assert refresher.health.last_success["kubernetes"] > 0

    metrics = generate_metrics(refresher)
    assert (
        'dify_license_observation_error{cluster="sim",namespace="broken",'
        'reason="release_decode_failed"} 1.0' in metrics
    )
    assert (
        'dify_license_mode{cluster="sim",environment="staging",license="team-b",'
        'mode="online",namespace="team-b"} 1.0' in metrics
    )


def test_invalid_license_mode_is_decode_failure(sim, make_source):
    sim.install(release("team-a", 1, "airgapped", T0))
    observation = make_source().observe().instances[("sim", "team-a")]
    assert observation.error_reason == "release_decode_failed"
    assert (
        "enterprise.licenseMode must be online or offline" in observation.error_message
    )


def test_rate_limit_honours_retry_after(sim, make_source):
    two_teams(sim)
    sim.add_fault(Fault(status=429, retry_after=1, path="/api/v1/secrets"))
    started = time.monotonic()
    result = make_source().observe()
    elapsed = time.monotonic() - started
    assert result.errors == []
    assert len(result.instances) == 2
    assert elapsed >= 1.0
    assert sim.requests["/api/v1/secrets"] == 2


def test_server_errors_retry_with_backoff(sim, make_source):
    two_teams(sim)
    sim.add_fault(Fault(status=500, times=2, path="/api/v1/pods"))
    result = make_source().observe()
    assert result.errors == []
    assert sim.requests["/api/v1/pods"] == 3


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault(status=503, times=10), "api_unavailable"),
        (Fault(status=429, times=10, retry_after=0), "rate_limited"),
        (Fault(status=403, times=10), "forbidden"),
        (Fault(status=0, delay=1.5, times=10), "timeout"),
    ],
)
def test_failed_list_is_fatal_error(sim, make_source, fault, reason):
    two_teams(sim)
    sim.add_fault(fault)
    policy = RetryPolicy(
        initial_backoff=0.01, max_backoff=0.02, attempts=2, read_timeout=0.5
    )
    result = make_source(policy=policy).observe()
    assert [error.reason for error in result.errors] == [reason]
    assert result.instances == {}
    assert result.clusters == frozenset()


def test_api_refused_is_unavailable(api, make_source, sim):
    sim.stop()
    result = make_source(policy=RetryPolicy(initial_backoff=0.01, attempts=1)).observe()
    assert [error.reason for error in result.errors] == ["api_unavailable"]
    assert "connection failed" in result.errors[0].message


# --- command line ----------------------------------------------------------------


def test_check_cli_json(sim, kubeconfig, tmp_path):
    two_teams(sim)
    sim.upgrade(release("team-b", 2, "offline", T0 + timedelta(hours=4)))
    sim.install(release("stray", 1, "online", T0))
    registry_path = tmp_path / "registry.yaml"
    registry_path.write_text(REGISTRY, encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "dify_license_exporter",
        "check",
        "--registry",
        os.fspath(registry_path),
        "--source",
        "kubernetes",
        "--kubeconfig",
        kubeconfig,
        "--context",
        "sim",
        "--cluster",
        "sim",
        "--format",
        "json",
        "--now",
        "2026-06-01T00:00:00Z",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document == {
        "now": "2026-06-01T00:00:00Z",
        "instances": [
            {
                "cluster": "sim",
                "namespace": "stray",
                "license": None,
                "environment": None,
                "mode": "online",
                "expires": None,
                "days_to_expiry": None,
                "stage": None,
                "severity": "warning",
                "findings": ["unregistered"],
                "status": None,
            },
            {
                "cluster": "sim",
                "namespace": "team-a",
                "license": "team-a",
                "environment": "production",
                "mode": "offline",
                "expires": "2027-01-01T00:00:00Z",
                "days_to_expiry": 214.0,
                "stage": None,
                "severity": "none",
                "findings": [],
                "status": None,
            },
            {
                "cluster": "sim",
                "namespace": "team-b",
                "license": "team-b",
                "environment": "staging",
                "mode": "offline",
                "expires": "2026-06-11T00:00:00Z",
                "days_to_expiry": 10.0,
                "stage": 30,
                "severity": "warning",
                "findings": ["expiring", "mode_mismatch", "restart_pending"],
                "status": None,
            },
        ],
    }


# --- client configuration --------------------------------------------------------

FIX_HINT = "compare it with the output of `kubectl config view --raw`"


@pytest.fixture
def no_cluster(monkeypatch, tmp_path):
    """Run outside any cluster, with HOME in an empty folder and no $KUBECONFIG."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", os.fspath(home))
    return home


def check_with_kubeconfig(tmp_path, kubeconfig, *extra):
    registry_path = tmp_path / "registry.yaml"
    registry_path.write_text(REGISTRY, encoding="utf-8")
    return main(
        [
            "check",
            "--registry",
            os.fspath(registry_path),
            "--source",
            "kubernetes",
            "--cluster",
            "sim",
            "--kubeconfig",
            kubeconfig,
            *extra,
        ]
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            b"garbage: [",
            "invalid YAML at line 1, column 11: expected the node content, but "
            "found '<stream end>'",
        ),
        (
            b"[1,2]",
            "the top level is a list, expected a mapping with clusters, contexts "
            "and users",
        ),
        (
            b"\xff\xfe",
            "not UTF-8 text (invalid byte at offset 0), but a kubeconfig is YAML text",
        ),
        (b"", "the file is empty"),
        (b"clusters: 5\n", "clusters is a number, expected a list"),
        (b"users: {a: 1}\n", "users is a mapping, expected a list"),
        (b"contexts: [5]\n", "contexts[0] is not a mapping with a name"),
        (b"contexts: [{context: {}}]\n", "contexts[0] is not a mapping with a name"),
        (
            b"contexts: []\ncurrent-context: [a]\n",
            "current-context is a list, expected a context name",
        ),
    ],
)
def test_malformed_kubeconfig_exits_two(tmp_path, capsys, content, problem):
    path = tmp_path / "kubeconfig"
    path.write_bytes(content)
    code = check_with_kubeconfig(tmp_path, os.fspath(path))
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"error: --kubeconfig {path}: {problem}; {FIX_HINT}\n"
    assert "Traceback" not in err


def test_kubeconfig_shape_the_client_rejects_exits_two(tmp_path, capsys):
    # Passes the file check, but the client expects `context` to be a mapping.
    path = tmp_path / "kubeconfig"
    path.write_text("contexts: [{name: a, context: 5}]\ncurrent-context: a\n")
    code = check_with_kubeconfig(tmp_path, os.fspath(path))
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: --kubeconfig {path}: not a valid kubeconfig (")
    assert err.endswith(f"; {FIX_HINT}\n")


def test_missing_kubeconfig_names_the_flag(tmp_path, capsys):
    path = tmp_path / "absent.yaml"
    code = check_with_kubeconfig(tmp_path, os.fspath(path))
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        f"error: --kubeconfig {path}: file not found; pass the path of an existing "
        "kubeconfig\n"
    )


def test_kubeconfig_directory_exits_two(tmp_path, capsys):
    code = check_with_kubeconfig(tmp_path, os.fspath(tmp_path))
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        f"error: --kubeconfig {tmp_path}: cannot read the file: Is a directory; "
        "check the path and its permissions\n"
    )


def test_unknown_context_names_the_fix(tmp_path, capsys):
    path = write_kubeconfig(os.fspath(tmp_path / "kc.json"), "http://127.0.0.1:1")
    code = check_with_kubeconfig(tmp_path, path, "--context", "prod")
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: --kubeconfig {path}: Invalid kube-config file. ")
    assert "Expected object with name prod" in err
    assert err.endswith(
        "; pass a context the file defines to --context (kubectl config "
        f"get-contexts --kubeconfig {path} lists them)\n"
    )
    assert "pass --kubeconfig and --context" not in err


def test_kubeconfig_without_current_context(tmp_path, capsys):
    path = tmp_path / "kc.yaml"
    path.write_text("apiVersion: v1\nkind: Config\n")
    code = check_with_kubeconfig(tmp_path, os.fspath(path))
    err = capsys.readouterr().err
    assert code == 2
    assert err.endswith("; set current-context in the file or pass --context NAME\n")


def test_load_configuration_reads_context(tmp_path):
    path = write_kubeconfig(os.fspath(tmp_path / "kc.json"), "http://127.0.0.1:7")
    assert load_configuration(path, None).host == "http://127.0.0.1:7"
    assert load_configuration(path, "sim").host == "http://127.0.0.1:7"


def test_no_configuration_outside_cluster(no_cluster):
    with pytest.raises(KubeconfigError) as caught:
        load_configuration(None, None)
    message = str(caught.value)
    assert message.startswith("no Kubernetes configuration found: not running inside")
    assert "the default kubeconfig (~/.kube/config) does not exist" in message
    assert message.endswith(
        "run inside the cluster with a service account, or pass --kubeconfig PATH "
        "(and --context NAME)"
    )


def test_context_without_kubeconfig(no_cluster):
    with pytest.raises(KubeconfigError) as caught:
        load_configuration(None, "prod")
    assert str(caught.value) == (
        "--context prod: the default kubeconfig (~/.kube/config) does not exist; "
        "pass --kubeconfig PATH with the file that defines this context"
    )


def test_default_kubeconfig_is_checked(no_cluster):
    (no_cluster / ".kube").mkdir()
    (no_cluster / ".kube" / "config").write_text("[1, 2]\n")
    with pytest.raises(KubeconfigError) as caught:
        load_configuration(None, None)
    assert str(caught.value).startswith(
        "the default kubeconfig ~/.kube/config: the top level is a list"
    )


def test_environment_kubeconfig_is_checked(no_cluster, monkeypatch, tmp_path):
    good = write_kubeconfig(os.fspath(tmp_path / "good.json"), "http://127.0.0.1:7")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe")
    monkeypatch.setenv("KUBECONFIG", good)
    assert load_configuration(None, None).host == "http://127.0.0.1:7"

    monkeypatch.setenv("KUBECONFIG", f"{good}{os.pathsep}{bad}")
    with pytest.raises(KubeconfigError) as caught:
        load_configuration(None, None)
    assert str(caught.value).startswith(
        f"$KUBECONFIG {bad}: not UTF-8 text (invalid byte at offset 0)"
    )


# --- benchmark smoke run ---------------------------------------------------------


def test_benchmark_smoke_twenty_namespaces(tmp_path):
    output = tmp_path / "results.json"
    command = [
        sys.executable,
        os.fspath(REPO / "benchmarks" / "bench_kubernetes.py"),
        "--namespaces",
        "20",
        "--refresh-interval",
        "1",
        "--output",
        os.fspath(output),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [result] = json.loads(output.read_text(encoding="utf-8"))
    assert result["pages_needed"] == 2
    assert result["check_requests"] == 2
    # Two list pages and the two watches that follow them.
    assert result["serve_first_requests"] == 4
    assert result["serve_requests_per_refresh"] == 0.0
    assert result["relist_after_410_requests"] == 4
    assert result["mode_series"] == 40
