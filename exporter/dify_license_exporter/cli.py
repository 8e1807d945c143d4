"""Command line: serve, check, validate (and the subcommands added beside them).

Exit codes: 0 success; 1 `check` found an instance at or above `--fail-on`;
2 invalid input or usage, with a message naming the file, field, value and fix.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import logging
import signal
import sys
import threading
from datetime import datetime, timezone
from typing import Any, Sequence
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry
from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

from . import __version__, logs
from .collector import LicenseCollector
from .exposition import ExpositionCache
from .evaluate import SEVERITIES, InstanceStatus, evaluate, severity_at_least
from .observations import ObservationSet
from .probe import Prober, ProbeResult, add_probe_flags, prober_from_args
from .refresh import FATAL_REASONS, Refresher, registry_fingerprint
from .registry import (
    Registry,
    RegistryError,
    format_instant,
    load_registry,
    parse_instant,
)
from .server import ExporterServer, parse_listen_address, serve_in_thread

log = logging.getLogger("dify_license_exporter")

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_INVALID = 2


# A refresh re-reads files and may probe many instances; sub-second intervals are
# for tests, and a day is the longest useful one.
MIN_REFRESH_SECONDS = 0.01
MAX_REFRESH_SECONDS = 86400.0
TELEMETRY_PATH = re.compile(r"^/[A-Za-z0-9._~/-]*$")


class UsageError(Exception):
    """Invalid flags or input; main prints the message and exits 2."""


def add_source_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("source flags")
    group.add_argument(
        "--registry",
        action="append",
        default=[],
        metavar="PATH",
        help="registry YAML file; repeat for several files (their lists are joined)",
    )
    group.add_argument(
        "--registry-public-key",
        metavar="PEM",
        help="Ed25519 public key; the registry must carry a valid FILE.sig signature",
    )
    group.add_argument(
        "--source",
        choices=("files", "kubernetes"),
        default="files",
        help="where deployments are observed (default: files)",
    )
    group.add_argument(
        "--values-dir",
        metavar="DIR",
        help="files source: folder of DIR/<cluster>/<namespace>.yaml Helm values",
    )
    group.add_argument(
        "--cluster",
        metavar="NAME",
        help="observe only this cluster (required with --source kubernetes)",
    )
    group.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig file")
    group.add_argument("--context", metavar="NAME", help="kubeconfig context")
    group.add_argument(
        "--enterprise-pod-selector",
        default="app=dify-enterprise",
        metavar="SELECTOR",
        help="label selector of the enterprise pods (default: app=dify-enterprise)",
    )
    group.add_argument(
        "--chart-name",
        default="dify",
        metavar="NAME",
        help="Helm chart name of Dify releases (default: dify)",
    )
    group.add_argument(
        "--namespace-include",
        action="append",
        default=[],
        metavar="GLOB",
        help="observe only namespaces matching this glob; repeatable",
    )
    group.add_argument(
        "--namespace-exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip namespaces matching this glob; repeatable",
    )
    group.add_argument(
        "--namespace-selector",
        metavar="SELECTOR",
        help="observe only namespaces whose labels match this selector",
    )
    add_probe_flags(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dify-license-exporter",
        description="Prometheus exporter and checker for Dify Enterprise licenses.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve /metrics")
    add_source_flags(serve)
    serve.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=":9877",
        metavar="HOST:PORT",
        help="address to listen on (default: :9877)",
    )
    serve.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        default="/metrics",
        metavar="PATH",
        help="path of the metrics page (default: /metrics)",
    )
    serve.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="exporter-toolkit web configuration: TLS and basic auth",
    )
    serve.add_argument(
        "--refresh-interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="seconds between registry and source refreshes (default: 60)",
    )
    serve.add_argument(
        "--log.level",
        dest="log_level",
        choices=logs.LEVELS,
        default="info",
        help="lowest level of the log lines written (default: info)",
    )
    serve.add_argument(
        "--log.format",
        dest="log_format",
        choices=("logfmt", "json"),
        default="logfmt",
        help="format of the log lines on standard error (default: logfmt)",
    )

    check = commands.add_parser("check", help="evaluate once and print the findings")
    add_source_flags(check)
    check.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="table for people, json for scripts (default: table)",
    )
    check.add_argument(
        "--now",
        metavar="RFC3339",
        help="evaluate at this instant instead of the current time",
    )
    check.add_argument(
        "--fail-on",
        choices=SEVERITIES[1:],
        default="critical",
        help="exit 1 when an instance has this severity or higher (default: critical)",
    )

    report = commands.add_parser(
        "report", help="write a capacity and expiry review page (html, csv, markdown)"
    )
    add_source_flags(report)
    report.add_argument(
        "--format",
        choices=("html", "csv", "markdown"),
        default="html",
        help="html: a self-contained page; csv or markdown: the same data (default: html)",
    )
    report.add_argument(
        "--now",
        metavar="RFC3339",
        help="evaluate at this instant instead of the current time",
    )
    report.add_argument(
        "--output",
        metavar="FILE",
        help="write the report to FILE instead of standard output",
    )

    validate = commands.add_parser("validate", help="validate registry files")
    validate.add_argument(
        "--registry",
        action="append",
        default=[],
        metavar="PATH",
        help="registry YAML file; repeat for several files (their lists are joined)",
    )
    validate.add_argument(
        "--registry-public-key",
        metavar="PEM",
        help="Ed25519 public key; each file must carry a valid FILE.sig signature",
    )
    validate.add_argument("paths", nargs="*", metavar="PATH", help="registry files")

    registry = commands.add_parser("registry", help="sign registry files")
    registry_actions = registry.add_subparsers(
        dest="registry_action", required=True, metavar="ACTION"
    )
    sign = registry_actions.add_parser(
        "sign", help="write FILE.sig, the Ed25519 signature of FILE's exact bytes"
    )
    sign.add_argument(
        "--key",
        required=True,
        metavar="PRIVATE_KEY.pem",
        help="unencrypted Ed25519 private key in PEM (openssl genpkey -algorithm ed25519)",
    )
    sign.add_argument("files", nargs="+", metavar="FILE", help="registry files to sign")
    return parser


def check_files_source(args: argparse.Namespace) -> None:
    """Reject a values folder or cluster folder that does not exist, at start.

    A running `serve` keeps its last observations when the folder disappears
    later; a folder missing at start is a typo.
    """
    if args.source != "files" or not args.values_dir:
        return
    if not os.path.isdir(args.values_dir):
        problem = "is a file" if os.path.exists(args.values_dir) else "not found"
        raise UsageError(
            f"--values-dir: {args.values_dir}: values folder {problem}; give a folder "
            "of <cluster>/<namespace>.yaml files"
        )
    if args.cluster and not os.path.isdir(os.path.join(args.values_dir, args.cluster)):
        raise UsageError(
            f"--cluster: no folder {args.cluster!r} in {args.values_dir}; check the "
            "cluster name or create the folder"
        )


def build_sources(args: argparse.Namespace) -> list[Any]:
    """Create the sources chosen by the source flags."""
    if args.cluster is not None and not args.cluster.strip():
        raise UsageError("--cluster: empty value; give the registry's cluster name")
    if args.source == "kubernetes":
        if not args.cluster:
            raise UsageError(
                "--source kubernetes needs --cluster NAME: the registry cluster name "
                "of the cluster being observed"
            )
        from .sources.kubernetes import KubernetesSource

        return [KubernetesSource.from_args(args)]
    if args.values_dir:
        from .sources.files import FilesSource

        return [FilesSource(args.values_dir, args.cluster)]
    return []


def build_prober(args: argparse.Namespace) -> Prober | None:
    """Create the prober chosen by the probe flags; None with --no-probe."""
    try:
        return prober_from_args(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def probe_once(
    args: argparse.Namespace, registry: Registry
) -> dict[tuple[str, str], ProbeResult]:
    """Probe every instance with an api_url once; print failures as warnings."""
    prober = build_prober(args)
    if prober is None:
        return {}
    probes = prober.probe_registry(registry)
    for result in sorted(probes.values(), key=lambda r: r.key):
        if result.error_message:
            print(
                f"warning: probe failed ({result.error_reason}): "
                f"{result.error_message}",
                file=sys.stderr,
            )
    return probes


def load(args: argparse.Namespace) -> Registry:
    """Load the registry named by the source flags; raises RegistryError."""
    return registry_loader(args)(args.registry)


def registry_loader(args: argparse.Namespace):
    key = getattr(args, "registry_public_key", None)
    if not key:
        return load_registry
    from .signing import SigningError, signed_registry_loader

    try:
        return signed_registry_loader(key)
    except SigningError as exc:
        raise UsageError(str(exc)) from None


def parse_now(text: str | None, registry: Registry) -> datetime:
    if text is None:
        return datetime.now(timezone.utc)
    try:
        return parse_instant(text, ZoneInfo(registry.timezone), end_of_day=False)
    except ValueError as exc:
        raise UsageError(f"--now: invalid value {text!r}: {exc}") from None


def status_json(status: InstanceStatus) -> dict[str, Any]:
    result: dict[str, Any] = {
        "cluster": status.cluster,
        "namespace": status.namespace,
        "license": status.license,
        "environment": status.environment,
        "mode": status.mode,
        "expires": format_instant(status.expires) if status.expires else None,
        "days_to_expiry": (
            round(status.days_to_expiry, 6)
            if status.days_to_expiry is not None
            else None
        ),
        "stage": status.stage,
        "severity": status.severity,
        "findings": list(status.findings),
        "status": status.status,
    }
    if status.error:
        result["error"] = status.error
    return result


def render_table(statuses: list[InstanceStatus]) -> str:
    header = (
        "CLUSTER",
        "NAMESPACE",
        "LICENSE",
        "ENVIRONMENT",
        "MODE",
        "EXPIRES",
        "DAYS",
        "STAGE",
        "SEVERITY",
        "FINDINGS",
    )
    rows = [header]
    ordered = sorted(
        statuses,
        key=lambda s: (
            s.days_to_expiry is None,
            s.days_to_expiry if s.days_to_expiry is not None else 0.0,
            s.key,
        ),
    )
    for status in ordered:
        findings = ",".join(status.findings) or "-"
        if status.error:
            findings += " (configuration unreadable, see error)"
        rows.append(
            (
                status.cluster,
                status.namespace,
                status.license or "-",
                status.environment or "-",
                status.mode or "-",
                status.expires.strftime("%Y-%m-%d %H:%M") if status.expires else "-",
                f"{status.days_to_expiry:.1f}"
                if status.days_to_expiry is not None
                else "-",
                str(status.stage) if status.stage is not None else "-",
                status.severity,
                findings,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


def observe_once(sources: list[Any]) -> tuple[ObservationSet | None, list[str]]:
    """Observe every source once; return the merged observations and fatal errors."""
    merged: ObservationSet | None = None
    fatal = []
    for source in sources:
        result = source.observe()
        for error in result.errors:
            if error.reason in FATAL_REASONS:
                fatal.append(error.message)
            else:
                print(f"error: {error.message}", file=sys.stderr)
        if merged is None:
            merged = result
        else:
            merged.instances.update(result.instances)
            merged.clusters = merged.clusters | result.clusters
            merged.observes_pods = merged.observes_pods or result.observes_pods
    return merged, fatal


def evaluate_once(
    args: argparse.Namespace,
) -> tuple[Registry, datetime, list[InstanceStatus]]:
    """Load, observe, probe and evaluate once, as `check` and `report` do."""
    if not args.registry:
        raise UsageError(f"{args.command} needs --registry PATH")
    registry = load(args)
    now = parse_now(args.now, registry)
    observations, fatal = observe_once(build_sources(args))
    if fatal:
        raise UsageError("\n".join(fatal))
    probes = probe_once(args, registry)
    statuses = evaluate(registry, observations, now, probes, cluster=args.cluster)
    return registry, now, statuses


def run_check(args: argparse.Namespace) -> int:
    _registry, now, statuses = evaluate_once(args)
    if args.format == "json":
        document = {
            "now": format_instant(now),
            "instances": [status_json(status) for status in statuses],
        }
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        print(f"now: {format_instant(now)}")
        print(render_table(statuses))
    if any(s.error for s in statuses):
        # The observed configuration of these instances is unknown, so a mode
        # mismatch there would go unseen: as a gate, check must not pass. The
        # errors were printed by observe_once.
        return EXIT_INVALID
    failing = any(severity_at_least(s.severity, args.fail_on) for s in statuses)
    return EXIT_FINDINGS if failing else EXIT_OK


def run_report(args: argparse.Namespace) -> int:
    from .report import render_report

    registry, now, statuses = evaluate_once(args)
    text = render_report(args.format, registry, statuses, now)
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        with open(args.output, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    except OSError as exc:
        raise UsageError(
            f"--output: cannot write {args.output}: {exc.strerror}; check the folder "
            "and its permissions"
        ) from None
    print(f"report written: {args.output} ({args.format})", file=sys.stderr)
    return EXIT_OK


def run_validate(args: argparse.Namespace) -> int:
    paths = list(args.registry) + list(args.paths)
    if not paths:
        raise UsageError("validate needs --registry PATH")
    registry = registry_loader(args)(paths)
    print(
        f"registry valid: {len(registry.licenses)} licenses, "
        f"{len(registry.instances)} instances, {len(registry.renewals)} renewal "
        f"entries, timezone {registry.timezone}"
    )
    return EXIT_OK


def run_serve(args: argparse.Namespace) -> int:
    logs.configure(args.log_level, args.log_format)
    if not args.registry:
        raise UsageError("serve needs --registry PATH")
    if not (
        math.isfinite(args.refresh_interval)
        and MIN_REFRESH_SECONDS <= args.refresh_interval <= MAX_REFRESH_SECONDS
    ):
        raise UsageError(
            f"--refresh-interval: invalid value {args.refresh_interval}; use a "
            f"number of seconds from {MIN_REFRESH_SECONDS} to {MAX_REFRESH_SECONDS:.0f}"
        )
    if not TELEMETRY_PATH.match(args.telemetry_path) or args.telemetry_path in (
        "/",
        "/healthz",
        "/readyz",
    ):
        raise UsageError(
            f"--web.telemetry-path: invalid value {args.telemetry_path!r}; use a "
            "path of letters, digits and - . _ ~ / such as /metrics, other than "
            "/, /healthz and /readyz"
        )
    check_files_source(args)
    try:
        address = parse_listen_address(args.listen_address)
    except ValueError as exc:
        raise UsageError(f"--web.listen-address: {exc}") from None
    # Reject an invalid registry before starting. The fingerprint is taken before
    # the load, so a file changed during the load is read again at the first
    # refresh.
    fingerprint = registry_fingerprint(args.registry)
    loader = registry_loader(args)
    initial_registry = loader(args.registry)
    web_config = None
    if args.web_config_file:
        from .webconfig import WebConfigError, load_web_config

        try:
            web_config = load_web_config(args.web_config_file)
        except WebConfigError as exc:
            raise UsageError(str(exc)) from None

    refresher = Refresher(
        args.registry, build_sources(args), loader, build_prober(args)
    )
    refresher.prime(initial_registry, fingerprint)
    refresher.refresh()
    registry = CollectorRegistry()
    collector = LicenseCollector(refresher, cluster=args.cluster)
    registry.register(collector)
    process_registry = CollectorRegistry()
    ProcessCollector(registry=process_registry)
    PlatformCollector(registry=process_registry)
    GCCollector(registry=process_registry)
    cache = ExpositionCache(collector, refresher.snapshot_key, process_registry)
    cache.warm()

    try:
        server = ExporterServer(
            address, registry, args.telemetry_path, lambda: refresher.ready
        )
    except OSError as exc:
        raise UsageError(
            f"--web.listen-address: cannot listen on {args.listen_address}: "
            f"{exc.strerror}"
        ) from None
    server.render = cache.render
    if web_config is not None:
        # The TLS and auth families change between scrapes: render them every time.
        web_config.apply(server, process_registry)
    stopping = threading.Event()

    def handle_signal(signum: int, _frame: object) -> None:
        log.info("stopping", extra={"reason": signal.Signals(signum).name})
        stopping.set()

    signal.signal(signal.SIGTERM, handle_signal)
    signal.signal(signal.SIGINT, handle_signal)
    serve_in_thread(server)
    refresher.start(args.refresh_interval, after_refresh=cache.warm)
    snapshot = refresher.snapshot
    log.info(
        "listening",
        extra={
            "address": "%s:%d" % server.server_address[:2],
            "path": args.telemetry_path,
            "interval": args.refresh_interval,
            "version": __version__,
            "instances": len(snapshot.registry.instances) if snapshot.registry else 0,
        },
    )
    stopping.wait()
    refresher.stop()
    server.shutdown()
    server.server_close()
    for source in refresher.sources:
        close = getattr(source, "close", None)
        if close is not None:
            close()
    log.info("stopped")
    return EXIT_OK


def run_registry(args: argparse.Namespace) -> int:
    """Run `registry sign`: write FILE.sig beside each FILE."""
    from .signing import SigningError, load_private_key, sign_file

    try:
        key = load_private_key(args.key)
        for path in args.files:
            print(f"wrote {sign_file(key, path)}")
    except SigningError as exc:
        raise UsageError(str(exc)) from None
    return EXIT_OK


COMMANDS = {
    "serve": run_serve,
    "check": run_check,
    "report": run_report,
    "validate": run_validate,
    "registry": run_registry,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = COMMANDS[args.command]
    try:
        code = handler(args)
        # Write buffered output now, so a write error is reported here.
        sys.stdout.flush()
        return code
    except RegistryError as exc:
        count = len(exc.problems)
        noun = "problem" if count == 1 else "problems"
        print(f"error: invalid registry ({count} {noun}):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_INVALID
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (`check | head`); nothing left to report.
        sys.stderr.close()
        return EXIT_OK
    except OSError as exc:
        # Writing the output failed (a full disk, a closed stream).
        print(f"error: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_INVALID
