"""Static and promtool/amtool checks of the alert bundle in alerts/.

promtool and amtool are the Debian builds of Prometheus 2.42 and Alertmanager 0.25.
No test starts a server or contacts another host.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
ALERTS = REPO / "alerts"
RULE_FILES = sorted(ALERTS.glob("*.rules.yaml"))
UNIT_TESTS = sorted((ALERTS / "tests").glob("*.yaml"))
ALERTMANAGER_EXAMPLE = ALERTS / "alertmanager.example.yaml"
RUNBOOK = REPO / "docs" / "runbook.md"
RUNBOOK_URL_BASE = (
    "https://github.com/example/dify-license-exporter/blob/main/docs/runbook.md#"
)
ROUTING_LABELS = ("owner", "department", "requester", "activator", "priority")

# Alerts about an instance without a registry entry, or about the exporter
# itself, have no routing labels to join.
ALERTS_WITHOUT_ROUTING = {
    "DifyLicenseUnregisteredInstance",
    "DifyLicenseExporterDown",
    "DifyLicenseExporterAbsent",
    "DifyLicenseExporterRefreshFailing",
    "DifyLicenseExporterSnapshotStale",
    "DifyLicenseObservationFailing",
    "DifyLicenseExporterCertificateExpiring",
    "DifyLicenseExporterCertificateReloadFailing",
    "DifyLicenseRegistrySignatureInvalid",
}

requires_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool is not installed"
)
requires_amtool = pytest.mark.skipif(
    shutil.which("amtool") is None, reason="amtool is not installed"
)


def load_alert_rules() -> list[dict]:
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(rule for rule in group["rules"] if "alert" in rule)
    return rules


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def test_rule_files_exist():
    assert [path.name for path in RULE_FILES] == ["dify-license.rules.yaml"]


@requires_promtool
def test_promtool_check_rules_clean():
    result = run(["promtool", "check", "rules", *map(str, RULE_FILES)])

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 36 rules found" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


@requires_promtool
@pytest.mark.parametrize("path", UNIT_TESTS, ids=lambda path: path.name)
def test_promtool_unit_tests_pass(path: Path):
    result = run(["promtool", "test", "rules", str(path)])

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_unit_tests_cover_every_alert():
    tested = set()
    for path in UNIT_TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    tested.add(case["alertname"])

    assert tested == {rule["alert"] for rule in load_alert_rules()}


def test_alert_names_share_prefix():
    for rule in load_alert_rules():
        name = rule["alert"]

        assert re.fullmatch(r"DifyLicense(?:[A-Z][a-z]+)+", name), name


def test_alert_severity_valid():
    # DifyLicenseExpiring takes its severity from the notice threshold series.
    for rule in load_alert_rules():
        if rule["alert"] == "DifyLicenseExpiring":
            assert "severity" not in rule.get("labels", {})
            assert "group_left (stage, severity)" in rule["expr"]
        else:
            assert rule["labels"]["severity"] in {"info", "warning", "critical"}


def test_severity_tiers_share_one_name():
    # An alert name with several rules is one condition at rising thresholds:
    # a warning and a critical tier, whose critical tier mutes the warning in
    # alertmanager.example.yaml.
    severities: dict[str, list[str]] = {}
    for rule in load_alert_rules():
        severities.setdefault(rule["alert"], []).append(
            rule.get("labels", {}).get("severity", "")
        )
    tiered = {name: tiers for name, tiers in severities.items() if len(tiers) > 1}

    assert tiered == {
        "DifyLicenseSeatsHigh": ["warning", "critical"],
        "DifyLicenseWorkspacesHigh": ["warning", "critical"],
        "DifyLicenseExporterCertificateExpiring": ["warning", "critical"],
    }
    inhibit_rules = yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text())["inhibit_rules"]
    tier_rule = next(
        rule
        for rule in inhibit_rules
        if 'severity="critical"' in rule["source_matchers"]
        and 'severity="warning"' in rule["target_matchers"]
        and "alertname" in rule["equal"]
    )
    muted = tier_rule["target_matchers"][0].split("=~", 1)[1].strip('"')
    assert set(muted.split("|")) == set(tiered)


def test_alert_annotations_complete():
    for rule in load_alert_rules():
        annotations = rule["annotations"]

        assert set(annotations) == {"summary", "description", "runbook_url"}
        assert annotations["summary"].endswith("."), rule["alert"]
        assert "\n" not in annotations["summary"], rule["alert"]
        assert "\n" not in annotations["description"], rule["alert"]


def test_runbook_urls_point_at_sections():
    headings = re.findall(r"^## (\S+)$", RUNBOOK.read_text(), flags=re.MULTILINE)
    anchors = {heading.lower() for heading in headings}

    for rule in load_alert_rules():
        url = rule["annotations"]["runbook_url"]

        assert url == RUNBOOK_URL_BASE + rule["alert"].lower()
        assert rule["alert"].lower() in anchors, rule["alert"]


def test_instance_alerts_join_routing_labels():
    for rule in load_alert_rules():
        if rule["alert"] in ALERTS_WITHOUT_ROUTING:
            continue

        assert "dify_license_instance:dify_license_info:routing" in rule["expr"]
        assert f"group_left ({', '.join(ROUTING_LABELS)})" in rule["expr"]


@requires_amtool
def test_amtool_check_config_clean():
    result = run(["amtool", "check-config", str(ALERTMANAGER_EXAMPLE)])

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert " - 5 inhibit rules" in result.stdout
    assert " - 5 receivers" in result.stdout


def test_alertmanager_example_uses_placeholder_hosts():
    config = yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text())
    smarthost = config["global"]["smtp_smarthost"].rsplit(":", 1)[0]
    urls = [
        webhook["url"]
        for receiver in config["receivers"]
        for webhook in receiver.get("webhook_configs", [])
    ]

    assert smarthost == "smtp.example.com"
    assert config["global"]["smtp_from"].endswith("@example.com")
    assert len(urls) == 4
    for url in urls:
        assert urlsplit(url).hostname.endswith(".example.com"), url


# (labels of an alert, receiver that must get it)
ROUTE_CASES = [
    pytest.param(
        "alertname=DifyLicenseExpiring severity=critical stage=7 "
        "environment=production department='AI Platform'",
        "pager",
        id="production-critical-pages",
    ),
    pytest.param(
        "alertname=DifyLicenseExpired severity=critical stage=0 "
        "environment=production department='Data Science'",
        "pager",
        id="production-expired-pages",
    ),
    pytest.param(
        "alertname=DifyLicenseExpiring severity=critical stage=7 "
        "environment=test department='AI Platform'",
        "ticket-ai-platform",
        id="test-critical-tickets-department",
    ),
    pytest.param(
        "alertname=DifyLicenseExpiring severity=warning stage=30 "
        "environment=production department='AI Platform'",
        "ticket-ai-platform",
        id="production-warning-tickets-department",
    ),
    pytest.param(
        "alertname=DifyLicenseBindingMismatch severity=warning "
        "environment=staging department='Data Science'",
        "ticket-data-science",
        id="warning-tickets-second-department",
    ),
    pytest.param(
        "alertname=DifyLicenseModeMismatch severity=warning "
        "environment=staging department=Finance",
        "ticket-platform",
        id="unknown-department-tickets-platform",
    ),
    pytest.param(
        "alertname=DifyLicenseExporterDown severity=warning "
        "job=dify-license-exporter instance=exporter:9000",
        "ticket-platform",
        id="exporter-health-tickets-platform",
    ),
    pytest.param(
        "alertname=DifyLicenseExpiring severity=info stage=90 "
        "environment=production requester=procurement@example.com",
        "email-requester",
        id="info-emails-requester",
    ),
    pytest.param(
        "alertname=DifyLicenseRegistryIncomplete severity=info environment=test",
        "ticket-platform",
        id="info-without-requester-tickets-platform",
    ),
    pytest.param(
        "alertname=DifyLicenseSeatsHigh severity=critical "
        "environment=production department='AI Platform'",
        "pager",
        id="production-capacity-critical-pages",
    ),
    pytest.param(
        "alertname=DifyLicenseServerUnreachable severity=critical "
        "environment=staging department='Data Science'",
        "ticket-data-science",
        id="staging-server-unreachable-tickets-department",
    ),
    pytest.param(
        "alertname=DifyLicenseExporterCertificateExpiring severity=critical "
        "job=dify-license-exporter instance=exporter:9000",
        "ticket-platform",
        id="exporter-certificate-tickets-platform",
    ),
    pytest.param(
        "alertname=DifyLicenseExporterCertificateReloadFailing severity=warning "
        "job=dify-license-exporter instance=exporter:9000",
        "ticket-platform",
        id="exporter-certificate-reload-tickets-platform",
    ),
    pytest.param(
        "alertname=DifyLicenseRegistrySignatureInvalid severity=warning "
        "job=dify-license-exporter cluster=prod-cn",
        "ticket-platform",
        id="registry-signature-tickets-platform",
    ),
    pytest.param(
        "alertname=SomethingElse",
        "ticket-platform",
        id="no-severity-uses-default",
    ),
]


@requires_amtool
@pytest.mark.parametrize(("labels", "receiver"), ROUTE_CASES)
def test_amtool_route_matches(labels: str, receiver: str):
    result = run(
        [
            "amtool",
            "config",
            "routes",
            "test",
            f"--config.file={ALERTMANAGER_EXAMPLE}",
            f"--verify.receivers={receiver}",
            *_split_labels(labels),
        ]
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def _split_labels(labels: str) -> list[str]:
    # Values may contain spaces inside single quotes, as in a shell command line.
    return [
        match.group(1) + match.group(2).strip("'")
        for match in re.finditer(r"(\w+=)('[^']*'|\S+)", labels)
    ]
