"""The `report` command: HTML, CSV and Markdown, and the HTML page in Chromium."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime

import pytest
from conftest import REPO
from dify_api_simulator import Behavior, DifyApiSimulator, features, system_features
from dify_license_exporter.cli import main
from dify_license_exporter.evaluate import evaluate
from dify_license_exporter.probe import Prober, file_credentials
from dify_license_exporter.registry import load_registry
from dify_license_exporter.report import (
    Capacity,
    _markdown_cell,
    license_capacity,
    render_report,
)

NOW = datetime(2026, 12, 4, tzinfo=UTC)
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

REGISTRY = """\
timezone: UTC
licenses:
  - id: DIFY-ENT-SECRET-0001
    name: prod-main
    effective: 2026-01-01
    expires: 2026-12-25
    mode: online
    bound_to: {{cluster: prod-cn, namespace: dify}}
  - id: DIFY-ENT-SECRET-0002
    name: prod-intl
    effective: 2026-05-18
    expires: 2027-05-18
    mode: offline
    bound_to: {{cluster: prod-cn, namespace: dify-intl}}
  - id: DIFY-ENT-SECRET-0003
    name: test-shared
    effective: 2026-08-26
    expires: 2027-08-26
    mode: online
    bound_to: {{cluster: test-sg, namespace: dify-test}}
  - id: DIFY-ENT-SECRET-0004
    name: old-lab
    effective: 2025-01-01
    expires: 2026-11-30
    mode: offline
    bound_to: {{cluster: test-sg, namespace: lab}}
instances:
  - cluster: prod-cn
    namespace: dify
    license: prod-main
    environment: production
    owner: Jane Roe <jane@example.com>
    department: AI Platform
    api_url: {prod}
  - cluster: prod-cn
    namespace: dify-intl
    license: prod-intl
    environment: production
    owner: Li Wei
    department: International
    api_url: {intl}
  - cluster: test-sg
    namespace: dify-test
    license: test-shared
    environment: test
    owner: "=HYPERLINK(1)"
    department: QA
    api_url: {test}
  - cluster: test-sg
    namespace: dify-qa
    license: test-shared
    environment: test
    owner: QA <script>alert(1)</script>
    department: QA
    api_url: {qa}
  - cluster: test-sg
    namespace: lab
    license: old-lab
    environment: development
    department: Labs
renewals:
  - {{license: prod-main, requester: buy@example.com, activator: sre@example.com}}
  - {{license: prod-intl, requester: buy@example.com, activator: sre@example.com}}
  - {{license: test-shared, notice_days: [30, 7], requester: qa, activator: sre}}
"""


@pytest.fixture(scope="module")
def simulator():
    with DifyApiSimulator() as running:
        running.set(
            "prod",
            Behavior(
                body=system_features(
                    "expiring", "2026-12-25", {"enabled": True, "size": 17, "limit": 20}
                ),
                features_body=features(
                    workspace_members={"enabled": True, "size": 96, "limit": 100}
                ),
            ),
        )
        running.set(
            "intl",
            Behavior(
                body=system_features(
                    "expired", "2026-11-01", {"enabled": True, "size": 2, "limit": 10}
                ),
                features_body=features(
                    workspace_members={"enabled": True, "size": 40, "limit": 50}
                ),
            ),
        )
        running.set(
            "test",
            Behavior(
                body=system_features(
                    "active", "2027-08-26", {"enabled": True, "size": 3, "limit": 5}
                ),
                features_body=features(),
            ),
        )
        running.set("qa", Behavior(mode="error", code=503))
        yield running


@pytest.fixture(scope="module")
def registry_path(simulator, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    path = folder / "registry.yaml"
    path.write_text(
        REGISTRY.format(
            prod=simulator.url("prod"),
            intl=simulator.url("intl"),
            test=simulator.url("test"),
            qa=simulator.url("qa"),
        )
    )
    token = folder / "token"
    token.write_text("report-token\n")
    return str(path), str(token)


@pytest.fixture(scope="module")
def evaluated(registry_path):
    path, token = registry_path
    registry = load_registry([path])
    prober = Prober(
        timeout=2.0, credentials=file_credentials(token), clock=NOW.timestamp
    )
    probes = prober.probe_registry(registry)
    return registry, evaluate(registry, None, NOW, probes)


def test_license_capacity_sums_instances():
    class Fake:
        def __init__(self, license, seats, allowed):
            from dify_license_exporter.probe import ProbeResult

            self.license = license
            self.probe = ProbeResult(
                "c", "n", NOW, 0.0, True, "active", None, None, None, seats, allowed
            )

    capacity = license_capacity(
        [Fake("a", 30, 100), Fake("a", 45, 100), Fake("b", 1, None)]
    )
    assert capacity == {
        "a": [Capacity("seats", 75, 100)],
        "b": [Capacity("seats", 1, None)],
    }
    assert capacity["a"][0].ratio == 0.75
    assert capacity["b"][0].ratio is None


def test_report_csv_rows(evaluated):
    registry, statuses = evaluated
    rows = list(
        csv.DictReader(io.StringIO(render_report("csv", registry, statuses, NOW)))
    )
    assert [row["namespace"] for row in rows] == [
        "lab",
        "dify",
        "dify-intl",
        "dify-qa",
        "dify-test",
    ]
    lab, prod, intl, qa, test = rows
    assert lab["days_to_expiry"] == "-3.0"
    assert lab["severity"] == "critical"
    assert lab["findings"] == "expired registry_incomplete"
    assert lab["status"] == ""
    assert prod["expires"] == "2026-12-26T00:00:00Z"
    assert prod["days_to_expiry"] == "22.0"
    assert prod["stage"] == "30"
    assert prod["status"] == "expiring"
    assert prod["seats_used"] == "96"
    assert prod["seats_allowed"] == "100"
    assert prod["seats_utilization"] == "96.0"
    assert prod["workspaces_utilization"] == "85.0"
    assert intl["findings"] == "status_mismatch"
    assert intl["severity"] == "critical"
    assert qa["probe_error"] == "http_error"
    assert qa["owner"] == "QA <script>alert(1)</script>"
    assert test["owner"] == "'=HYPERLINK(1)"
    assert test["seats_used"] == ""
    assert test["workspaces_used"] == "3"
    assert test["workspaces_utilization"] == "60.0"


def test_report_markdown_tables(evaluated):
    registry, statuses = evaluated
    text = render_report("markdown", registry, statuses, NOW)
    assert text.startswith("# Dify license capacity review\n")
    assert "Generated 2026-12-04T00:00:00Z" in text
    assert "The tables show times in the registry time zone, UTC." in text
    assert (
        "| Instance | License | Environment | Owner | Expires (UTC) | Days | Stage |"
    ) in text
    assert (
        "| prod-cn/dify | prod-main | production | Jane Roe &lt;jane@example.com&gt; | "
        "2026-12-26 00:00 | 22.0 | 30 | warning | expiring | expiring |"
    ) in text
    assert "QA &lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script>" not in text
    assert "| prod-cn/dify | seats | 96 | 100 | 96.0 | critical |" in text
    assert "| prod-cn/dify | workspaces | 17 | 20 | 85.0 | warning |" in text
    assert "| license test-shared | workspaces | 3 | 5 | 60.0 | none |" in text
    assert (
        "| prod-main | 2026-12-26 00:00 | online | 22.0 | 90 d on 2026-09-27 00:00, "
    ) in text
    assert (
        "| old-lab | 2026-12-01 00:00 | offline | expired | 90 d on 2026-09-02 00:00, "
    ) in text
    assert (
        "| prod-cn/dify-intl | status_mismatch | critical | The live license status "
        "contradicts the registry. Live status: expired. "
        "Live expiry: 2026-11-02 00:00 UTC. |"
    ) in text
    assert "| test-sg/dify-qa | probe http_error | warning |" in text
    assert "| test-sg/lab | registry_incomplete | info | " in text
    assert "Missing: owner, requester, activator." in text


def test_report_markdown_problem_sections(evaluated):
    registry, statuses = evaluated
    text = render_report("markdown", registry, statuses, NOW)
    registry_part = text.split("## Registry problems\n")[1].split("\n## ")[0]
    deployment_part = text.split("## Deployment problems\n")[1].split("\n## ")[0]
    failures_part = text.split("## Observation failures\n")[1]
    assert "| test-sg/lab | registry_incomplete |" in registry_part
    assert "| test-sg/dify-qa | shared_license |" in registry_part
    assert "| test-sg/dify-test | shared_license |" in registry_part
    assert "binding_mismatch" not in registry_part
    assert "| test-sg/dify-qa | binding_mismatch | warning |" in deployment_part
    assert "| prod-cn/dify-intl | status_mismatch | critical |" in deployment_part
    assert "shared_license" not in deployment_part
    assert "| test-sg/dify-qa | probe http_error | warning |" in failures_part
    failure_rows = [
        line for line in failures_part.splitlines() if line.startswith("| test-")
    ]
    assert len(failure_rows) == 1


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("R&D", "R&amp;D"),
        ("a | b", "a \\| b"),
        ("two\nlines\r\nhere\rnow", "two lines here now"),
        ("[click](http://example.com)", "\\[click\\](http://example.com)"),
        ("![x](http://example.com/t.png)", "!\\[x\\](http://example.com/t.png)"),
        ("`code`", "\\`code\\`"),
        ("back\\slash", "back\\\\slash"),
        ("&lt;", "&amp;lt;"),
        ("", "-"),
    ],
)
def test_markdown_cell_escapes(value, cell):
    assert _markdown_cell(value) == cell


def test_report_markdown_row_survives_hostile_owner(tmp_path):
    owner = "Eve <img src=x onerror=alert(1)> | evil\n| injected | row |"
    path = tmp_path / "registry.yaml"
    path.write_text(
        DATED_REGISTRY.format(timezone="UTC", owner=json.dumps(owner)),
        encoding="utf-8",
    )
    registry = load_registry([str(path)])
    now = datetime(2026, 12, 4, tzinfo=UTC)
    text = render_report("markdown", registry, evaluate(registry, None, now), now)
    [row] = [line for line in text.splitlines() if line.startswith("| prod-cn/dify |")]
    assert row == (
        "| prod-cn/dify | prod-main | production | Eve &lt;img src=x "
        "onerror=alert(1)&gt; \\| evil \\| injected \\| row \\| | 2027-01-01 00:00 | "
        "28.0 | 30 | warning | - | expiring |"
    )
    assert "<img" not in text
    assert "| injected |" not in text


# A license whose date-only expiry 2026-12-31 is its last valid day.
DATED_REGISTRY = """\
timezone: {timezone}
licenses:
  - id: DIFY-ENT-SECRET-0009
    name: prod-main
    effective: 2026-01-01
    expires: 2026-12-31
    mode: online
    bound_to: {{cluster: prod-cn, namespace: dify}}
instances:
  - cluster: prod-cn
    namespace: dify
    license: prod-main
    environment: production
    owner: {owner}
    department: AI Platform
renewals:
  - {{license: prod-main, requester: buy@example.com, activator: sre@example.com}}
"""


def dated_report(tmp_path, zone: str, fmt: str) -> str:
    path = tmp_path / "registry.yaml"
    path.write_text(
        DATED_REGISTRY.format(timezone=zone, owner="Jane Roe"), encoding="utf-8"
    )
    registry = load_registry([str(path)])
    now = datetime(2026, 12, 4, tzinfo=UTC)
    return render_report(fmt, registry, evaluate(registry, None, now), now)


# The license stops at 00:00 on 2027-01-01 in the registry's zone: 00:00Z for UTC,
# and 2026-12-31T16:00Z for Asia/Shanghai.
@pytest.mark.parametrize(
    ("zone", "rfc3339", "days", "seven_day_stage"),
    [
        ("UTC", "2027-01-01T00:00:00Z", "28.0", "2026-12-25 00:00"),
        ("Asia/Shanghai", "2027-01-01T00:00:00+08:00", "27.7", "2026-12-25 00:00"),
    ],
)
def test_report_expiry_in_registry_zone(tmp_path, zone, rfc3339, days, seven_day_stage):
    markdown = dated_report(tmp_path, zone, "markdown")
    assert f"| License | Expires ({zone}) | Mode | Days | Notice stages ({zone}) |" in (
        markdown
    )
    assert (
        f"| prod-cn/dify | prod-main | production | Jane Roe | 2027-01-01 00:00 | "
        f"{days} | 30 | warning | - | expiring |"
    ) in markdown
    assert f"| prod-main | 2027-01-01 00:00 | online | {days} | " in markdown
    assert f"7 d on {seven_day_stage} |" in markdown
    assert "2026-12-31" not in markdown

    [row] = csv.DictReader(io.StringIO(dated_report(tmp_path, zone, "csv")))
    assert row["expires"] == rfc3339
    assert datetime.fromisoformat(row["expires"]).date().isoformat() == "2027-01-01"

    page = dated_report(tmp_path, zone, "html")
    assert f"<th>Expires ({zone})</th>" in page
    assert '<td class="time">2027-01-01 00:00</td>' in page
    assert f"prod-main: valid until 2027-01-01 00:00 {zone}" in page
    assert f"prod-main expires 2027-01-01 00:00 {zone}" in page
    assert (f"prod-main: 7-day notice (critical) on {seven_day_stage} {zone}") in page


def test_report_exact_instant_shows_time(tmp_path):
    path = tmp_path / "registry.yaml"
    text = DATED_REGISTRY.format(timezone="Asia/Shanghai", owner="Jane Roe")
    path.write_text(
        text.replace("expires: 2026-12-31", "expires: 2026-12-31T09:30:15Z"),
        encoding="utf-8",
    )
    registry = load_registry([str(path)])
    now = datetime(2026, 12, 4, tzinfo=UTC)
    statuses = evaluate(registry, None, now)
    markdown = render_report("markdown", registry, statuses, now)
    [row] = csv.DictReader(io.StringIO(render_report("csv", registry, statuses, now)))
    assert "| prod-main | 2026-12-31 17:30:15 | online |" in markdown
    assert "7 d on 2026-12-24 17:30:15 |" in markdown
    assert row["expires"] == "2026-12-31T17:30:15+08:00"


def test_report_html_is_self_contained(evaluated):
    registry, statuses = evaluated
    page = render_report("html", registry, statuses, NOW)
    assert page.startswith("<!doctype html>")
    assert "<script" not in page
    assert "QA &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<h2>Registry problems</h2>" in page
    assert "<h2>Deployment problems</h2>" in page
    assert "<h2>Observation failures</h2>" in page
    for marker in ("src=", "href=", "<link", "<iframe", "<object", "@import", "url("):
        assert marker not in page


def test_report_cli_writes_file_and_exits_zero(registry_path, tmp_path, capsys):
    path, token = registry_path
    output = tmp_path / "review.html"
    code = main(
        [
            "report",
            "--registry",
            path,
            "--now",
            "2026-12-04T00:00:00Z",
            "--probe.credentials-file",
            token,
            "--output",
            str(output),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert f"report written: {output} (html)" in captured.err
    assert "warning: probe failed (http_error): test-sg/dify-qa" in captured.err
    assert captured.out == ""
    page = output.read_text()
    assert page.count('<tr class="instance"') == 5
    assert "report-token" not in page
    assert "DIFY-ENT-SECRET" not in page


@pytest.mark.parametrize("fmt", ["csv", "markdown"])
def test_report_cli_stdout_formats(registry_path, capsys, fmt):
    path, _ = registry_path
    code = main(
        [
            "report",
            "--registry",
            path,
            "--now",
            "2026-12-04",
            "--format",
            fmt,
            "--no-probe",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "DIFY-ENT-SECRET" not in out
    if fmt == "csv":
        assert out.splitlines()[0].startswith("cluster,namespace,license,environment,")
        assert len(out.splitlines()) == 6
    else:
        assert out.count("| prod-cn/dify |") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--now", "tomorrow"], "--now: invalid value 'tomorrow'"),
        (["--output", "/nonexistent/folder/r.html"], "--output: cannot write"),
        (["--probe.timeout", "-1"], "--probe.timeout: invalid value -1"),
    ],
)
def test_report_cli_invalid_input(registry_path, capsys, args, message):
    path, _ = registry_path
    code = main(["report", "--registry", path, "--no-probe"] + args)
    assert code == 2
    assert message in capsys.readouterr().err


def test_report_cli_invalid_registry(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("licenses: [{name: x}]\n")
    assert main(["report", "--registry", str(path)]) == 2
    assert "invalid registry" in capsys.readouterr().err
    assert main(["report"]) == 2
    assert "report needs --registry PATH" in capsys.readouterr().err


# -- headless Chromium over the DevTools protocol on a pipe ---------------------------


# Counts of the report's elements in the rendered DOM.
COUNTS_SCRIPT = """
(() => {
  const count = (selector) => document.querySelectorAll(selector).length;
  const timeline = document.getElementById("timeline");
  const ownerCells = "#instances tr.instance td:nth-child(5)";
  return {
    rows: count("#instances tr.instance"),
    lanes: count("#timeline g.lane"),
    stages: count("#timeline path.stage"),
    expiries: count("#timeline path.expiry"),
    bars: count("svg.util-bar"),
    critical: count("svg.util-bar[data-level=critical]"),
    registryProblems: count("#registry-problems tr.problem"),
    deploymentProblems: count("#deployment-problems tr.problem"),
    observationFailures: count("#observation-failures tr.problem"),
    deploymentCodes: [...document.querySelectorAll(
      "#deployment-problems tr.problem td:nth-child(2)"
    )].map((cell) => cell.textContent),
    timelineWidth: timeline.getBoundingClientRect().width,
    firstRow: document.querySelector("#instances tr.instance").dataset.namespace,
    title: document.title,
    owners: [...document.querySelectorAll(ownerCells)].map((cell) => cell.textContent),
  };
})()
"""


class DevTools:
    """Drive Chromium through --remote-debugging-pipe (fd 3 in, fd 4 out)."""

    def __init__(self, profile: str):
        to_chrome_read, self._write = os.pipe()
        self._read, from_chrome_write = os.pipe()

        def wire_pipes() -> None:
            os.dup2(to_chrome_read, 3)
            os.dup2(from_chrome_write, 4)

        self.process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire_pipes,
            pass_fds=(3, 4),
        )
        os.close(to_chrome_read)
        os.close(from_chrome_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive(30.0)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._receive(deadline - time.monotonic())
            self.events.append(event)
            if event.get("method") == method:
                return event

    def _receive(self, timeout: float) -> dict:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._read], [], [], max(timeout, 0))
            if not ready:
                raise TimeoutError("no message from Chromium")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._write)
        os.close(self._read)


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed")
def test_report_renders_in_chromium(evaluated, tmp_path):
    registry, statuses = evaluated
    page = tmp_path / "review.html"
    page.write_text(render_report("html", registry, statuses, NOW), encoding="utf-8")

    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        browser = DevTools(profile)
        try:
            target = browser.send("Target.createTarget", {"url": "about:blank"})
            session = browser.send(
                "Target.attachToTarget",
                {"targetId": target["targetId"], "flatten": True},
            )["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                browser.send(f"{domain}.enable", session=session)
            browser.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": 1400, "height": 900, "deviceScaleFactor": 1, "mobile": False},
                session=session,
            )
            browser.send("Page.navigate", {"url": page.as_uri()}, session=session)
            browser.wait_for("Page.loadEventFired")

            def query(expression: str):
                result = browser.send(
                    "Runtime.evaluate",
                    {"expression": expression, "returnByValue": True},
                    session=session,
                )
                assert "exceptionDetails" not in result, result
                return result["result"]["value"]

            counts = query(COUNTS_SCRIPT)
            height = query("document.documentElement.scrollHeight")
            browser.send(
                "Emulation.setDeviceMetricsOverride",
                {
                    "width": 1400,
                    "height": height,
                    "deviceScaleFactor": 1,
                    "mobile": False,
                },
                session=session,
            )
            shot = browser.send(
                "Page.captureScreenshot", {"format": "png"}, session=session
            )
        finally:
            browser.close()

    ARTIFACTS.mkdir(exist_ok=True)
    png = base64.b64decode(shot["data"])
    (ARTIFACTS / "report.png").write_bytes(png)
    (ARTIFACTS / "report.html").write_text(page.read_text(encoding="utf-8"))

    assert counts["rows"] == 5
    assert counts["firstRow"] == "lab"
    assert counts["lanes"] == 4
    # Stages still ahead: prod-main only the 7-day one (22 days left);
    # prod-intl 90, 60, 30 and 7; test-shared 30 and 7; old-lab has expired.
    assert counts["stages"] == 1 + 4 + 2
    assert counts["expiries"] == 3
    # prod-cn/dify seats and workspaces, prod-cn/dify-intl seats and workspaces,
    # test-sg/dify-test workspaces, and the same five per license.
    assert counts["bars"] == 10
    assert counts["critical"] == 2
    # shared_license twice and registry_incomplete; binding_mismatch and
    # status_mismatch; the failed probe of test-sg/dify-qa.
    assert counts["registryProblems"] == 3
    assert counts["deploymentProblems"] == 2
    assert counts["observationFailures"] == 1
    assert counts["deploymentCodes"] == ["status_mismatch", "binding_mismatch"]
    assert counts["timelineWidth"] == 930
    assert counts["title"] == "Dify license capacity review 2026-12-04"
    assert "QA <script>alert(1)</script>" in counts["owners"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n"

    errors = [
        event
        for event in browser.events
        if event.get("method") in ("Runtime.exceptionThrown", "Network.loadingFailed")
        or (
            event.get("method") == "Log.entryAdded"
            and event["params"]["entry"]["level"] == "error"
        )
    ]
    assert errors == []
    requested = [
        event["params"]["request"]["url"]
        for event in browser.events
        if event.get("method") == "Network.requestWillBeSent"
    ]
    assert requested == [page.as_uri()]
