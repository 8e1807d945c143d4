"""Benchmark the Kubernetes source at 100, 1,000 and 5,000 namespaces.

Each namespace holds a deployed Dify release Secret of realistic size (see
releases.py), three superseded revisions and one running enterprise pod. The API
simulator runs in its own process. The script measures, against the same data:

- the I/O floor: a bare kubernetes client fetching the same pages, reading each body
  and parsing it for the continue token, nothing else;
- one-shot lists as `check` runs them: a cold list (every release decoded) and a
  second list that reuses the decoded records of unchanged Secrets, which is what a
  periodic re-list would cost on every refresh;
- `serve` with watches: the first refresh, a steady refresh, API requests per
  refresh, the /metrics scrape median of 20, the re-list after a 410, peak RSS.

Run: .venv/bin/python benchmarks/bench_kubernetes.py [--namespaces 100 1000 5000]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [os.fspath(REPO / "tests"), os.fspath(HERE)]

from k8s_simulator import (  # noqa: E402
    Simulator,
    encode_helm_release,
    pod,
    release_secret,
    write_kubeconfig,
)
from releases import chart_parts, dify_release  # noqa: E402

CLUSTER = "bench"
DEPLOYED = datetime(2026, 9, 1, 8, 0, tzinfo=timezone(timedelta(hours=8)))
SECRET_PAGE = 50
POD_PAGE = 500
_PARTS = None


def namespace_name(index: int) -> str:
    return f"dify-{index:05d}"


def _encode_deployed(index: int) -> str:
    global _PARTS
    if _PARTS is None:
        _PARTS = chart_parts()
    mode = "offline" if index % 3 == 0 else "online"
    release = dify_release(namespace_name(index), 4, "deployed", mode, DEPLOYED, _PARTS)
    return encode_helm_release(release)


def serve_simulator(count: int) -> None:
    """Fill a simulator with `count` namespaces, print its port, serve until killed."""
    parts = chart_parts()
    sim = Simulator(bookmark_interval=60.0, record_events=False)
    with multiprocessing.Pool(2) as pool:
        strings = pool.map(_encode_deployed, range(count), chunksize=50)
    for index, release_string in enumerate(strings):
        ns = namespace_name(index)
        mode = "offline" if index % 3 == 0 else "online"
        for revision in (1, 2, 3, 4):
            status = "deployed" if revision == 4 else "superseded"
            deployed = DEPLOYED - timedelta(days=4 - revision)
            release = dify_release(ns, revision, status, mode, deployed, parts)
            # NOTE: superseded revisions carry the deployed revision's payload (same
            # size and layout, wrong revision inside) to keep set-up time down; the
            # exporter never fetches them here, which the request counts confirm.
            sim.put("secrets", release_secret(release, release_string))
        sim.put("pods", pod("dify-enterprise-0", ns, DEPLOYED + timedelta(hours=1)))
    del strings
    sim.record_events = True
    url = sim.start()
    print(url.rsplit(":", 1)[1], flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    sim.stop()


def write_registry(path: Path, count: int) -> None:
    lines = ["timezone: UTC", "licenses:"]
    for index in range(count):
        ns = namespace_name(index)
        mode = "offline" if index % 3 == 0 else "online"
        lines += [
            f"  - id: DIFY-ENT-BENCH-{index:05d}",
            f"    name: {ns}",
            "    effective: 2026-01-01",
            f"    expires: 2027-{index % 12 + 1:02d}-15",
            f"    mode: {mode}",
            f"    bound_to: {{cluster: {CLUSTER}, namespace: {ns}}}",
        ]
    lines.append("instances:")
    for index in range(count):
        ns = namespace_name(index)
        lines += [
            f"  - cluster: {CLUSTER}",
            f"    namespace: {ns}",
            f"    license: {ns}",
            "    environment: production",
            "    owner: Jane Roe <jane@example.com>",
            "    department: AI Platform",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def post(base: str, path: str) -> dict:
    request = urllib.request.Request(base + path, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def api_client(kubeconfig: str):
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return client.CoreV1Api(client.ApiClient(configuration))


def io_floor(api) -> float:
    """Fetch the release and pod pages with a bare client; return the seconds."""
    started = time.perf_counter()
    for call, selector, limit in (
        (api.list_secret_for_all_namespaces, "owner=helm,status=deployed", SECRET_PAGE),
        (api.list_pod_for_all_namespaces, "app=dify-enterprise", POD_PAGE),
    ):
        token = None
        while True:
            kwargs = {"label_selector": selector, "limit": limit}
            if token:
                kwargs["_continue"] = token
            response = call(_preload_content=False, **kwargs)
            body = response.data
            response.release_conn()
            token = json.loads(body)["metadata"].get("continue")
            if not token:
                break
    return time.perf_counter() - started


def one_shot_lists(api) -> tuple[float, float, int]:
    """Time a cold list and a re-list with reused records; return requests of one."""
    from dify_license_exporter.sources.kubernetes import KubernetesSource

    source = KubernetesSource(api, CLUSTER)
    started = time.perf_counter()
    result = source.observe()
    cold = time.perf_counter() - started
    assert not result.errors, result.errors
    requests = sum(reflector.requests for reflector in source.reflectors())
    started = time.perf_counter()
    source.observe()
    relist = time.perf_counter() - started
    return cold, relist, requests


def scrape(url: str) -> tuple[float, str]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        body = response.read().decode()
    return time.perf_counter() - started, body


def metric(body: str, prefix: str) -> float:
    for line in body.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(prefix)


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise KeyError("VmHWM")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_serve(kubeconfig: str, registry: Path, sim_base: str, interval: float) -> dict:
    """Run `serve` against the simulator and measure it."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "dify_license_exporter",
        "serve",
        "--registry",
        os.fspath(registry),
        "--source",
        "kubernetes",
        "--kubeconfig",
        kubeconfig,
        "--cluster",
        CLUSTER,
        "--web.listen-address",
        f"127.0.0.1:{port}",
        "--refresh-interval",
        str(interval),
        "--log.level",
        "error",
    ]
    base = f"http://127.0.0.1:{port}"
    post(sim_base, "/_sim/requests")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        wait_http(base + "/healthz", 600)
        _, body = scrape(base + "/metrics")
        first_refresh = metric(
            body, 'dify_license_exporter_refresh_duration_seconds{source="kubernetes"}'
        )
        first_requests = sum(post(sim_base, "/_sim/requests").values())

        # Two steady refreshes: the watches keep the data current in between.
        time.sleep(2 * interval + 0.5)
        steady_requests = sum(post(sim_base, "/_sim/requests").values())
        _, body = scrape(base + "/metrics")
        steady_refresh = metric(
            body, 'dify_license_exporter_refresh_duration_seconds{source="kubernetes"}'
        )

        latencies = [scrape(base + "/metrics")[0] for _ in range(20)]

        # A 410 on every watch: each resource is listed again, reusing records.
        post(sim_base, "/_sim/expire-watches")
        time.sleep(interval + 0.5)
        relist_requests = sum(post(sim_base, "/_sim/requests").values())
        rss = peak_rss_mib(process.pid)
        _, body = scrape(base + "/metrics")
        series = sum(
            1 for line in body.splitlines() if line.startswith("dify_license_mode{")
        )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    return {
        "serve_first_refresh_s": first_refresh,
        "serve_first_requests": first_requests,
        "serve_steady_refresh_s": steady_refresh,
        "serve_requests_per_refresh": steady_requests / 2,
        "scrape_median_ms": statistics.median(latencies) * 1000,
        "relist_after_410_requests": relist_requests,
        "peak_rss_mib": rss,
        "mode_series": series,
    }


def bench(count: int, interval: float) -> dict:
    simulator = subprocess.Popen(
        [sys.executable, __file__, "simulate", str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(simulator.stdout.readline())
        sim_base = f"http://127.0.0.1:{port}"
        with tempfile.TemporaryDirectory() as folder:
            kubeconfig = write_kubeconfig(os.path.join(folder, "kubeconfig"), sim_base)
            registry = Path(folder, "registry.yaml")
            write_registry(registry, count)
            api = api_client(kubeconfig)
            floors = [io_floor(api) for _ in range(3)]
            post(sim_base, "/_sim/requests")
            cold, relist, requests = one_shot_lists(api)
            served = run_serve(kubeconfig, registry, sim_base, interval)
    finally:
        simulator.send_signal(signal.SIGTERM)
        simulator.wait(timeout=60)
    pages = math.ceil(count / SECRET_PAGE) + math.ceil(count / POD_PAGE)
    return {
        "namespaces": count,
        "pages_needed": pages,
        "io_floor_s": statistics.median(floors),
        "check_cold_list_s": cold,
        "check_requests": requests,
        "relist_reusing_records_s": relist,
        **served,
    }


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["simulate"]:
        serve_simulator(int(argv[1]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespaces", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--refresh-interval", type=float, default=5.0)
    parser.add_argument("--output", help="write the results as JSON to this file")
    args = parser.parse_args(argv)
    results = []
    for count in args.namespaces:
        result = bench(count, args.refresh_interval)
        results.append(result)
        print(json.dumps(result), flush=True)
    if args.output:
        Path(args.output).write_text(
            json.dumps(results, indent=2) + "\n", encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
