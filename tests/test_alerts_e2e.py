"""End to end: exporter, Prometheus and Alertmanager deliver the renewal notices.

The exporter serves a registry dated relative to today; Prometheus scrapes it and
evaluates alerts/dify-license.rules.yaml every second; Alertmanager routes with
alerts/alertmanager.example.yaml, whose receivers are pointed at a webhook
receiver and an SMTP sink run by the test on 127.0.0.1. Fixing the registry must
resolve every alert.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from realstack import (
    ALERTMANAGER,
    PROMETHEUS,
    Mail,
    SmtpSink,
    Stack,
    WebhookReceiver,
    http_get_json,
    wait_until,
)

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "alerts" / "dify-license.rules.yaml"
ALERTMANAGER_EXAMPLE = REPO / "alerts" / "alertmanager.example.yaml"
RUNBOOK = "https://github.com/example/dify-license-exporter/blob/main/docs/runbook.md#"
JOB = "dify-license-exporter"
TIMEOUT = 30.0

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None or ALERTMANAGER is None,
    reason="prometheus and alertmanager are not installed",
)

PROD = {
    "cluster": "prod-cn",
    "namespace": "dify",
    "license": "prod-main",
    "environment": "production",
    "owner": "Jane Roe <jane@example.com>",
    "department": "AI Platform",
    "requester": "procurement@example.com",
    "activator": "sre-oncall@example.com",
    "priority": "high",
}
TEST = {
    "cluster": "test-sg",
    "namespace": "dify-test",
    "license": "test-main",
    "environment": "test",
    "owner": "Sam Lee <sam@example.com>",
    "department": "Data Science",
    "requester": "lab-lead@example.com",
    "activator": "lab-ops@example.com",
    "priority": "low",
}
STAGING = {
    "cluster": "prod-cn",
    "namespace": "dify-staging",
    "license": "staging-main",
    "environment": "staging",
    "owner": "Ana Diaz <ana@example.com>",
    "department": "AI Platform",
    "requester": "procurement@example.com",
    "activator": "sre-oncall@example.com",
    "priority": "medium",
}
INTL = {
    "cluster": "prod-cn",
    "namespace": "dify-intl",
    "license": "intl-main",
    "environment": "production",
    "owner": "Li Wei <li.wei@example.com>",
    "department": "AI Platform",
    "requester": "procurement@example.com",
    "activator": "sre-oncall@example.com",
    "priority": "high",
}
INSTANCES = (PROD, TEST, STAGING, INTL)


def build_registry(today: date, fixed: bool) -> dict:
    """Return a registry with four alerting instances, or the same one fixed.

    Unfixed: prod-main expires in 5 days (stage 7, critical), test-main in 10 days
    with notice_days [45, 14, 3] (stage 14, warning), staging-main in 80 days
    (stage 90, info), and intl-main is bound to another namespace than the one it
    runs in. Fixed: every license expires in 400 days and intl-main is bound to
    its instance.
    """
    expires = {
        "prod-main": today + timedelta(days=5),
        "test-main": today + timedelta(days=10),
        "staging-main": today + timedelta(days=80),
        "intl-main": today + timedelta(days=300),
    }
    if fixed:
        expires = {name: today + timedelta(days=400) for name in expires}
    bound_namespace = {
        instance["license"]: instance["namespace"] for instance in INSTANCES
    }
    if not fixed:
        bound_namespace["intl-main"] = "dify-global"

    licenses = [
        {
            "id": f"DIFY-ENT-E2E-000{number}",
            "name": instance["license"],
            "effective": (today - timedelta(days=30)).isoformat(),
            "expires": expires[instance["license"]].isoformat(),
            "mode": "online",
            "bound_to": {
                "cluster": instance["cluster"],
                "namespace": bound_namespace[instance["license"]],
            },
        }
        for number, instance in enumerate(INSTANCES, start=1)
    ]
    instances = [
        {
            key: instance[key]
            for key in ("cluster", "namespace", "license", "environment", "owner")
        }
        | {"department": instance["department"]}
        for instance in INSTANCES
    ]
    renewals = [
        {
            "license": instance["license"],
            "requester": instance["requester"],
            "activator": instance["activator"],
        }
        for instance in INSTANCES
    ]
    renewals[1]["notice_days"] = [45, 14, 3]
    return {
        "timezone": "UTC",
        "licenses": licenses,
        "instances": instances,
        "renewals": renewals,
    }


def write_values(stack: Stack) -> Path:
    """Write the Helm values of every instance: Dify Enterprise, online mode."""
    for instance in INSTANCES:
        stack.write_file(
            f"values/{instance['cluster']}/{instance['namespace']}.yaml",
            {"enterprise": {"enabled": True, "licenseMode": "online"}},
        )
    return stack.directory / "values"


def rules_for_test(stack: Stack) -> Path:
    """Return the rule file with DifyLicenseBindingMismatch firing without delay.

    Its 15-minute `for` is covered by the promtool tests; every other rule is
    unchanged.
    """
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "DifyLicenseBindingMismatch":
                rule["for"] = "0s"
    return stack.write_file("rules.yaml", rules)


def alertmanager_config(webhooks: WebhookReceiver, smtp: SmtpSink) -> dict:
    """Return the example configuration with every address pointed at loopback.

    Webhook receivers post to the path /<receiver name>, email goes to the SMTP
    sink without TLS, and the group timers are shortened to one second.
    """
    config = yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text())
    config["global"]["smtp_smarthost"] = smtp.address
    config["global"]["smtp_require_tls"] = False
    config["route"]["group_wait"] = "1s"
    config["route"]["group_interval"] = "1s"
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = webhooks.url(f"/{receiver['name']}")
    return config


def expected_labels(alertname: str, instance: dict, **extra: str) -> dict:
    return {"alertname": alertname, **instance, **extra}


def alerts_with_status(
    webhooks: WebhookReceiver, receiver: str, status: str
) -> list[dict]:
    return [
        alert
        for request in webhooks.received(f"/{receiver}")
        for alert in request.payload["alerts"]
        if alert["status"] == status
    ]


def mails_with_subject(smtp: SmtpSink, prefix: str) -> list[Mail]:
    return [
        mail for mail in smtp.received() if mail.message["Subject"].startswith(prefix)
    ]


def wait_for_notifications(condition, stack: Stack, state: str) -> None:
    try:
        wait_until(condition, TIMEOUT, what=f"{state} notifications")
    except TimeoutError as error:
        pytest.fail(f"{error}\n{stack.logs()}")


def firing_alert_names(prometheus_url: str) -> list[tuple[str, str, str]]:
    alerts = http_get_json(f"{prometheus_url}/api/v1/alerts")["data"]["alerts"]
    return sorted(
        (
            alert["labels"]["alertname"],
            alert["labels"].get("cluster", ""),
            alert["labels"].get("namespace", ""),
        )
        for alert in alerts
        if alert["state"] == "firing"
    )


def test_alerts_route_and_resolve():
    today = datetime.now(UTC).date()

    with WebhookReceiver() as webhooks, SmtpSink() as smtp, Stack() as stack:
        registry = stack.write_file("registry.yaml", build_registry(today, fixed=False))
        values_dir = write_values(stack)
        exporter_url = stack.start_exporter(
            [
                "--registry",
                str(registry),
                "--values-dir",
                str(values_dir),
                "--refresh-interval",
                "1",
            ]
        )
        alertmanager_url = stack.start_alertmanager(alertmanager_config(webhooks, smtp))
        prometheus_url = stack.start_prometheus(
            {JOB: [exporter_url.split("://", 1)[1]]},
            [rules_for_test(stack)],
            alertmanager_url,
            eval_interval=1.0,
        )

        # Firing: each alert reaches its receiver with the routing labels.
        def all_fired() -> bool:
            return bool(
                alerts_with_status(webhooks, "pager", "firing")
                and alerts_with_status(webhooks, "ticket-data-science", "firing")
                and alerts_with_status(webhooks, "ticket-ai-platform", "firing")
                and mails_with_subject(smtp, "[FIRING:1]")
            )

        wait_for_notifications(all_fired, stack, "firing")

        assert firing_alert_names(prometheus_url) == [
            ("DifyLicenseBindingMismatch", "prod-cn", "dify-intl"),
            ("DifyLicenseExpiring", "prod-cn", "dify"),
            ("DifyLicenseExpiring", "prod-cn", "dify-staging"),
            ("DifyLicenseExpiring", "test-sg", "dify-test"),
        ]

        paged = alerts_with_status(webhooks, "pager", "firing")
        assert {alert["fingerprint"] for alert in paged} == {paged[0]["fingerprint"]}
        assert paged[0]["labels"] == expected_labels(
            "DifyLicenseExpiring", PROD, stage="7", severity="critical"
        )
        assert paged[0]["annotations"]["summary"] == (
            "Dify license prod-main of prod-cn/dify reached its 7-day renewal notice."
        )
        description = paged[0]["annotations"]["description"]
        expiry = (today + timedelta(days=6)).isoformat()
        assert description.startswith(
            "The license prod-main of namespace dify in cluster prod-cn (production) "
            "has 5."
        )
        assert f"stops being valid at {expiry} 00:00 UTC." in description
        assert paged[0]["annotations"]["runbook_url"] == RUNBOOK + "difylicenseexpiring"

        ticketed = alerts_with_status(webhooks, "ticket-data-science", "firing")
        assert ticketed[0]["labels"] == expected_labels(
            "DifyLicenseExpiring", TEST, stage="14", severity="warning"
        )

        mismatch = alerts_with_status(webhooks, "ticket-ai-platform", "firing")
        assert mismatch[0]["labels"] == expected_labels(
            "DifyLicenseBindingMismatch", INTL, severity="warning"
        )
        assert mismatch[0]["annotations"]["runbook_url"] == (
            RUNBOOK + "difylicensebindingmismatch"
        )

        mails = mails_with_subject(smtp, "[FIRING:1]")
        assert len(mails) == 1
        assert mails[0].recipients == ["procurement@example.com"]
        assert mails[0].message["To"] == "procurement@example.com"
        subject = mails[0].message["Subject"]
        assert subject.startswith(
            "[FIRING:1] DifyLicenseExpiring prod-cn dify-staging 90"
        )

        assert webhooks.received("/ticket-platform") == []

        # Fixed registry: every alert resolves and each receiver gets a resolved
        # notification.
        registry.write_text(
            yaml.safe_dump(build_registry(today, fixed=True), sort_keys=False)
        )

        def all_resolved() -> bool:
            return bool(
                alerts_with_status(webhooks, "pager", "resolved")
                and alerts_with_status(webhooks, "ticket-data-science", "resolved")
                and alerts_with_status(webhooks, "ticket-ai-platform", "resolved")
                and mails_with_subject(smtp, "[RESOLVED]")
            )

        wait_for_notifications(all_resolved, stack, "resolved")

        assert firing_alert_names(prometheus_url) == []
        resolved = alerts_with_status(webhooks, "pager", "resolved")
        assert resolved[0]["fingerprint"] == paged[0]["fingerprint"]
        resolved_mails = mails_with_subject(smtp, "[RESOLVED]")
        assert resolved_mails[0].recipients == ["procurement@example.com"]
        subject = resolved_mails[0].message["Subject"]
        assert subject.startswith(
            "[RESOLVED] DifyLicenseExpiring prod-cn dify-staging 90"
        )
        assert webhooks.received("/ticket-platform") == []

        started = [process.popen for process in stack.processes]

    assert [popen.poll() is not None for popen in started] == [True, True, True]
