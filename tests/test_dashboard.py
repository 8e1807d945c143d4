"""Tests of the Grafana dashboard: its structure, and its queries on real data."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import realstack
import yaml
from dify_api_simulator import Behavior, DifyApiSimulator, features, system_features
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "grafana"
DASHBOARD_JSON = GRAFANA / "dify-license-fleet.json"
METRICS_DOC = ROOT / "docs" / "metrics.md"

DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}

# Panel types shipped with Grafana 10.0, so the dashboard needs no plugin.
CORE_PANEL_TYPES = {
    "row",
    "stat",
    "table",
    "timeseries",
    "piechart",
    "bargauge",
    "state-timeline",
}

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
    left out. A `__name__` matcher must list plain names separated by `|`.
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


def recorded_series() -> set[str]:
    """Return the series the recording rules in alerts/ write."""
    return {
        rule["record"]
        for path in rule_file_paths()
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


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
        "Capacity and live status",
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
    known = documented_metrics() | PROMETHEUS_SERIES | recorded_series()
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
        "Failing probes": "red",
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
    fleet_stats = [stat for title, stat in stats.items() if title != "Failing probes"]
    assert all(stat["gridPos"]["y"] == 1 for stat in fleet_stats)


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

# Values Grafana puts in place of its own variables. A 1m rate interval covers
# the 1s scrape interval of the test with room to spare.
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
    """Render a multi-value selection the way Grafana renders it for =~.

    Grafana's Prometheus data source escapes regex metacharacters with a doubled
    backslash, because the value lands inside a PromQL string literal.
    """
    escaped = [re.sub(r"([$^*{}\[\]'+?.()|\\])", r"\\\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(text: str, selection: dict[str, str]) -> str:
    """Replace dashboard and Grafana variables in a query by their values."""
    values = {**GRAFANA_SUBSTITUTES, **selection}

    def replace(match: re.Match) -> str:
        name = next(group for group in match.groups() if group)
        assert name in values, f"no value for variable {name} in {text}"
        return values[name]

    return VARIABLE_REFERENCE.sub(replace, text)


def http_json(url: str, params: dict[str, str] | list[tuple[str, str]]) -> Any:
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}?{query}", timeout=10) as response:
        return json.load(response)


def prometheus_query(base_url: str, expr: str) -> list[dict[str, Any]]:
    """Run an instant query and return its result vector."""
    body = http_json(f"{base_url}/api/v1/query", {"query": expr})
    assert body["status"] == "success", f"{expr}: {body}"
    assert body["data"]["resultType"] == "vector", expr
    return body["data"]["result"]


def prometheus_query_range(base_url: str, expr: str) -> list[dict[str, Any]]:
    """Run a range query over the last 10 seconds and return its matrix."""
    end = time.time()
    params = {"query": expr, "start": str(end - 10), "end": str(end), "step": "1"}
    body = http_json(f"{base_url}/api/v1/query_range", params)
    assert body["status"] == "success", f"{expr}: {body}"
    assert body["data"]["resultType"] == "matrix", expr
    return body["data"]["result"]


def prometheus_label_values(base_url: str, label: str, selector: str) -> list[str]:
    """Return the label values Grafana's label_values(selector, label) lists."""
    url = f"{base_url}/api/v1/label/{label}/values"
    body = http_json(url, [("match[]", selector)])
    assert body["status"] == "success", f"{selector}: {body}"
    return body["data"]


def matches_selection(pattern: str, value: str) -> bool:
    """Match a label value as Prometheus matches =~ on the substituted pattern."""
    return re.fullmatch(pattern.replace("\\\\", "\\"), value) is not None


def test_regex_value_escapes_like_grafana():
    assert regex_value(["prod-cn"]) == "prod-cn"
    assert regex_value(["a.b", "c"]) == "(a\\\\.b|c)"
    assert matches_selection(regex_value(["a.b", "c"]), "a.b")
    assert not matches_selection(regex_value(["a.b"]), "axb")


@dataclass(frozen=True)
class Instance:
    """One instance as `check --format json` reports it, plus its registry contacts."""

    cluster: str
    namespace: str
    license: str
    environment: str
    mode: str | None
    days_to_expiry: float | None
    expires: datetime | None
    findings: tuple[str, ...]
    contacts: dict[str, str] | None

    def labels(self) -> dict[str, str]:
        return {
            "cluster": self.cluster,
            "namespace": self.namespace,
            "license": self.license,
            "environment": self.environment,
        }


@dataclass(frozen=True)
class Fleet:
    """The instances the dashboard must show, and registry facts beside them."""

    instances: tuple[Instance, ...]
    instances_per_license: dict[str, int]

    def select(self, selection: dict[str, str]) -> Fleet:
        """Keep the instances whose labels match the variables' regexes."""
        kept = tuple(
            instance
            for instance in self.instances
            if all(
                matches_selection(selection[name], value)
                for name, value in instance.labels().items()
            )
        )
        return replace(self, instances=kept)

    def registered(self) -> list[Instance]:
        return [instance for instance in self.instances if instance.license]

    def count(self, predicate: Callable[[Instance], bool]) -> int:
        return sum(1 for instance in self.instances if predicate(instance))


@dataclass
class Context:
    """Everything an expectation may compare a query result with."""

    fleet: Fleet
    selection: dict[str, str]
    exporter_samples: dict[str, list[tuple[dict[str, str], float]]]
    exporter_target: str
    job: str
    firing_alerts: list[dict[str, str]]


@dataclass
class Expected:
    """Labels and values a query must return.

    `rows` maps the non-empty labels of a series to its value: a number, or a
    (low, high) range for values that change between runs. `rows` is empty only
    for a query that must return nothing.
    """

    labels: set[str]
    rows: dict[tuple[tuple[str, str], ...], float | tuple[float, float]]
    tolerance: float = 0.0


def row_key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """Key a series by its non-empty labels, because Prometheus drops empty ones."""
    return tuple(sorted((name, value) for name, value in labels.items() if value))


def single_value(value: float) -> Expected:
    return Expected(labels=set(), rows={(): value})


def per_instance(
    instances: list[Instance], value: Callable[[Instance], float], **options: Any
) -> Expected:
    return Expected(
        labels={"cluster", "namespace", "license", "environment"},
        rows={row_key(instance.labels()): value(instance) for instance in instances},
        **options,
    )


def has_days(instance: Instance) -> bool:
    return instance.days_to_expiry is not None


def expires_within(days: float) -> Callable[[Instance], bool]:
    return lambda i: has_days(i) and 0 < i.days_to_expiry <= days


REGISTRY_PROBLEM_FINDINGS = {
    "binding_mismatch",
    "mode_mismatch",
    "registry_incomplete",
    "unregistered",
    "not_deployed",
}


def expect_instance_info(context: Context) -> Expected:
    rows = {}
    for instance in context.fleet.registered():
        rows[row_key({**instance.labels(), **instance.contacts})] = 1.0
    labels = {"cluster", "namespace", "license", "environment"}
    labels |= {"owner", "department", "requester", "activator"}
    return Expected(labels=labels, rows=rows)


def expect_modes(context: Context) -> Expected:
    rows = {}
    for instance in context.fleet.instances:
        if instance.mode is not None:
            rows[row_key({**instance.labels(), "mode": instance.mode})] = 1.0
    return Expected(
        labels={"cluster", "namespace", "license", "environment", "mode"}, rows=rows
    )


def expect_findings(context: Context) -> Expected:
    rows = {}
    for instance in context.fleet.instances:
        for finding in instance.findings:
            rows[row_key({**instance.labels(), "finding": finding})] = 1.0
    return Expected(
        labels={"cluster", "namespace", "license", "environment", "finding"},
        rows=rows,
    )


def expect_days_per_license(context: Context) -> Expected:
    fewest: dict[str, float] = {}
    for instance in context.fleet.registered():
        if has_days(instance):
            days = fewest.get(instance.license, instance.days_to_expiry)
            fewest[instance.license] = min(days, instance.days_to_expiry)
    rows = {row_key({"license": name}): days for name, days in fewest.items()}
    return Expected(labels={"license"}, rows=rows, tolerance=DAYS_TOLERANCE)


def expect_mode_counts(context: Context) -> Expected:
    counts: dict[str, int] = {}
    for instance in context.fleet.instances:
        if instance.mode is not None:
            counts[instance.mode] = counts.get(instance.mode, 0) + 1
    rows = {row_key({"mode": mode}): float(n) for mode, n in counts.items()}
    return Expected(labels={"mode"}, rows=rows)


def expect_shared_licenses(context: Context) -> Expected:
    shown = {instance.license for instance in context.fleet.registered()}
    rows = {
        row_key({"license": name}): float(count)
        for name, count in context.fleet.instances_per_license.items()
        if count > 1 and name in shown
    }
    return Expected(labels={"license"}, rows=rows)


def expect_firing_alerts(context: Context) -> Expected:
    columns = ("alertname", "severity", "cluster", "namespace", "license")
    columns += ("environment",)
    rows = {}
    for alert in context.firing_alerts:
        if not alert["alertname"].startswith("DifyLicense"):
            continue
        selected = all(
            matches_selection(context.selection[name], alert.get(name, ""))
            for name in ("cluster", "namespace", "license", "environment")
        )
        if selected:
            rows[row_key({name: alert.get(name, "") for name in columns})] = 1.0
    return Expected(labels=set(columns), rows=rows)


def expect_refresh_errors(context: Context) -> Expected:
    samples = context.exporter_samples["dify_license_exporter_refresh_errors_total"]
    rows = {row_key(labels): 0.0 for labels, _ in samples}
    return Expected(labels={"source", "reason"}, rows=rows)


def expect_per_source(
    context: Context, metric: str, low: float, high: float
) -> Expected:
    """Expect one series per source that the exporter publishes `metric` for."""
    samples = context.exporter_samples[metric]
    rows = {row_key(labels): (low, high) for labels, _ in samples}
    return Expected(labels={"source"}, rows=rows)


def expect_scrape_duration(context: Context) -> Expected:
    labels = {
        "__name__": "scrape_duration_seconds",
        "job": context.job,
        "instance": context.exporter_target,
    }
    return Expected(labels=set(labels), rows={row_key(labels): (0.0, 5.0)})


# A query that must return no series: examples/ has no instance with api_url,
# so the exporter publishes no probe samples for it.
NO_SERIES = Expected(labels=set(), rows={})

INSTANCE_LABEL_NAMES = ("cluster", "namespace", "license", "environment")

DEFAULT_NOTICE_DAYS = (90.0, 60.0, 30.0, 7.0)


def next_stage_days(days_to_expiry: float, thresholds: list[float]) -> float:
    """Return the days until the next notice stage, or until expiry after the last."""
    ahead = [threshold for threshold in thresholds if threshold < days_to_expiry]
    return days_to_expiry - max(ahead) if ahead else days_to_expiry


def expect_days_to_next_stage(context: Context) -> Expected:
    thresholds: dict[tuple[tuple[str, str], ...], list[float]] = {}
    for labels, value in context.exporter_samples["dify_license_notice_threshold_days"]:
        key = row_key({name: labels[name] for name in INSTANCE_LABEL_NAMES})
        thresholds.setdefault(key, []).append(value)
    instances = [
        instance
        for instance in context.fleet.registered()
        if has_days(instance) and instance.days_to_expiry > 0
    ]
    return per_instance(
        instances,
        lambda i: next_stage_days(
            i.days_to_expiry,
            thresholds.get(row_key(i.labels()), list(DEFAULT_NOTICE_DAYS)),
        ),
        tolerance=DAYS_TOLERANCE,
    )


# What every query of the dashboard returns for the examples/ fleet, keyed by
# panel title and refId. Values come from `check --format json`, the registry
# and the exporter's own /metrics, so they follow edits of examples/.
EXPECTATIONS: dict[tuple[str, str], Callable[[Context], Expected]] = {
    ("Instances monitored", "A"): lambda c: single_value(len(c.fleet.instances)),
    ("Expired", "A"): lambda c: single_value(
        c.fleet.count(lambda i: has_days(i) and i.days_to_expiry <= 0)
    ),
    ("Within 7 days", "A"): lambda c: single_value(c.fleet.count(expires_within(7))),
    ("Within 30 days", "A"): lambda c: single_value(c.fleet.count(expires_within(30))),
    ("Within 90 days", "A"): lambda c: single_value(c.fleet.count(expires_within(90))),
    ("Restart pending", "A"): lambda c: single_value(
        c.fleet.count(lambda i: "restart_pending" in i.findings)
    ),
    ("Registry problems", "A"): lambda c: single_value(
        c.fleet.count(lambda i: bool(REGISTRY_PROBLEM_FINDINGS & set(i.findings)))
    ),
    ("Instances", "A"): lambda c: per_instance(
        [i for i in c.fleet.instances if has_days(i)],
        lambda i: i.days_to_expiry,
        tolerance=DAYS_TOLERANCE,
    ),
    ("Instances", "B"): lambda c: per_instance(
        [i for i in c.fleet.instances if has_days(i)],
        lambda i: i.expires.timestamp() * 1000,
    ),
    ("Instances", "C"): expect_instance_info,
    ("Instances", "D"): expect_modes,
    ("Instances", "E"): expect_findings,
    ("Days to expiry per license", "A"): expect_days_per_license,
    ("Activation mode", "A"): expect_mode_counts,
    ("Shared licenses", "A"): expect_shared_licenses,
    ("Firing alerts", "A"): expect_firing_alerts,
    ("Refresh errors by reason", "A"): expect_refresh_errors,
    # Refreshes run every second, so the last success is at most a few seconds old.
    ("Snapshot age", "A"): lambda c: expect_per_source(
        c, "dify_license_exporter_last_refresh_success_timestamp_seconds", 0.0, 30.0
    ),
    ("Refresh duration", "A"): lambda c: expect_per_source(
        c, "dify_license_exporter_refresh_duration_seconds", 0.0, 5.0
    ),
    ("Scrape duration", "A"): expect_scrape_duration,
    ("Seat and workspace utilization", "A"): lambda c: NO_SERIES,
    ("Seat and workspace utilization", "B"): lambda c: NO_SERIES,
    ("Utilization per license", "A"): lambda c: NO_SERIES,
    ("Utilization per license", "B"): lambda c: NO_SERIES,
    ("Forecast usage at next notice stage", "A"): lambda c: NO_SERIES,
    ("Forecast usage at next notice stage", "B"): lambda c: NO_SERIES,
    ("Forecast usage at next notice stage", "C"): expect_days_to_next_stage,
    ("Live license status", "A"): lambda c: NO_SERIES,
    ("Failing probes", "A"): lambda c: single_value(0),
}


# The job name the health rules in alerts/ expect for the exporter's targets.
EXPORTER_JOB = "dify-license-exporter"

EXPORTER = [sys.executable, "-m", "dify_license_exporter"]
EXAMPLES = ROOT / "examples"

SOURCE_FLAGS = [
    "--registry",
    str(EXAMPLES / "registry.yaml"),
    "--values-dir",
    str(EXAMPLES / "values"),
]


def parse_samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Map every metric name of an exposition, samples or not, to its samples."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        samples.setdefault(family.name, [])
        if family.type == "counter":
            samples.setdefault(family.name + "_total", [])
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def load_fleet() -> Fleet:
    """Read the fleet from `check --format json` and the registry's contacts."""
    result = subprocess.run(
        [*EXPORTER, "check", *SOURCE_FLAGS, "--format", "json"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    # Exit 1 only means an instance has a critical finding.
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)

    registry = yaml.safe_load((EXAMPLES / "registry.yaml").read_text())
    owners = {
        (entry["cluster"], entry["namespace"]): entry for entry in registry["instances"]
    }
    renewals = {entry["license"]: entry for entry in registry.get("renewals", [])}
    per_license: dict[str, int] = {}
    for entry in registry["instances"]:
        per_license[entry["license"]] = per_license.get(entry["license"], 0) + 1

    instances = []
    for item in report["instances"]:
        contacts = None
        if item["license"]:
            owner = owners[(item["cluster"], item["namespace"])]
            renewal = renewals.get(item["license"], {})
            contacts = {
                "owner": owner.get("owner", ""),
                "department": owner.get("department", ""),
                "requester": renewal.get("requester", ""),
                "activator": renewal.get("activator", ""),
            }
        expires = item["expires"]
        instances.append(
            Instance(
                cluster=item["cluster"],
                namespace=item["namespace"],
                license=item["license"] or "",
                environment=item["environment"] or "",
                mode=item["mode"],
                days_to_expiry=item["days_to_expiry"],
                expires=datetime.fromisoformat(expires) if expires else None,
                findings=tuple(item["findings"]),
                contacts=contacts,
            )
        )
    return Fleet(instances=tuple(instances), instances_per_license=per_license)


@dataclass
class Endpoints:
    prometheus_url: str
    exporter_url: str
    exporter_target: str


def rule_file_paths() -> list[Path]:
    """Return the Prometheus rule files in alerts/, skipping other YAML there."""
    paths = []
    for path in sorted((ROOT / "alerts").glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(document, dict) and "groups" in document:
            paths.append(path)
    return paths


@pytest.fixture(scope="module")
def stack() -> Iterator[Endpoints]:
    """Serve examples/ with the exporter and scrape it with Prometheus every second."""
    with realstack.Stack() as processes:
        exporter_url = processes.start_exporter(
            [*SOURCE_FLAGS, "--refresh-interval", "1"]
        )
        exporter_target = exporter_url.removeprefix("http://")
        prometheus_url = processes.start_prometheus(
            {EXPORTER_JOB: [exporter_target]}, rule_files=rule_file_paths()
        )

        # increase() over 1m needs two samples, and the alert rules need a few
        # evaluations to chain their recording rules into firing alerts.
        scrapes = f'count_over_time(up{{job="{EXPORTER_JOB}"}}[1m]) >= 5'
        try:
            realstack.wait_until(
                lambda: prometheus_query(prometheus_url, scrapes),
                timeout=30,
                what="five scrapes of the exporter",
            )
        except TimeoutError as error:
            raise AssertionError(f"{error}\n{processes.logs()}") from error

        yield Endpoints(prometheus_url, exporter_url, exporter_target)


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return load_fleet()


@pytest.fixture(scope="module")
def exporter_samples(stack) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"{stack.exporter_url}/metrics", timeout=10) as page:
        return parse_samples(page.read().decode("utf-8"))


@pytest.fixture(scope="module")
def firing_alerts(stack) -> list[dict[str, str]]:
    body = http_json(f"{stack.prometheus_url}/api/v1/alerts", {})
    alerts = body["data"]["alerts"]
    return [alert["labels"] for alert in alerts if alert["state"] == "firing"]


def all_selection() -> dict[str, str]:
    return {name: ALL for name in ("cluster", "namespace", "environment", "license")}


def run_target(stack: Endpoints, target: dict[str, Any], selection: dict[str, str]):
    """Run a target as Grafana would and return {labels key: last value}."""
    expr = substitute(target["expr"], selection)
    values: dict[tuple[tuple[str, str], ...], float] = {}
    names: set[str] = set()
    if target["instant"]:
        for series in prometheus_query(stack.prometheus_url, expr):
            values[row_key(series["metric"])] = float(series["value"][1])
            names |= set(series["metric"])
    else:
        for series in prometheus_query_range(stack.prometheus_url, expr):
            values[row_key(series["metric"])] = float(series["values"][-1][1])
            names |= set(series["metric"])
    return names, values


def assert_matches(expected: Expected, names: set[str], values: dict, what: str):
    if expected is NO_SERIES:
        assert values == {}, what
        return
    assert expected.rows, f"{what}: the expectation has no rows to check"
    assert names == expected.labels, what
    assert set(values) == set(expected.rows), what
    for key, value in values.items():
        want = expected.rows[key]
        if isinstance(want, tuple):
            low, high = want
            assert low <= value <= high, f"{what} {key}: {value}"
        else:
            assert value == pytest.approx(want, abs=expected.tolerance), f"{what} {key}"


def dashboard_targets() -> list[tuple[str, str]]:
    document = json.loads(DASHBOARD_JSON.read_text(encoding="utf-8"))
    return [(p["title"], t["refId"]) for p, t in all_targets(document)]


def test_every_query_has_expectation(dashboard):
    assert sorted(dashboard_targets()) == sorted(EXPECTATIONS)


@pytest.mark.parametrize(
    "title, ref_id", dashboard_targets(), ids=lambda value: str(value)
)
def test_query_returns_expected_series(
    dashboard, stack, fleet, exporter_samples, firing_alerts, title, ref_id
):
    panel = next(p for p in data_panels(dashboard) if p["title"] == title)
    target = next(t for t in panel["targets"] if t["refId"] == ref_id)
    selection = all_selection()
    context = Context(
        fleet=fleet,
        selection=selection,
        exporter_samples=exporter_samples,
        exporter_target=stack.exporter_target,
        job=EXPORTER_JOB,
        firing_alerts=firing_alerts,
    )

    names, values = run_target(stack, target, selection)

    assert_matches(EXPECTATIONS[(title, ref_id)](context), names, values, title)


def test_instance_queries_follow_cluster_selection(
    dashboard, stack, fleet, exporter_samples, firing_alerts
):
    clusters = sorted({instance.cluster for instance in fleet.instances})
    assert len(clusters) >= 2, "examples/ should span two clusters"
    selection = {**all_selection(), "cluster": regex_value(clusters[-1:])}
    context = Context(
        fleet=fleet.select(selection),
        selection=selection,
        exporter_samples=exporter_samples,
        exporter_target=stack.exporter_target,
        job=EXPORTER_JOB,
        firing_alerts=firing_alerts,
    )
    checked = 0

    for panel, target in all_targets(dashboard):
        if "cluster" not in variable_references(target["expr"]):
            continue
        expected = EXPECTATIONS[(panel["title"], target["refId"])](context)
        if not expected.rows:
            continue
        names, values = run_target(stack, target, selection)
        assert_matches(expected, names, values, f"{panel['title']} {target['refId']}")
        checked += 1

    assert checked >= 15
    assert len(context.fleet.instances) < len(fleet.instances)


def test_firing_alerts_cover_notice_stages(stack, fleet):
    expr = 'ALERTS{alertstate="firing", alertname="DifyLicenseExpiring"}'
    firing = {
        (series["metric"]["cluster"], series["metric"]["namespace"])
        for series in prometheus_query(stack.prometheus_url, expr)
    }
    expiring = {
        (instance.cluster, instance.namespace)
        for instance in fleet.instances
        if "expiring" in instance.findings
    }

    assert expiring, "examples/ should have an instance at a notice stage"
    assert firing == expiring


def test_variables_list_fleet_labels(dashboard, stack, fleet):
    registered = fleet.registered()
    expected = {
        "cluster": {i.cluster for i in fleet.instances},
        "namespace": {i.namespace for i in fleet.instances},
        "environment": {i.environment for i in registered},
        "license": {i.license for i in registered},
    }

    for variable in query_variables(dashboard):
        match = LABEL_VALUES.match(variable["definition"])
        selector = substitute(match.group("selector"), all_selection())
        values = prometheus_label_values(
            stack.prometheus_url, match.group("label"), selector
        )
        assert set(values) == expected[variable["name"]], variable["name"]


def test_namespace_variable_follows_cluster(dashboard, stack, fleet):
    variable = next(v for v in query_variables(dashboard) if v["name"] == "namespace")
    match = LABEL_VALUES.match(variable["definition"])

    for cluster in {instance.cluster for instance in fleet.instances}:
        selection = {**all_selection(), "cluster": regex_value([cluster])}
        selector = substitute(match.group("selector"), selection)
        values = prometheus_label_values(stack.prometheus_url, "namespace", selector)
        expected = {i.namespace for i in fleet.instances if i.cluster == cluster}
        assert set(values) == expected, cluster


def test_queries_name_only_published_metrics(dashboard, exporter_samples):
    published = set(exporter_samples) | PROMETHEUS_SERIES | recorded_series()
    expressions = [target["expr"] for _, target in all_targets(dashboard)]
    expressions += [
        LABEL_VALUES.match(v["definition"]).group("selector")
        for v in query_variables(dashboard)
    ]

    for expr in expressions:
        unknown = metric_names(expr) - published
        assert unknown == set(), f"{expr} names metrics the exporter lacks"


def test_unpublished_metric_detected(exporter_samples):
    published = set(exporter_samples) | PROMETHEUS_SERIES
    expr = 'sum(dify_license_days_left{cluster=~".*"}) or up'

    assert metric_names(expr) - published == {"dify_license_days_left"}


# Queries on probed instances. examples/ has no api_url, so a second exporter
# probes a Dify API simulator: alpha is active and uses 85 of 100 seats and 4 of
# 10 workspaces, beta reports lost and 9 of 10 workspaces without a seat limit,
# and the API of gamma answers 500.

PROBE_TOKEN = "dashboard-test-token"

# (cluster, namespace, license, environment, days to expiry at start)
PROBED_INSTANCES = (
    ("prod-cn", "dify-alpha", "alpha", "production", 45.0),
    ("prod-cn", "dify-beta", "beta", "staging", 100.0),
    ("test-sg", "dify-gamma", "gamma", "test", 20.0),
)

PROBE_BEHAVIORS = {
    "dify-alpha": Behavior(
        body=system_features(
            "active", workspaces={"enabled": True, "size": 4, "limit": 10}
        ),
        features_body=features(
            workspace_members={"enabled": True, "size": 85, "limit": 100}
        ),
        require_token=PROBE_TOKEN,
    ),
    "dify-beta": Behavior(
        body=system_features(
            "lost", workspaces={"enabled": True, "size": 9, "limit": 10}
        ),
        features_body=features(
            workspace_members={"enabled": True, "size": 10, "limit": 0}
        ),
        require_token=PROBE_TOKEN,
    ),
    "dify-gamma": Behavior(mode="error", code=500),
}


@dataclass
class ProbeStack:
    prometheus_url: str
    exporter_url: str
    expiry: dict[tuple[tuple[str, str], ...], float]


def probed_labels(
    cluster: str, namespace: str, license: str, environment: str
) -> tuple[tuple[str, str], ...]:
    return row_key(
        {
            "cluster": cluster,
            "namespace": namespace,
            "license": license,
            "environment": environment,
        }
    )


def write_probe_fleet(
    stack: realstack.Stack, simulator: DifyApiSimulator, now: float
) -> tuple[Path, Path, dict[tuple[tuple[str, str], ...], float]]:
    """Write the registry and values of the probed instances; return expiries."""
    licenses, instances, expiry = [], [], {}
    for cluster, namespace, license, environment, days in PROBED_INSTANCES:
        expires = now + days * 86400
        expiry[probed_labels(cluster, namespace, license, environment)] = expires
        licenses.append(
            {
                "id": f"DIFY-ENT-DASHBOARD-{license.upper()}",
                "name": license,
                "effective": "2026-01-01",
                "expires": datetime.fromtimestamp(expires, UTC).isoformat(),
                "mode": "online",
                "bound_to": {"cluster": cluster, "namespace": namespace},
            }
        )
        instances.append(
            {
                "cluster": cluster,
                "namespace": namespace,
                "license": license,
                "environment": environment,
                "owner": "Jane Roe <jane@example.com>",
                "department": "AI Platform",
                "api_url": simulator.url(namespace),
            }
        )
        stack.write_file(
            f"values/{cluster}/{namespace}.yaml",
            {"enterprise": {"enabled": True, "licenseMode": "online"}},
        )
    registry = stack.write_file(
        "registry.yaml", {"licenses": licenses, "instances": instances}
    )
    return registry, stack.directory / "values", expiry


@pytest.fixture(scope="module")
def probe_stack() -> Iterator[ProbeStack]:
    """Serve probed instances with a second exporter and scrape it every second."""
    with DifyApiSimulator() as simulator, realstack.Stack() as processes:
        for namespace, behavior in PROBE_BEHAVIORS.items():
            simulator.set(namespace, behavior)
        registry, values, expiry = write_probe_fleet(processes, simulator, time.time())
        token = processes.write_file("token", PROBE_TOKEN + "\n")
        exporter_url = processes.start_exporter(
            [
                "--registry",
                str(registry),
                "--values-dir",
                str(values),
                "--refresh-interval",
                "1",
                "--probe.credentials-file",
                str(token),
            ]
        )
        prometheus_url = processes.start_prometheus(
            {EXPORTER_JOB: [exporter_url.removeprefix("http://")]},
            rule_files=rule_file_paths(),
        )

        # deriv() and predict_linear() need two samples; the forecast also
        # needs the recording rule of the next notice stage.
        ready = (
            "min(count_over_time(dify_license_seats_used[1m])) >= 3 "
            "and on () count("
            "dify_license_instance:dify_license_next_notice_stage:seconds) == 3"
        )
        try:
            realstack.wait_until(
                lambda: prometheus_query(prometheus_url, ready),
                timeout=30,
                what="three scrapes of the probing exporter",
            )
        except TimeoutError as error:
            raise AssertionError(f"{error}\n{processes.logs()}") from error

        yield ProbeStack(prometheus_url, exporter_url, expiry)


def utilization(name: str, rows: dict[tuple[tuple[str, str], ...], float]) -> Expected:
    """Expect the recording rule `name` with one value per probed instance."""
    return Expected(
        labels={"__name__", *INSTANCE_LABEL_NAMES},
        rows={
            tuple(sorted((*labels, ("__name__", name)))): value
            for labels, value in rows.items()
        },
        tolerance=1e-9,
    )


ALPHA = probed_labels(*PROBED_INSTANCES[0][:4])
BETA = probed_labels(*PROBED_INSTANCES[1][:4])
GAMMA = probed_labels(*PROBED_INSTANCES[2][:4])


def expect_probed_days_to_next_stage(stack: ProbeStack) -> Expected:
    now = time.time()
    rows = {
        labels: next_stage_days((expires - now) / 86400, list(DEFAULT_NOTICE_DAYS))
        for labels, expires in stack.expiry.items()
    }
    return Expected(
        labels=set(INSTANCE_LABEL_NAMES), rows=rows, tolerance=DAYS_TOLERANCE
    )


def status_code(status: str) -> float:
    """Return the value the status timeline shows for `status`."""
    generator = load_generator()
    names = [name for name, _ in generator.LICENSE_STATUS_COLORS]
    return float(names.index(status))


# What the capacity and live status queries return for the probed instances.
# The usage is constant, so the forecast equals the usage now.
PROBE_EXPECTATIONS: dict[tuple[str, str], Callable[[ProbeStack], Expected]] = {
    ("Seat and workspace utilization", "A"): lambda s: utilization(
        "dify_license_instance:dify_license_seats:utilization", {ALPHA: 0.85}
    ),
    ("Seat and workspace utilization", "B"): lambda s: utilization(
        "dify_license_instance:dify_license_workspaces:utilization",
        {ALPHA: 0.4, BETA: 0.9},
    ),
    ("Utilization per license", "A"): lambda s: Expected(
        labels={"license"}, rows={(("license", "alpha"),): 0.85}, tolerance=1e-9
    ),
    ("Utilization per license", "B"): lambda s: Expected(
        labels={"license"},
        rows={(("license", "alpha"),): 0.4, (("license", "beta"),): 0.9},
        tolerance=1e-9,
    ),
    ("Forecast usage at next notice stage", "A"): lambda s: Expected(
        labels=set(INSTANCE_LABEL_NAMES), rows={ALPHA: 0.85}, tolerance=1e-6
    ),
    ("Forecast usage at next notice stage", "B"): lambda s: Expected(
        labels=set(INSTANCE_LABEL_NAMES),
        rows={ALPHA: 0.4, BETA: 0.9},
        tolerance=1e-6,
    ),
    ("Forecast usage at next notice stage", "C"): expect_probed_days_to_next_stage,
    ("Live license status", "A"): lambda s: Expected(
        labels={"cluster", "namespace"},
        rows={
            (("cluster", "prod-cn"), ("namespace", "dify-alpha")): status_code(
                "active"
            ),
            (("cluster", "prod-cn"), ("namespace", "dify-beta")): status_code("lost"),
        },
    ),
    ("Failing probes", "A"): lambda s: single_value(1),
}


def test_probe_expectations_cover_capacity_row(dashboard):
    row_y = next(
        panel["gridPos"]["y"]
        for panel in dashboard["panels"]
        if panel["title"] == "Capacity and live status"
    )
    health_y = next(
        panel["gridPos"]["y"]
        for panel in dashboard["panels"]
        if panel["title"] == "Exporter health"
    )
    in_row = [
        (panel["title"], target["refId"])
        for panel, target in all_targets(dashboard)
        if row_y < panel["gridPos"]["y"] < health_y
    ]

    assert sorted(in_row) == sorted(PROBE_EXPECTATIONS)


@pytest.mark.parametrize(
    "title, ref_id", sorted(PROBE_EXPECTATIONS), ids=lambda value: str(value)
)
def test_probe_query_returns_expected_series(dashboard, probe_stack, title, ref_id):
    panel = next(p for p in data_panels(dashboard) if p["title"] == title)
    target = next(t for t in panel["targets"] if t["refId"] == ref_id)

    names, values = run_target(probe_stack, target, all_selection())

    expected = PROBE_EXPECTATIONS[(title, ref_id)](probe_stack)
    assert_matches(expected, names, values, f"{title} {ref_id}")


def test_probe_queries_name_metrics_with_samples(dashboard, probe_stack):
    with urllib.request.urlopen(
        f"{probe_stack.exporter_url}/metrics", timeout=10
    ) as page:
        samples = parse_samples(page.read().decode("utf-8"))
    with_samples = {name for name, series in samples.items() if series}
    known = with_samples | PROMETHEUS_SERIES | recorded_series()

    for title, ref_id in PROBE_EXPECTATIONS:
        panel = next(p for p in data_panels(dashboard) if p["title"] == title)
        target = next(t for t in panel["targets"] if t["refId"] == ref_id)
        unknown = metric_names(target["expr"]) - known
        assert unknown == set(), f"{title} {ref_id} names {unknown}"
