"""Tests of the Grafana dashboard: its structure, and its queries on real data."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "grafana"
DASHBOARD_JSON = GRAFANA / "dify-license-fleet.json"
METRICS_DOC = ROOT / "docs" / "metrics.md"

DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}

# Panel types shipped with Grafana 10.0, so the dashboard needs no plugin.
CORE_PANEL_TYPES = {"row", "stat", "table", "timeseries", "piechart", "bargauge"}

# Variables Grafana itself defines for every query.
GRAFANA_VARIABLES = {
    "__rate_interval",
    "__interval",
    "__interval_ms",
    "__range",
    "__range_s",
    "__range_ms",
}

# Series that Prometheus writes itself rather than scraping them.
PROMETHEUS_SERIES = {
    "ALERTS",
    "ALERTS_FOR_STATE",
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
}

PROMQL_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
}

PROMQL_AGGREGATIONS = {
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
}

VARIABLE_REFERENCE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")
NAME_MATCHER = re.compile(r'__name__\s*=~?\s*"(?P<names>[^"]*)"')
STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')
LABEL_LIST = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
)
MATCHER_BLOCK = re.compile(r"\{[^}]*\}")
RANGE_BLOCK = re.compile(r"\[[^\]]*\]")
IDENTIFIER = re.compile(r"(?<![\w.])([A-Za-z_:][\w:]*)\s*(\()?")


def load_generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "build_dashboard", GRAFANA / "build_dashboard.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_JSON.read_text(encoding="utf-8"))


def data_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def query_variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in dashboard["templating"]["list"] if v["type"] == "query"]


def all_targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict, dict]]:
    for panel in data_panels(dashboard):
        for target in panel["targets"]:
            yield panel, target


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Yield every (path, value) pair of a JSON document."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")


def metric_names(expr: str) -> set[str]:
    """Return the metric names an expression or label_values() selector reads.

    Function names, aggregations, keywords, label names and string literals are
    left out; `__name__` matchers must list plain names separated by `|`.
    """
    names: set[str] = set()
    for match in NAME_MATCHER.finditer(expr):
        for name in match.group("names").split("|"):
            assert re.fullmatch(r"[A-Za-z_:][\w:]*", name), (
                f"__name__ matcher {match.group(0)} is not a list of metric names"
            )
            names.add(name)

    stripped = MATCHER_BLOCK.sub(" ", STRING_LITERAL.sub('""', expr))
    stripped = RANGE_BLOCK.sub(" ", LABEL_LIST.sub(" ", stripped))
    for match in IDENTIFIER.finditer(stripped):
        word, call = match.group(1), match.group(2)
        if call or word in PROMQL_KEYWORDS or word in PROMQL_AGGREGATIONS:
            continue
        names.add(word)
    return names


def documented_metrics() -> set[str]:
    return set(re.findall(r"^\| `(\w+)` \|", METRICS_DOC.read_text(), re.MULTILINE))


def variable_references(text: str) -> set[str]:
    return {
        next(group for group in match.groups() if group)
        for match in VARIABLE_REFERENCE.finditer(text)
    }


# Structure


def test_generator_output_matches_committed_json():
    generator = load_generator()

    assert generator.render() == DASHBOARD_JSON.read_text(encoding="utf-8")


def test_generator_check_flag_detects_drift(tmp_path, monkeypatch):
    generator = load_generator()
    stale = tmp_path / "dify-license-fleet.json"
    stale.write_text("{}\n", encoding="utf-8")
    monkeypatch.setattr(generator, "OUTPUT", stale)

    assert generator.main(["--check"]) == 1
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0
    assert stale.read_text(encoding="utf-8") == generator.render()


def test_dashboard_targets_grafana_10(dashboard):
    assert dashboard["schemaVersion"] == 38
    assert dashboard["uid"] == "dify-license-fleet"
    assert dashboard["id"] is None
    assert "__inputs" not in dashboard
    assert "__requires" not in dashboard


def test_panel_types_ship_with_grafana(dashboard):
    for panel in dashboard["panels"]:
        assert panel["type"] in CORE_PANEL_TYPES, panel["title"]


def test_panel_ids_unique(dashboard):
    ids = [panel["id"] for panel in dashboard["panels"]]

    assert all(isinstance(panel_id, int) for panel_id in ids)
    assert len(ids) == len(set(ids))


def test_panels_fit_grid_without_overlap(dashboard):
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel["title"]
        assert pos["w"] > 0, panel["title"]
        assert pos["h"] > 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]

        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, (
                    f"{panel['title']} overlaps {cells[(x, y)]} at x={x}, y={y}"
                )
                cells[(x, y)] = panel["title"]


def test_rows_are_expanded_and_empty(dashboard):
    rows = [panel for panel in dashboard["panels"] if panel["type"] == "row"]

    assert [row["title"] for row in rows] == [
        "Fleet",
        "Instances",
        "Expiry and alerts",
        "Exporter health",
    ]
    for row in rows:
        assert row["collapsed"] is False
        assert row["panels"] == []
        assert row["gridPos"]["w"] == 24


def test_panels_and_targets_use_datasource_variable(dashboard):
    for panel in data_panels(dashboard):
        assert panel["datasource"] == DATASOURCE_REF, panel["title"]
        assert panel["targets"], panel["title"]

        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE_REF, panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_no_hardcoded_datasource_uid(dashboard):
    annotation_source = {"type": "grafana", "uid": "-- Grafana --"}
    for path, node in walk(dashboard):
        if path.endswith(".datasource") and isinstance(node, dict):
            assert node in (DATASOURCE_REF, annotation_source), path


def test_datasource_variable_is_prometheus(dashboard):
    variables = dashboard["templating"]["list"]
    datasource = variables[0]

    assert datasource["name"] == "datasource"
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"
    assert datasource["current"] == {}


def test_variables_in_dashboard_order(dashboard):
    names = [variable["name"] for variable in dashboard["templating"]["list"]]

    assert names == ["datasource", "cluster", "namespace", "environment", "license"]


def test_query_variables_multi_select_with_all(dashboard):
    for variable in query_variables(dashboard):
        assert variable["datasource"] == DATASOURCE_REF, variable["name"]
        assert variable["multi"] is True, variable["name"]
        assert variable["includeAll"] is True, variable["name"]
        assert variable["allValue"] == ".*", variable["name"]
        assert variable["query"]["query"] == variable["definition"], variable["name"]
        assert variable["refresh"] == 2, variable["name"]


def test_query_variables_use_label_values(dashboard):
    labels = {}
    for variable in query_variables(dashboard):
        match = LABEL_VALUES.match(variable["definition"])
        assert match, variable["definition"]
        labels[variable["name"]] = match.group("label")

    assert labels == {
        "cluster": "cluster",
        "namespace": "namespace",
        "environment": "environment",
        "license": "license",
    }


def test_namespace_variable_chained_to_cluster(dashboard):
    variables = {v["name"]: v for v in query_variables(dashboard)}

    assert variable_references(variables["cluster"]["definition"]) == set()
    assert variable_references(variables["namespace"]["definition"]) == {"cluster"}
    assert variable_references(variables["environment"]["definition"]) == {
        "cluster",
        "namespace",
    }
    assert variable_references(variables["license"]["definition"]) == {
        "cluster",
        "namespace",
        "environment",
    }


def test_variables_reference_only_earlier_variables(dashboard):
    defined = set(GRAFANA_VARIABLES)
    for variable in dashboard["templating"]["list"]:
        query = json.dumps(variable["query"])
        unresolved = variable_references(query) - defined
        assert unresolved == set(), variable["name"]
        defined.add(variable["name"])


def test_every_variable_reference_resolves(dashboard):
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    defined |= GRAFANA_VARIABLES

    for panel in data_panels(dashboard):
        unresolved = variable_references(json.dumps(panel)) - defined
        assert unresolved == set(), panel["title"]


def test_instance_queries_filter_by_every_variable(dashboard):
    health_row_y = next(
        panel["gridPos"]["y"]
        for panel in dashboard["panels"]
        if panel["title"] == "Exporter health"
    )
    for panel, target in all_targets(dashboard):
        if panel["gridPos"]["y"] > health_row_y:
            continue
        references = variable_references(target["expr"])
        assert references >= {"cluster", "namespace", "environment", "license"}, (
            f"{panel['title']} {target['refId']}"
        )


def test_metric_names_are_documented(dashboard):
    known = documented_metrics() | PROMETHEUS_SERIES
    expressions = [target["expr"] for _, target in all_targets(dashboard)]
    expressions += [
        LABEL_VALUES.match(v["definition"]).group("selector")
        for v in query_variables(dashboard)
    ]

    for expr in expressions:
        names = metric_names(expr)
        assert names, expr
        assert names <= known, f"unknown metrics {names - known} in {expr}"


def test_metric_names_parser_skips_functions_and_labels():
    expr = (
        'sum by (source, reason) (increase(foo_total{a="b|c"}[$__rate_interval])) '
        "and on (job) bar_info or vector(0) > 0 <= 7"
    )

    assert metric_names(expr) == {"foo_total", "bar_info"}
    assert metric_names('{__name__=~"a_b|c_d", x="y"}') == {
        "a_b",
        "c_d",
    }


def test_metrics_doc_lists_used_families():
    documented = documented_metrics()

    assert "dify_license_days_to_expiry" in documented
    assert "dify_license_finding" in documented
    assert "dify_license_exporter_build_info" in documented


def test_stats_colored_at_alert_thresholds(dashboard):
    stats = {p["title"]: p for p in data_panels(dashboard) if p["type"] == "stat"}
    expected_colors = {
        "Instances monitored": None,
        "Expired": "dark-red",
        "Within 7 days": "red",
        "Within 30 days": "orange",
        "Within 90 days": "yellow",
        "Restart pending": "orange",
        "Registry problems": "yellow",
    }

    assert list(stats) == list(expected_colors)
    for title, color in expected_colors.items():
        steps = stats[title]["fieldConfig"]["defaults"]["thresholds"]["steps"]
        if color is None:
            assert steps == [{"color": "text", "value": None}], title
        else:
            assert steps == [
                {"color": "green", "value": None},
                {"color": color, "value": 1},
            ], title
    assert all(stat["gridPos"]["y"] == 1 for stat in stats.values())


def test_instance_table_columns_and_colors(dashboard):
    table = next(p for p in data_panels(dashboard) if p["title"] == "Instances")
    organize = next(t for t in table["transformations"] if t["id"] == "organize")
    columns = sorted(
        organize["options"]["renameByName"].items(),
        key=lambda item: organize["options"]["indexByName"][item[0]],
    )

    assert [title for _, title in columns] == [
        "Cluster",
        "Namespace",
        "License",
        "Environment",
        "Mode",
        "Days to expiry",
        "Expiry date",
        "Owner",
        "Department",
        "Requester",
        "Activator",
        "Findings",
    ]
    assert table["options"]["sortBy"] == [
        {"displayName": "Days to expiry", "desc": False}
    ]

    days = next(
        o
        for o in table["fieldConfig"]["overrides"]
        if o["matcher"]["options"] == "Days to expiry"
    )
    properties = {p["id"]: p["value"] for p in days["properties"]}
    steps = properties["thresholds"]["steps"]
    assert [step["value"] for step in steps] == [None, 0, 7, 30, 60, 90]
    assert properties["custom.cellOptions"] == {"type": "color-background"}


def test_instance_table_transformations_name_real_fields(dashboard):
    table = next(p for p in data_panels(dashboard) if p["title"] == "Instances")
    ref_ids = {target["refId"] for target in table["targets"]}
    group_by = next(t for t in table["transformations"] if t["id"] == "groupBy")
    fields = group_by["options"]["fields"]

    value_fields = {name for name in fields if name.startswith("Value #")}
    assert {name.removeprefix("Value #") for name in value_fields} <= ref_ids
    for target in table["targets"]:
        assert target["format"] == "table"
        assert target["instant"] is True
    assert [t["id"] for t in table["transformations"]] == [
        "groupBy",
        "merge",
        "organize",
    ]


# Queries on real data: the exporter serves examples/, Prometheus scrapes it.

ALL = ".*"

# Values Grafana puts in place of its own variables; 1m covers a 1s scrape
# interval with room to spare.
GRAFANA_SUBSTITUTES = {
    "__rate_interval": "1m",
    "__interval": "1s",
    "__interval_ms": "1000",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
}

# How far the exporter's days_to_expiry may drift from `check` between the two
# evaluations: about 15 minutes, far more than a test run takes.
DAYS_TOLERANCE = 0.01


def regex_value(values: list[str]) -> str:
    """Render a multi-value selection the way Grafana renders it for =~."""
    escaped = [re.escape(value) for value in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(text: str, selection: dict[str, str]) -> str:
    """Replace dashboard and Grafana variables in a query by their values."""
    values = {**GRAFANA_SUBSTITUTES, **selection}

    def replace(match: re.Match) -> str:
        name = next(group for group in match.groups() if group)
        assert name in values, f"no value for variable {name} in {text}"
        return values[name]

    return VARIABLE_REFERENCE.sub(replace, text)
