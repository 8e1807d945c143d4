"""Generate the Dify license fleet dashboard for Grafana 10 and later.

Run `python grafana/build_dashboard.py` after changing this file, and commit the
regenerated dify-license-fleet.json with it. `--check` exits 1 when they differ.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).with_name("dify-license-fleet.json")

DASHBOARD_UID = "dify-license-fleet"

# Grafana 10.0 writes schemaVersion 38, and later releases migrate it on import.
SCHEMA_VERSION = 38

# Every panel and target points at the datasource variable, so the JSON imports
# unchanged into any Grafana and a sidecar can provision it without edits.
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# Label matchers of the instance variables, shared by every per-instance query.
INSTANCE_MATCHERS = (
    'cluster=~"$cluster", namespace=~"$namespace", '
    'environment=~"$environment", license=~"$license"'
)

INSTANCE_LABELS = "cluster, namespace, license, environment"

# Findings that mean the registry and the deployed fleet disagree.
REGISTRY_FINDINGS = (
    "binding_mismatch",
    "mode_mismatch",
    "registry_incomplete",
    "unregistered",
    "not_deployed",
)

# Alert rules of the bundle in alerts/ share this name prefix.
ALERT_NAME_PATTERN = "DifyLicense.*"

# Colors of the default notice stages: 7 days critical, 30 and 60 days warning,
# 90 days info. Grafana colors a value by the highest step it is greater than or
# equal to, so the steps sit on the stage boundaries.
DAYS_THRESHOLDS = [
    {"color": "dark-red", "value": None},
    {"color": "red", "value": 0},
    {"color": "orange", "value": 7},
    {"color": "yellow", "value": 30},
    {"color": "blue", "value": 60},
    {"color": "green", "value": 90},
]


def selector(metric: str, *extra: str) -> str:
    """Return `metric{...}` filtered by the instance variables and `extra`."""
    matchers = ", ".join((*extra, INSTANCE_MATCHERS))
    return f"{metric}{{{matchers}}}"


def target(
    ref_id: str,
    expr: str,
    *,
    legend: str = "__auto",
    instant: bool = False,
    table: bool = False,
) -> dict[str, Any]:
    """Build a Prometheus query of a panel."""
    return {
        "datasource": DATASOURCE,
        "refId": ref_id,
        "expr": expr,
        "legendFormat": legend,
        "instant": instant,
        "range": not instant,
        "format": "table" if table else "time_series",
        "editorMode": "code",
    }


def grid(x: int, y: int, w: int, h: int) -> dict[str, int]:
    return {"x": x, "y": y, "w": w, "h": h}


def thresholds(*steps: tuple[str, float | None]) -> dict[str, Any]:
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for color, value in steps],
    }


def row(title: str, y: int) -> dict[str, Any]:
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": grid(0, y, 24, 1),
        "panels": [],
    }


def stat(
    title: str,
    description: str,
    expr: str,
    color: str | None,
    position: dict[str, int],
) -> dict[str, Any]:
    """Build a stat panel that turns `color` once the count reaches 1.

    A stat without `color` keeps the text color because it counts, not warns.
    """
    if color is None:
        color_mode = "none"
        steps = thresholds(("text", None))
    else:
        color_mode = "background"
        steps = thresholds(("green", None), (color, 1))

    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": position,
        "targets": [target("A", expr, instant=True)],
        "fieldConfig": {
            "defaults": {
                "unit": "none",
                "decimals": 0,
                "noValue": "0",
                "thresholds": steps,
                "color": {"mode": "thresholds"},
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": color_mode,
            "graphMode": "none",
            "justifyMode": "center",
            "orientation": "auto",
            "textMode": "value",
        },
    }


def count_instances(series: str) -> str:
    """Count the instances of `series`, 0 when none match."""
    return f"count(max by ({INSTANCE_LABELS}) ({series})) or vector(0)"


def stat_panels(y: int) -> list[dict[str, Any]]:
    days = selector("dify_license_days_to_expiry")
    instances = (
        "count(count by (cluster, namespace) ("
        f"{days} or {selector('dify_license_finding')}"
        ")) or vector(0)"
    )
    registry_findings = "|".join(REGISTRY_FINDINGS)
    registry_problems = (
        "count(count by (cluster, namespace) ("
        + selector("dify_license_finding", f'finding=~"{registry_findings}"')
        + ")) or vector(0)"
    )
    specs = [
        (
            "Instances monitored",
            "Registered instances plus observed instances missing from the registry.",
            instances,
            None,
            4,
        ),
        (
            "Expired",
            (
                "Instances whose license has expired: the console, service API, "
                "MCP and webhook triggers stop working."
            ),
            count_instances(f"{days} <= 0"),
            "dark-red",
            3,
        ),
        (
            "Within 7 days",
            "Instances whose license expires within 7 days (critical stage).",
            count_instances(f"{days} > 0 <= 7"),
            "red",
            3,
        ),
        (
            "Within 30 days",
            "Instances whose license expires within 30 days (warning stage).",
            count_instances(f"{days} > 0 <= 30"),
            "orange",
            3,
        ),
        (
            "Within 90 days",
            "Instances whose license expires within 90 days (first notice).",
            count_instances(f"{days} > 0 <= 90"),
            "yellow",
            3,
        ),
        (
            "Restart pending",
            (
                "Instances whose license changed after the enterprise pods "
                "started; the change applies only after a restart."
            ),
            count_instances(f"{selector('dify_license_restart_pending')} == 1"),
            "orange",
            4,
        ),
        (
            "Registry problems",
            "Instances with one of the findings "
            + ", ".join(REGISTRY_FINDINGS)
            + ": the registry and the deployed fleet disagree.",
            registry_problems,
            "yellow",
            4,
        ),
    ]

    panels = []
    x = 0
    for title, description, expr, color, width in specs:
        panels.append(stat(title, description, expr, color, grid(x, y, width, 4)))
        x += width
    return panels


def override(field_name: str, *properties: tuple[str, Any]) -> dict[str, Any]:
    return {
        "matcher": {"id": "byName", "options": field_name},
        "properties": [{"id": key, "value": value} for key, value in properties],
    }


def instance_table(y: int) -> dict[str, Any]:
    """Build the table with one row per instance, joined from five queries.

    The groupBy step reduces each query to one row per instance, and it turns the
    findings into one list per instance. The merge then joins the rows one to one
    on the instance labels.
    """
    # NOTE: the field names below ("Value #A", "Value #A (lastNotNull)") follow how
    # Grafana 10 names table-format Prometheus results and groupBy columns. The
    # tests run the queries but render no panel, because no Grafana runs there.
    info_labels = f"{INSTANCE_LABELS}, owner, department, requester, activator"
    targets = [
        target(
            "A",
            f"max by ({INSTANCE_LABELS}) ({selector('dify_license_days_to_expiry')})",
            instant=True,
            table=True,
        ),
        target(
            "B",
            f"max by ({INSTANCE_LABELS}) "
            f"({selector('dify_license_expiry_timestamp_seconds')}) * 1000",
            instant=True,
            table=True,
        ),
        target(
            "C",
            f"max by ({info_labels}) ({selector('dify_license_info')})",
            instant=True,
            table=True,
        ),
        target(
            "D",
            f"max by ({INSTANCE_LABELS}, mode) ({selector('dify_license_mode')} == 1)",
            instant=True,
            table=True,
        ),
        target(
            "E",
            f"max by ({INSTANCE_LABELS}, finding) "
            f"({selector('dify_license_finding')} == 1)",
            instant=True,
            table=True,
        ),
    ]

    group_by_labels = [
        "cluster",
        "namespace",
        "license",
        "environment",
        "mode",
        "owner",
        "department",
        "requester",
        "activator",
    ]
    group_by_fields: dict[str, Any] = {
        label: {"operation": "groupby", "aggregations": []} for label in group_by_labels
    }
    group_by_fields["Value #A"] = {
        "operation": "aggregate",
        "aggregations": ["lastNotNull"],
    }
    group_by_fields["Value #B"] = {
        "operation": "aggregate",
        "aggregations": ["lastNotNull"],
    }
    group_by_fields["finding"] = {
        "operation": "aggregate",
        "aggregations": ["uniqueValues"],
    }

    columns = [
        ("cluster", "Cluster"),
        ("namespace", "Namespace"),
        ("license", "License"),
        ("environment", "Environment"),
        ("mode", "Mode"),
        ("Value #A (lastNotNull)", "Days to expiry"),
        ("Value #B (lastNotNull)", "Expiry date"),
        ("owner", "Owner"),
        ("department", "Department"),
        ("requester", "Requester"),
        ("activator", "Activator"),
        ("finding (uniqueValues)", "Findings"),
    ]
    transformations = [
        {"id": "groupBy", "options": {"fields": group_by_fields}},
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {
                "excludeByName": {},
                "indexByName": {name: i for i, (name, _) in enumerate(columns)},
                "renameByName": dict(columns),
            },
        },
    ]

    return {
        "type": "table",
        "title": "Instances",
        "description": "Every instance of the fleet, soonest expiry first. "
        "Days to expiry is colored at the notice stages 90, 60, 30 and 7 days; "
        "dark red means expired.",
        "datasource": DATASOURCE,
        "gridPos": grid(0, y, 24, 12),
        "targets": targets,
        "transformations": transformations,
        "fieldConfig": {
            "defaults": {
                "custom": {
                    "align": "auto",
                    "cellOptions": {"type": "auto"},
                    "filterable": True,
                    "inspect": False,
                },
                "thresholds": thresholds(("text", None)),
                "color": {"mode": "thresholds"},
            },
            "overrides": [
                override(
                    "Days to expiry",
                    ("decimals", 1),
                    ("unit", "none"),
                    ("custom.cellOptions", {"type": "color-background"}),
                    ("thresholds", {"mode": "absolute", "steps": DAYS_THRESHOLDS}),
                    ("custom.width", 130),
                ),
                override("Expiry date", ("unit", "dateTimeAsIso")),
                override("Findings", ("custom.minWidth", 220)),
            ],
        },
        "options": {
            "showHeader": True,
            "cellHeight": "sm",
            "footer": {"show": False, "reducer": ["sum"], "fields": ""},
            "sortBy": [{"displayName": "Days to expiry", "desc": False}],
        },
    }


def days_timeseries(position: dict[str, int]) -> dict[str, Any]:
    return {
        "type": "timeseries",
        "title": "Days to expiry per license",
        "description": "Fewest days left among the instances of each license. "
        "Dashed lines mark the notice stages 90, 60, 30 and 7 days.",
        "datasource": DATASOURCE,
        "gridPos": position,
        "targets": [
            target(
                "A",
                f"min by (license) ({selector('dify_license_days_to_expiry')})",
                legend="{{license}}",
            )
        ],
        "fieldConfig": {
            "defaults": {
                "unit": "none",
                "decimals": 1,
                "min": 0,
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 2,
                    "fillOpacity": 0,
                    "showPoints": "never",
                    "spanNulls": False,
                    "thresholdsStyle": {"mode": "dashed"},
                },
                "thresholds": {"mode": "absolute", "steps": DAYS_THRESHOLDS},
                "color": {"mode": "palette-classic"},
            },
            "overrides": [],
        },
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "right",
                "showLegend": True,
                "calcs": ["lastNotNull"],
                "sortBy": "Last *",
                "sortDesc": False,
            },
            "tooltip": {"mode": "multi", "sort": "asc"},
        },
    }


def mode_piechart(position: dict[str, int]) -> dict[str, Any]:
    return {
        "type": "piechart",
        "title": "Activation mode",
        "description": "Observed instances by the licenseMode set in their Helm "
        "values.",
        "datasource": DATASOURCE,
        "gridPos": position,
        "targets": [
            target(
                "A",
                f"count by (mode) ({selector('dify_license_mode')} == 1)",
                legend="{{mode}}",
                instant=True,
            )
        ],
        "fieldConfig": {
            "defaults": {"unit": "none", "color": {"mode": "palette-classic"}},
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "pieType": "donut",
            "displayLabels": ["name", "value"],
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "showLegend": True,
                "values": ["value"],
            },
            "tooltip": {"mode": "single", "sort": "none"},
        },
    }


def shared_licenses(position: dict[str, int]) -> dict[str, Any]:
    expr = (
        "max by (license) (dify_license_instances > 1) "
        f"and on (license) {selector('dify_license_days_to_expiry')}"
    )
    return {
        "type": "bargauge",
        "title": "Shared licenses",
        "description": "Licenses that more than one registered instance uses; "
        "a license is bound to one namespace.",
        "datasource": DATASOURCE,
        "gridPos": position,
        "targets": [target("A", expr, legend="{{license}}", instant=True)],
        "fieldConfig": {
            "defaults": {
                "unit": "none",
                "decimals": 0,
                "min": 0,
                "thresholds": thresholds(("orange", None)),
                "color": {"mode": "thresholds"},
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "displayMode": "basic",
            "showUnfilled": True,
            "valueMode": "color",
            "namePlacement": "auto",
        },
    }


def firing_alerts(position: dict[str, int]) -> dict[str, Any]:
    # Alerts of the exporter itself have no instance labels; an empty label
    # matches ".*", so they show while every variable is on All.
    expr = (
        "max by (alertname, severity, cluster, namespace, license, environment) ("
        + selector(
            "ALERTS", 'alertstate="firing"', f'alertname=~"{ALERT_NAME_PATTERN}"'
        )
        + ")"
    )
    return {
        "type": "table",
        "title": "Firing alerts",
        "description": "Alerts of the license rule bundle firing now.",
        "datasource": DATASOURCE,
        "gridPos": position,
        "targets": [target("A", expr, instant=True, table=True)],
        "transformations": [
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True, "Value": True},
                    "indexByName": {
                        "alertname": 0,
                        "severity": 1,
                        "cluster": 2,
                        "namespace": 3,
                        "license": 4,
                        "environment": 5,
                    },
                    "renameByName": {
                        "alertname": "Alert",
                        "severity": "Severity",
                        "cluster": "Cluster",
                        "namespace": "Namespace",
                        "license": "License",
                        "environment": "Environment",
                    },
                },
            }
        ],
        "fieldConfig": {
            "defaults": {
                "custom": {
                    "align": "auto",
                    "cellOptions": {"type": "auto"},
                    "filterable": True,
                    "inspect": False,
                },
                "thresholds": thresholds(("text", None)),
                "color": {"mode": "thresholds"},
            },
            "overrides": [
                override(
                    "Severity",
                    ("custom.cellOptions", {"type": "color-text"}),
                    ("color", {"mode": "fixed", "fixedColor": "text"}),
                    (
                        "mappings",
                        [
                            {
                                "type": "value",
                                "options": {
                                    "critical": {"color": "red", "index": 0},
                                    "warning": {"color": "orange", "index": 1},
                                    "info": {"color": "blue", "index": 2},
                                },
                            }
                        ],
                    ),
                )
            ],
        },
        "options": {
            "showHeader": True,
            "cellHeight": "sm",
            "footer": {"show": False, "reducer": ["sum"], "fields": ""},
        },
    }


# Live license statuses of the Dify API, in the order of the exporter's
# LICENSE_STATUSES. The status timeline shows each as its index, because a
# Grafana value mapping maps values, not labels.
LICENSE_STATUS_COLORS = (
    ("none", "text"),
    ("inactive", "red"),
    ("active", "green"),
    ("expiring", "orange"),
    ("expired", "red"),
    ("lost", "red"),
)

# Capacity thresholds of the DifyLicenseSeatsHigh and DifyLicenseWorkspacesHigh
# alerts: warning from 80 %, critical from 95 % of the license limit.
UTILIZATION_THRESHOLDS = (("green", None), ("orange", 0.8), ("red", 0.95))

# A forecast at 100 % means the limit is reached by the next notice stage, which
# is where DifyLicenseCapacityForecast fires.
FORECAST_THRESHOLDS = (("green", None), ("orange", 0.8), ("red", 1.0))


def utilization_bargauge(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    position: dict[str, int],
) -> dict[str, Any]:
    return {
        "type": "bargauge",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": position,
        "targets": targets,
        "fieldConfig": {
            "defaults": {
                "unit": "percentunit",
                "decimals": 0,
                "min": 0,
                "max": 1,
                "thresholds": thresholds(*UTILIZATION_THRESHOLDS),
                "color": {"mode": "thresholds"},
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "displayMode": "gradient",
            "showUnfilled": True,
            "valueMode": "color",
            "namePlacement": "auto",
        },
    }


def forecast(resource: str) -> str:
    """Return the forecast share of `resource` in use at the next notice stage.

    The same line as DifyLicenseCapacityForecast: the 4-week fit now plus its
    slope times the seconds to the next notice stage, over the license limit.
    """
    used = selector(f"dify_license_{resource}_used")
    allowed = selector(f"dify_license_{resource}_allowed")
    stage = selector("dify_license_instance:dify_license_next_notice_stage:seconds")
    return (
        f"(max by ({INSTANCE_LABELS}) (predict_linear({used}[4w], 0)) "
        f"+ max by ({INSTANCE_LABELS}) (deriv({used}[4w])) * {stage}) "
        f"/ max by ({INSTANCE_LABELS}) ({allowed})"
    )


def capacity_panels(y: int) -> list[dict[str, Any]]:
    instance_usage = [
        target(
            "A",
            selector("dify_license_instance:dify_license_seats:utilization"),
            legend="{{cluster}}/{{namespace}} seats",
            instant=True,
        ),
        target(
            "B",
            selector("dify_license_instance:dify_license_workspaces:utilization"),
            legend="{{cluster}}/{{namespace}} workspaces",
            instant=True,
        ),
    ]
    # The per-license series have no instance labels: `and on (license)` keeps
    # the licenses of the selected instances.
    license_usage = [
        target(
            ref_id,
            f"max by (license) (dify_license_license:dify_license_{resource}:"
            f"utilization) and on (license) {selector('dify_license_info')}",
            legend="{{license}}",
            instant=True,
        )
        for ref_id, resource in (("A", "seats"), ("B", "workspaces"))
    ]
    return [
        utilization_bargauge(
            "Seat and workspace utilization",
            "Share of the seats and workspaces the license allows that each "
            "instance uses, from its Dify API. Orange from 80 %, red from 95 %, "
            "as the capacity alerts. Instances without api_url, or whose license "
            "sets no limit, are not shown.",
            instance_usage,
            grid(0, y, 8, 8),
        ),
        utilization_bargauge(
            "Utilization per license",
            "Usage of all instances of a license over its limit.",
            license_usage,
            grid(8, y, 8, 8),
        ),
        forecast_table(grid(16, y, 8, 8)),
    ]


def forecast_table(position: dict[str, int]) -> dict[str, Any]:
    stage = selector("dify_license_instance:dify_license_next_notice_stage:seconds")
    targets = [
        target("A", forecast("seats"), instant=True, table=True),
        target("B", forecast("workspaces"), instant=True, table=True),
        target("C", f"{stage} / 86400", instant=True, table=True),
    ]
    columns = [
        ("cluster", "Cluster"),
        ("namespace", "Namespace"),
        ("license", "License"),
        ("Value #A", "Seats at next stage"),
        ("Value #B", "Workspaces at next stage"),
        ("Value #C", "Days to next stage"),
    ]
    forecast_cell = (
        ("unit", "percentunit"),
        ("decimals", 0),
        ("custom.cellOptions", {"type": "color-background"}),
        ("thresholds", thresholds(*FORECAST_THRESHOLDS)),
    )
    return {
        "type": "table",
        "title": "Forecast usage at next notice stage",
        "description": "Share of the limit in use when the license reaches its "
        "next notice stage (or expires, after the last stage), at the linear "
        "trend of the last 4 weeks. Red at 100 %: the renewal notice comes after "
        "the limit is reached.",
        "datasource": DATASOURCE,
        "gridPos": position,
        "targets": targets,
        "transformations": [
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True, "environment": True},
                    "indexByName": {name: i for i, (name, _) in enumerate(columns)},
                    "renameByName": dict(columns),
                },
            },
        ],
        "fieldConfig": {
            "defaults": {
                "custom": {
                    "align": "auto",
                    "cellOptions": {"type": "auto"},
                    "filterable": True,
                    "inspect": False,
                },
                "thresholds": thresholds(("text", None)),
                "color": {"mode": "thresholds"},
            },
            "overrides": [
                override("Seats at next stage", *forecast_cell),
                override("Workspaces at next stage", *forecast_cell),
                override("Days to next stage", ("decimals", 1), ("unit", "none")),
            ],
        },
        "options": {
            "showHeader": True,
            "cellHeight": "sm",
            "footer": {"show": False, "reducer": ["sum"], "fields": ""},
            "sortBy": [{"displayName": "Days to next stage", "desc": False}],
        },
    }


def license_status_code() -> str:
    """Return the live status of each instance as its index in LICENSE_STATUSES."""
    parts = []
    for index, (status, _) in enumerate(LICENSE_STATUS_COLORS):
        series = selector("dify_license_status", f'status="{status}"')
        parts.append(f"({series} == 1) * {index}")
    return "max by (cluster, namespace) (" + " or ".join(parts) + ")"


def live_status_panels(y: int) -> list[dict[str, Any]]:
    mappings = [
        {
            "type": "value",
            "options": {
                str(index): {"text": status, "color": color, "index": index}
                for index, (status, color) in enumerate(LICENSE_STATUS_COLORS)
            },
        }
    ]
    timeline = {
        "type": "state-timeline",
        "title": "Live license status",
        "description": "License status that each instance's Dify API reports. "
        "Gaps are times when the probe failed. lost means the instance cannot "
        "reach its license server.",
        "datasource": DATASOURCE,
        "gridPos": grid(0, y, 20, 8),
        "targets": [
            target("A", license_status_code(), legend="{{cluster}}/{{namespace}}")
        ],
        "fieldConfig": {
            "defaults": {
                "mappings": mappings,
                "thresholds": thresholds(("text", None)),
                "color": {"mode": "thresholds"},
                "custom": {"fillOpacity": 80, "lineWidth": 0},
            },
            "overrides": [],
        },
        "options": {
            "mergeValues": True,
            "showValue": "auto",
            "alignValue": "left",
            "rowHeight": 0.9,
            "legend": {
                "displayMode": "list",
                "placement": "bottom",
                "showLegend": False,
            },
            "tooltip": {"mode": "single", "sort": "none"},
        },
    }
    failing = stat(
        "Failing probes",
        "Instances whose latest probe of the Dify API failed; their live status "
        "and capacity are unknown.",
        f"count(max by ({INSTANCE_LABELS}) "
        f"({selector('dify_license_probe_success')}) == 0) or vector(0)",
        "red",
        grid(20, y, 4, 8),
    )
    return [timeline, failing]


def health_timeseries(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    unit: str,
    position: dict[str, int],
    draw_style: str = "line",
) -> dict[str, Any]:
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": position,
        "targets": targets,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "min": 0,
                "custom": {
                    "drawStyle": draw_style,
                    "lineWidth": 1,
                    "fillOpacity": 10,
                    "showPoints": "never",
                    "spanNulls": False,
                },
                "color": {"mode": "palette-classic"},
            },
            "overrides": [],
        },
        "options": {
            "legend": {
                "displayMode": "list",
                "placement": "bottom",
                "showLegend": True,
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def health_panels(y: int) -> list[dict[str, Any]]:
    # The exporter's own series carry no instance labels, so these panels follow
    # the datasource only. `and on (job, instance)` keeps the exporter's targets
    # without naming a scrape job, which differs between installations.
    errors = (
        "sum by (source, reason) ("
        "increase(dify_license_exporter_refresh_errors_total[$__rate_interval]))"
    )
    snapshot_age = (
        "time() - max by (source) "
        "(dify_license_exporter_last_refresh_success_timestamp_seconds)"
    )
    refresh_duration = (
        "max by (source) (dify_license_exporter_refresh_duration_seconds)"
    )
    scrape_duration = (
        "scrape_duration_seconds "
        "and on (job, instance) dify_license_exporter_build_info"
    )
    return [
        health_timeseries(
            "Refresh errors by reason",
            "Failed refresh steps per source and reason; every pair is exposed "
            "from start, so a flat zero means healthy.",
            [target("A", errors, legend="{{source}}: {{reason}}")],
            "none",
            grid(0, y, 6, 8),
            draw_style="bars",
        ),
        health_timeseries(
            "Snapshot age",
            "Time since each source was last read without error; it grows past "
            "the refresh interval while a source fails.",
            [target("A", snapshot_age, legend="{{source}}")],
            "s",
            grid(6, y, 6, 8),
        ),
        health_timeseries(
            "Refresh duration",
            "How long the last refresh of each source took.",
            [target("A", refresh_duration, legend="{{source}}")],
            "s",
            grid(12, y, 6, 8),
        ),
        health_timeseries(
            "Scrape duration",
            "How long Prometheus took to scrape each exporter target.",
            [target("A", scrape_duration, legend="{{job}} {{instance}}")],
            "s",
            grid(18, y, 6, 8),
        ),
    ]


def query_variable(
    name: str, label: str, definition: str, description: str
) -> dict[str, Any]:
    """Build a multi-select variable over the values of `label`, with All = .*."""
    return {
        "type": "query",
        "name": name,
        "label": label,
        "description": description,
        "datasource": DATASOURCE,
        "definition": definition,
        "query": {"query": definition, "refId": f"{name}-variable"},
        "refresh": 2,
        "sort": 1,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "regex": "",
        "hide": 0,
        "skipUrlSync": False,
    }


def variables() -> list[dict[str, Any]]:
    # Cluster and namespace also list observed instances that are missing from
    # the registry: they have findings but no expiry.
    instance_series = '{__name__=~"dify_license_days_to_expiry|dify_license_finding"%s}'
    return [
        {
            "type": "datasource",
            "name": "datasource",
            "label": "Data source",
            "query": "prometheus",
            "regex": "",
            "refresh": 1,
            "hide": 0,
            "multi": False,
            "includeAll": False,
            "current": {},
            "options": [],
            "skipUrlSync": False,
        },
        query_variable(
            "cluster",
            "Cluster",
            f"label_values({instance_series % ''}, cluster)",
            "Kubernetes cluster of the instance.",
        ),
        query_variable(
            "namespace",
            "Namespace",
            "label_values("
            + instance_series % ', cluster=~"$cluster"'
            + ", namespace)",
            "Namespace the instance runs in, within the selected clusters.",
        ),
        query_variable(
            "environment",
            "Environment",
            "label_values(dify_license_info"
            '{cluster=~"$cluster", namespace=~"$namespace"}, environment)',
            "Environment from the instance registry.",
        ),
        query_variable(
            "license",
            "License",
            "label_values(dify_license_info"
            '{cluster=~"$cluster", namespace=~"$namespace", '
            'environment=~"$environment"}, license)',
            "License alias from the license registry.",
        ),
    ]


def build_dashboard() -> dict[str, Any]:
    """Assemble the dashboard model as Grafana exports it."""
    panels: list[dict[str, Any]] = [row("Fleet", 0), *stat_panels(1)]
    panels += [row("Instances", 5), instance_table(6)]
    panels += [
        row("Expiry and alerts", 18),
        days_timeseries(grid(0, 19, 12, 9)),
        mode_piechart(grid(12, 19, 6, 9)),
        shared_licenses(grid(18, 19, 6, 9)),
        firing_alerts(grid(0, 28, 24, 7)),
    ]
    panels += [
        row("Capacity and live status", 35),
        *capacity_panels(36),
        *live_status_panels(44),
    ]
    panels += [row("Exporter health", 52), *health_panels(53)]

    for panel_id, panel in enumerate(panels, start=1):
        panel["id"] = panel_id

    return {
        "id": None,
        "uid": DASHBOARD_UID,
        "title": "Dify license fleet",
        "description": "Dify Enterprise license expiry, activation mode and "
        "registry findings across clusters, from dify-license-exporter.",
        "tags": ["dify", "license", "dify-license-exporter"],
        "editable": True,
        "graphTooltip": 1,
        "timezone": "",
        "time": {"from": "now-30d", "to": "now"},
        "timepicker": {},
        "refresh": "5m",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {"list": variables()},
        "panels": panels,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "weekStart": "",
    }


def render() -> str:
    """Return the dashboard JSON exactly as it is committed."""
    return json.dumps(build_dashboard(), indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare with the committed JSON instead of writing it; exit 1 on a "
        "difference",
    )
    args = parser.parse_args(argv)

    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(
                f"{OUTPUT.name} is out of date: run python grafana/build_dashboard.py",
                file=sys.stderr,
            )
            return 1
        return 0

    OUTPUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
