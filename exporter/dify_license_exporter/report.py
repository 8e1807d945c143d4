"""Capacity and expiry review page for SRE reviews, as HTML, CSV or Markdown.

The HTML page is one self-contained file: inline CSS and inline SVG, no scripts and
no external assets, so it opens offline and can be mailed or archived. It shows the
instance table, an expiry timeline over the next 12 months with the notice stages,
seat and workspace utilization bars, and the registry and deployment problems. All
formats render the same `evaluate` result that `check` and `/metrics` use. Instants
are shown in the registry's time zone, which every table names.
"""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable
from zoneinfo import ZoneInfo

from . import __version__
from .evaluate import InstanceStatus, notice_thresholds
from .registry import License, Registry, format_instant

FORMATS = ("html", "csv", "markdown")
# Utilization at or above these ratios is shown as warning and critical, the same
# bars as the capacity alert rules (80 % and 95 %).
UTILIZATION_WARNING = 0.80
UTILIZATION_CRITICAL = 0.95
TIMELINE_MONTHS = 12

FINDING_TEXT = {
    "expired": "The license has expired; the console and the service API are blocked.",
    "expiring": "A notice stage is reached; request the renewal.",
    "not_yet_effective": "The license is not valid yet.",
    "binding_mismatch": "Deployed outside the namespace the license is bound to.",
    "mode_mismatch": "Helm licenseMode differs from the registry's mode.",
    "shared_license": "Several instances use this license.",
    "restart_pending": "The license changed after the enterprise pods started; "
    "restart them.",
    "registry_incomplete": "Owner, department, requester or activator is empty.",
    "unregistered": "Deployed but missing from the instance registry.",
    "not_deployed": "Registered but not deployed.",
    "status_mismatch": "The live license status contradicts the registry.",
}
# Findings about the registry itself; every other non-expiry finding concerns a
# deployment or its live license status.
REGISTRY_FINDINGS = frozenset({"registry_incomplete", "unregistered", "shared_license"})
# (id, title, what the section lists), in report order.
PROBLEM_SECTIONS = (
    (
        "registry-problems",
        "Registry problems",
        "Registry entries to add or correct.",
    ),
    (
        "deployment-problems",
        "Deployment problems",
        "Deployments that differ from the registry or from the live license status.",
    ),
    (
        "observation-failures",
        "Observation failures",
        "Instances whose Helm values or Dify API could not be read; their findings "
        "may be incomplete.",
    ),
)
SEVERITY_COLORS = {
    "none": "#2e7d32",
    "info": "#1565c0",
    "warning": "#ef6c00",
    "critical": "#c62828",
}

CSV_COLUMNS = (
    "cluster",
    "namespace",
    "license",
    "environment",
    "owner",
    "department",
    "mode",
    "status",
    "expires",
    "days_to_expiry",
    "stage",
    "severity",
    "findings",
    "seats_used",
    "seats_allowed",
    "seats_utilization",
    "workspaces_used",
    "workspaces_allowed",
    "workspaces_utilization",
    "probe_error",
)


@dataclass(frozen=True)
class Capacity:
    """Usage of one resource (seats or workspaces) against its limit."""

    resource: str
    used: int
    allowed: int | None

    @property
    def ratio(self) -> float | None:
        """Utilization from 0 upwards; None when the limit is not enforced."""
        if self.allowed is None or self.allowed <= 0:
            return None
        return self.used / self.allowed


def instance_capacity(status: InstanceStatus) -> list[Capacity]:
    """Return the seat and workspace usage the instance's probe reported."""
    probe = status.probe
    if probe is None:
        return []
    result = []
    for resource in ("seats", "workspaces"):
        used = getattr(probe, f"{resource}_used")
        if used is not None:
            result.append(
                Capacity(resource, used, getattr(probe, f"{resource}_allowed"))
            )
    return result


def license_capacity(statuses: Iterable[InstanceStatus]) -> dict[str, list[Capacity]]:
    """Sum usage over the instances of each license against the largest limit.

    NOTE: this assumes that every instance of a license reports the license-wide
    limit and only its own usage. Dify does not document how a shared license
    counts, which is one more reason to give each instance its own license.
    """
    totals: dict[tuple[str, str], tuple[int, int | None]] = {}
    for status in statuses:
        if status.license is None:
            continue
        for item in instance_capacity(status):
            key = (status.license, item.resource)
            used, allowed = totals.get(key, (0, None))
            if item.allowed is not None:
                allowed = max(allowed or 0, item.allowed)
            totals[key] = (used + item.used, allowed)
    result: dict[str, list[Capacity]] = {}
    for (name, resource), (used, allowed) in sorted(totals.items()):
        result.setdefault(name, []).append(Capacity(resource, used, allowed))
    return result


def render_report(
    fmt: str, registry: Registry, statuses: list[InstanceStatus], now: datetime
) -> str:
    """Render the report in `fmt`, one of FORMATS."""
    ordered = _ordered(statuses)
    if fmt == "html":
        return render_html(registry, ordered, now)
    if fmt == "csv":
        return render_csv(registry, ordered)
    if fmt == "markdown":
        return render_markdown(registry, ordered, now)
    raise ValueError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")


def _ordered(statuses: Iterable[InstanceStatus]) -> list[InstanceStatus]:
    """Sort soonest expiry first, instances without an expiry last."""
    return sorted(
        statuses,
        key=lambda s: (
            s.days_to_expiry is None,
            s.days_to_expiry if s.days_to_expiry is not None else 0.0,
            s.key,
        ),
    )


def _local_time(moment: datetime, zone: ZoneInfo) -> str:
    """Render an instant as its wall time in `zone`, seconds only when not zero.

    The zone's name is left out, so the column header or the caller must name it.
    """
    local = moment.astimezone(zone)
    return local.strftime("%Y-%m-%d %H:%M:%S" if local.second else "%Y-%m-%d %H:%M")


def _zoned_time(moment: datetime, zone: ZoneInfo) -> str:
    """Render an instant as its wall time in `zone` followed by the zone's name."""
    return f"{_local_time(moment, zone)} {zone.key}"


def _rfc3339_in_zone(moment: datetime, zone: ZoneInfo) -> str:
    """Render an instant as RFC 3339 with the offset of `zone`, Z for UTC."""
    text = moment.astimezone(zone).isoformat()
    return text[: -len("+00:00")] + "Z" if text.endswith("+00:00") else text


def _percent(ratio: float | None) -> str:
    return "" if ratio is None else f"{ratio * 100:.1f}"


def _level(ratio: float | None) -> str:
    if ratio is None:
        return "none"
    if ratio >= UTILIZATION_CRITICAL:
        return "critical"
    if ratio >= UTILIZATION_WARNING:
        return "warning"
    return "none"


def _row_values(status: InstanceStatus, zone: ZoneInfo) -> dict[str, str]:
    """Return the instance's CSV columns as text, empty where not applicable.

    `expires` is RFC 3339 with the offset of the registry's zone `zone`, so it shows
    the same wall time as the HTML and Markdown tables and stays machine-readable.
    """
    instance = status.instance
    capacity = {item.resource: item for item in instance_capacity(status)}
    values = {
        "cluster": status.cluster,
        "namespace": status.namespace,
        "license": status.license or "",
        "environment": status.environment or "",
        "owner": instance.owner if instance else "",
        "department": instance.department if instance else "",
        "mode": status.mode or "",
        "status": status.status or "",
        "expires": _rfc3339_in_zone(status.expires, zone) if status.expires else "",
        "days_to_expiry": (
            f"{status.days_to_expiry:.1f}" if status.days_to_expiry is not None else ""
        ),
        "stage": str(status.stage) if status.stage is not None else "",
        "severity": status.severity,
        "findings": " ".join(status.findings),
        "probe_error": (status.probe.error_reason or "") if status.probe else "",
    }
    for resource in ("seats", "workspaces"):
        item = capacity.get(resource)
        values[f"{resource}_used"] = str(item.used) if item else ""
        values[f"{resource}_allowed"] = (
            str(item.allowed) if item and item.allowed is not None else ""
        )
        values[f"{resource}_utilization"] = _percent(item.ratio) if item else ""
    return values


def render_csv(registry: Registry, statuses: list[InstanceStatus]) -> str:
    """Render one row per instance; utilization columns are percentages."""
    zone = ZoneInfo(registry.timezone)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    numeric = {"days_to_expiry", "stage"} | {
        name for name in CSV_COLUMNS if name.startswith(("seats_", "workspaces_"))
    }
    for status in statuses:
        values = _row_values(status, zone)
        writer.writerow(
            values[name] if name in numeric else _csv_text(values[name])
            for name in CSV_COLUMNS
        )
    return buffer.getvalue()


def _csv_text(value: str) -> str:
    # Spreadsheets run a cell that starts with one of these characters as a formula.
    if value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


# Characters of a Markdown table cell that a renderer would read as markup: HTML
# (tags, entities), a cell border, links and images, code spans, and line breaks
# that end the table row. The backslash comes first so later escapes stay intact.
MARKDOWN_ESCAPES = (
    ("\\", "\\\\"),
    ("&", "&amp;"),
    ("<", "&lt;"),
    (">", "&gt;"),
    ("|", "\\|"),
    ("[", "\\["),
    ("]", "\\]"),
    ("`", "\\`"),
    ("\r\n", " "),
    ("\r", " "),
    ("\n", " "),
)


def _markdown_cell(value: str) -> str:
    """Escape a value so it renders as literal text inside one table cell."""
    text = value
    for character, escaped in MARKDOWN_ESCAPES:
        text = text.replace(character, escaped)
    return text or "-"


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_markdown_cell(cell) for cell in row) + " |")
    return lines


def render_markdown(
    registry: Registry, statuses: list[InstanceStatus], now: datetime
) -> str:
    """Render the instance table, capacity and problems as Markdown tables."""
    zone = ZoneInfo(registry.timezone)
    lines = [
        "# Dify license capacity review",
        "",
        f"Generated {format_instant(now)} by dify-license-exporter {__version__}. "
        f"The tables show times in the registry time zone, {zone.key}.",
        "",
        "## Instances",
        "",
    ]
    rows = []
    for status in statuses:
        values = _row_values(status, zone)
        rows.append(
            [
                f"{status.cluster}/{status.namespace}",
                values["license"],
                values["environment"],
                values["owner"],
                _local_time(status.expires, zone) if status.expires else "",
                values["days_to_expiry"],
                values["stage"],
                values["severity"],
                values["status"],
                values["findings"],
            ]
        )
    header = [
        "Instance",
        "License",
        "Environment",
        "Owner",
        f"Expires ({zone.key})",
        "Days",
        "Stage",
        "Severity",
        "Live status",
        "Findings",
    ]
    lines.extend(_markdown_table(header, rows))

    lines.extend(["", "## Capacity", ""])
    capacity_rows = []
    for status in statuses:
        for item in instance_capacity(status):
            capacity_rows.append(
                _capacity_cells(f"{status.cluster}/{status.namespace}", item)
            )
    for name, items in license_capacity(statuses).items():
        for item in items:
            capacity_rows.append(_capacity_cells(f"license {name}", item))
    if capacity_rows:
        header = ["Scope", "Resource", "Used", "Allowed", "Utilization %", "Level"]
        lines.extend(_markdown_table(header, capacity_rows))
    else:
        lines.append("No instance reported seat or workspace counts.")

    lines.extend(["", "## Expired or expiring in the next 12 months", ""])
    end = _add_months(now, TIMELINE_MONTHS)
    expiry_rows = []
    for entry in sorted(registry.licenses.values(), key=lambda item: item.expires):
        if entry.expires <= end:
            stages = ", ".join(
                f"{days} d on {_local_time(moment, zone)}"
                for days, moment in _stage_moments(registry, entry)
            )
            days = (entry.expires - now).total_seconds() / 86400
            left = "expired" if days <= 0 else f"{days:.1f}"
            expiry_rows.append(
                [
                    entry.name,
                    _local_time(entry.expires, zone),
                    entry.mode,
                    left,
                    stages,
                ]
            )
    if expiry_rows:
        header = [
            "License",
            f"Expires ({zone.key})",
            "Mode",
            "Days",
            f"Notice stages ({zone.key})",
        ]
        lines.extend(_markdown_table(header, expiry_rows))
    else:
        lines.append("No license expires in the next 12 months.")

    problems = _problems(statuses, zone)
    for section, title, description in PROBLEM_SECTIONS:
        lines.extend(["", f"## {title}", "", description, ""])
        problem_rows = [list(row) for row in problems[section]]
        if problem_rows:
            header = ["Instance", "Problem", "Severity", "Detail"]
            lines.extend(_markdown_table(header, problem_rows))
        else:
            lines.append("None.")
    return "\n".join(lines) + "\n"


def _stage_moments(registry: Registry, entry: License) -> list[tuple[int, datetime]]:
    """Return (days, instant) of each notice stage of a license, largest first.

    A stage is reached when `days_to_expiry <= days`, at the expiry instant minus
    `days` times 86400 seconds, as `evaluate` counts it.
    """
    return [
        (days, entry.expires - timedelta(days=days))
        for days in registry.renewal_for(entry.name).notice_days
    ]


def _capacity_cells(scope: str, item: Capacity) -> list[str]:
    return [
        scope,
        item.resource,
        str(item.used),
        str(item.allowed) if item.allowed is not None else "unlimited",
        _percent(item.ratio),
        _level(item.ratio),
    ]


def _problems(
    statuses: list[InstanceStatus], zone: ZoneInfo
) -> dict[str, list[tuple[str, str, str, str]]]:
    """Sort every non-expiry finding into the sections of PROBLEM_SECTIONS.

    Each section maps to (instance, problem, severity, detail) rows. Expiry is shown
    in the instance table and the timeline instead.
    """
    sections: dict[str, list[tuple[str, str, str, str]]] = {
        section: [] for section, _title, _description in PROBLEM_SECTIONS
    }
    for status in sorted(statuses, key=lambda s: s.key):
        where = f"{status.cluster}/{status.namespace}"
        for code in status.findings:
            if code in ("expired", "expiring"):
                continue
            detail = FINDING_TEXT.get(code, "")
            if code == "status_mismatch" and status.probe is not None:
                detail += f" Live status: {status.probe.status}."
                if status.probe.expired_at is not None:
                    detail += (
                        f" Live expiry: {_zoned_time(status.probe.expired_at, zone)}."
                    )
            if code == "registry_incomplete":
                detail += " Missing: " + ", ".join(status.missing_fields) + "."
            section = (
                "registry-problems"
                if code in REGISTRY_FINDINGS
                else "deployment-problems"
            )
            sections[section].append(
                (where, code, status.finding_severity(code), detail)
            )
        if status.probe is not None and status.probe.error_reason:
            sections["observation-failures"].append(
                (
                    where,
                    f"probe {status.probe.error_reason}",
                    "warning",
                    status.probe.error_message or "",
                )
            )
        if status.error:
            sections["observation-failures"].append(
                (where, "values unreadable", "warning", status.error)
            )
    return sections


def _add_months(moment: datetime, months: int) -> datetime:
    """Add calendar months, clamping the day to the end of a shorter month."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = moment.day
    while True:
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            day -= 1


# -- HTML -------------------------------------------------------------------------

STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;
color:#1b1b1b;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#555;margin:0 0 16px}
table{border-collapse:collapse;width:100%;margin:4px 0}
th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.time{white-space:nowrap}
.sev{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-size:12px}
.sev-none{background:#2e7d32}.sev-info{background:#1565c0}
.sev-warning{background:#ef6c00}.sev-critical{background:#c62828}
.summary{display:flex;gap:12px;margin:8px 0 0}
.summary div{border:1px solid #ddd;border-radius:4px;padding:6px 12px}
.summary b{font-size:20px;display:block}
svg text{font:11px system-ui,sans-serif;fill:#333}
.legend span{margin-right:14px}
@media print{body{margin:8mm}}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_html(
    registry: Registry, statuses: list[InstanceStatus], now: datetime
) -> str:
    """Render the self-contained review page."""
    zone = ZoneInfo(registry.timezone)
    counts = {name: 0 for name in SEVERITY_COLORS}
    for status in statuses:
        counts[status.severity] += 1
    summary = "".join(
        f'<div class="count-{name}"><b>{counts[name]}</b>{_e(name)}</div>'
        for name in ("critical", "warning", "info", "none")
    )
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Dify license capacity review {_e(format_instant(now)[:10])}</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>Dify license capacity review</h1>",
        f'<p class="meta">Generated {_e(format_instant(now))} by '
        f"dify-license-exporter {_e(__version__)}; registry time zone "
        f"{_e(registry.timezone)}; {len(statuses)} instances, "
        f"{len(registry.licenses)} licenses.</p>",
        f'<div class="summary" id="summary">{summary}</div>',
        "<h2>Instances</h2>",
        _html_instances(statuses, zone),
        "<h2>Expiry timeline, next 12 months</h2>",
        _html_timeline(registry, now, zone),
        "<h2>Capacity</h2>",
        _html_capacity(statuses),
    ]
    problems = _problems(statuses, zone)
    for section, title, description in PROBLEM_SECTIONS:
        parts.append(f"<h2>{_e(title)}</h2>")
        parts.append(f'<p class="meta">{_e(description)}</p>')
        parts.append(_html_problems(section, problems[section]))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_instances(statuses: list[InstanceStatus], zone: ZoneInfo) -> str:
    header = (
        "Cluster",
        "Namespace",
        "License",
        "Environment",
        "Owner",
        "Department",
        "Mode",
        "Live status",
        f"Expires ({zone.key})",
        "Days",
        "Stage",
        "Severity",
        "Findings",
    )
    rows = []
    for status in statuses:
        values = _row_values(status, zone)
        cells = [
            f"<td>{_e(values[name]) or '-'}</td>"
            for name in (
                "cluster",
                "namespace",
                "license",
                "environment",
                "owner",
                "department",
                "mode",
                "status",
            )
        ]
        expires = _local_time(status.expires, zone) if status.expires else "-"
        cells.append(f'<td class="time">{_e(expires)}</td>')
        cells.append(f'<td class="num">{_e(values["days_to_expiry"]) or "-"}</td>')
        cells.append(f'<td class="num">{_e(values["stage"]) or "-"}</td>')
        cells.append(
            f'<td><span class="sev sev-{_e(status.severity)}">'
            f"{_e(status.severity)}</span></td>"
        )
        cells.append(f"<td>{_e(', '.join(status.findings)) or '-'}</td>")
        rows.append(
            f'<tr class="instance" data-cluster="{_e(status.cluster)}" '
            f'data-namespace="{_e(status.namespace)}" '
            f'data-severity="{_e(status.severity)}">' + "".join(cells) + "</tr>"
        )
    head = "".join(f"<th>{_e(name)}</th>" for name in header)
    body = "\n".join(rows) or f'<tr><td colspan="{len(header)}">No instances.</td></tr>'
    return (
        f'<table id="instances"><thead><tr>{head}</tr></thead>'
        f"<tbody>\n{body}\n</tbody></table>"
    )


def _html_timeline(registry: Registry, now: datetime, zone: ZoneInfo) -> str:
    """Draw one lane per license from now to 12 months ahead, with notice stages.

    Month ticks fall on the first of each month in the registry's zone `zone`.
    """
    end = _add_months(now, TIMELINE_MONTHS)
    licenses = sorted(
        registry.licenses.values(), key=lambda item: (item.expires, item.name)
    )
    label_width, plot_width, lane, top = 150, 760, 26, 28
    width = label_width + plot_width + 20
    height = top + lane * max(len(licenses), 1) + 10
    span = (end - now).total_seconds()

    def x_of(moment: datetime) -> float:
        share = (moment - now).total_seconds() / span
        return label_width + plot_width * min(max(share, 0.0), 1.0)

    parts = [
        f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        'aria-label="License expiry timeline">'
    ]
    month = now.astimezone(zone).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    for index in range(TIMELINE_MONTHS + 1):
        tick = _add_months(month, index)
        # Skip ticks whose label would run past the right edge.
        if not now <= tick <= end or x_of(tick) > label_width + plot_width - 40:
            continue
        x = x_of(tick)
        parts.append(
            f'<line class="month" x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" '
            f'y2="{height - 10}" stroke="#e3e3e3"/>'
            f'<text x="{x + 2:.1f}" y="{top - 10}">{_e(tick.strftime("%Y-%m"))}</text>'
        )
    x_now = x_of(now)
    parts.append(
        f'<line class="now" x1="{x_now:.1f}" y1="{top - 6}" x2="{x_now:.1f}" '
        f'y2="{height - 10}" stroke="#333" stroke-width="2"/>'
    )
    if not licenses:
        parts.append(f'<text x="{label_width}" y="{top + 16}">No licenses.</text>')
    for index, entry in enumerate(licenses):
        y = top + lane * index
        parts.append(_timeline_lane(registry, entry, now, end, y, lane, x_of, zone))
    parts.append("</svg>")
    legend = (
        '<p class="legend"><span>&#9646; valid period</span>'
        + "".join(
            f'<span style="color:{color}">&#9670; {_e(name)} notice stage</span>'
            for name, color in SEVERITY_COLORS.items()
            if name != "none"
        )
        + "<span>&#10006; expiry</span><span>| now</span></p>"
    )
    return "".join(parts) + legend


def _timeline_lane(
    registry: Registry,
    entry: License,
    now: datetime,
    end: datetime,
    y: int,
    lane: int,
    x_of,
    zone: ZoneInfo,
) -> str:
    name = _e(entry.name)
    parts = [
        f'<g class="lane" data-license="{name}">',
        f'<text x="4" y="{y + lane / 2 + 4:.1f}">{name}</text>',
    ]
    start = max(entry.effective, now)
    stop = min(entry.expires, end)
    expired = entry.expires <= now
    if start < stop:
        x1, x2 = x_of(start), x_of(stop)
        parts.append(
            f'<rect class="validity" x="{x1:.1f}" y="{y + 7}" width="{x2 - x1:.1f}" '
            f'height="{lane - 14}" fill="#a5d6a7"><title>{name}: valid until '
            f"{_e(_zoned_time(entry.expires, zone))}</title></rect>"
        )
    if expired:
        parts.append(
            f'<text class="expired" x="{x_of(now) + 6:.1f}" y="{y + lane / 2 + 4:.1f}" '
            f'fill="#c62828">expired {_e(_zoned_time(entry.expires, zone))}</text>'
        )
    moments = dict(_stage_moments(registry, entry))
    for days, severity in notice_thresholds(
        registry.renewal_for(entry.name).notice_days
    ):
        moment = moments[days]
        if not now <= moment <= end or expired:
            continue
        x, middle = x_of(moment), y + lane / 2
        parts.append(
            f'<path class="stage" data-days="{days}" data-severity="{severity}" '
            f'd="M{x:.1f} {middle - 6:.1f} L{x + 6:.1f} {middle:.1f} '
            f'L{x:.1f} {middle + 6:.1f} L{x - 6:.1f} {middle:.1f} Z" '
            f'fill="{SEVERITY_COLORS[severity]}"><title>{name}: {days}-day notice '
            f"({severity}) on {_e(_zoned_time(moment, zone))}</title></path>"
        )
    if now < entry.expires <= end:
        x, middle = x_of(entry.expires), y + lane / 2
        parts.append(
            f'<path class="expiry" d="M{x - 5:.1f} {middle - 5:.1f} '
            f"L{x + 5:.1f} {middle + 5:.1f} M{x + 5:.1f} {middle - 5:.1f} "
            f'L{x - 5:.1f} {middle + 5:.1f}" stroke="#c62828" stroke-width="2.5">'
            f"<title>{name} expires {_e(_zoned_time(entry.expires, zone))}</title>"
            "</path>"
        )
    parts.append("</g>")
    return "".join(parts)


def _html_bar(scope: str, item: Capacity) -> str:
    ratio = item.ratio
    level = _level(ratio)
    width = 240
    filled = width * min(ratio, 1.0) if ratio is not None else 0.0
    allowed = str(item.allowed) if item.allowed is not None else "unlimited"
    label = f"{item.used} of {allowed}"
    if ratio is not None:
        label += f" ({ratio * 100:.1f} %)"
    color = SEVERITY_COLORS[level] if level != "none" else "#43a047"
    bar = (
        f'<svg class="util-bar" data-scope="{_e(scope)}" '
        f'data-resource="{item.resource}" '
        f'data-ratio="{_percent(ratio)}" data-level="{level}" width="{width}" '
        f'height="14" xmlns="http://www.w3.org/2000/svg">'
        f'<rect width="{width}" height="14" fill="#eee"/>'
        f'<rect class="used" width="{filled:.1f}" height="14" fill="{color}"/>'
        f'<line x1="{width * UTILIZATION_WARNING:.1f}" y1="0" '
        f'x2="{width * UTILIZATION_WARNING:.1f}" y2="14" stroke="#999"/>'
        f'<line x1="{width * UTILIZATION_CRITICAL:.1f}" y1="0" '
        f'x2="{width * UTILIZATION_CRITICAL:.1f}" y2="14" stroke="#666"/></svg>'
    )
    return (
        f"<tr><td>{_e(scope)}</td><td>{_e(item.resource)}</td><td>{bar}</td>"
        f"<td>{_e(label)}</td></tr>"
    )


def _html_capacity(statuses: list[InstanceStatus]) -> str:
    rows = []
    for status in statuses:
        for item in instance_capacity(status):
            rows.append(_html_bar(f"{status.cluster}/{status.namespace}", item))
    for name, items in license_capacity(statuses).items():
        for item in items:
            rows.append(_html_bar(f"license {name}", item))
    if not rows:
        return '<p id="capacity">No instance reported seat or workspace counts.</p>'
    return (
        '<table id="capacity"><thead><tr><th>Scope</th><th>Resource</th>'
        "<th>Utilization (marks at 80 % and 95 %)</th><th>Used</th></tr></thead>"
        "<tbody>" + "".join(rows) + "</tbody></table>"
    )


def _html_problems(section: str, problems: list[tuple[str, str, str, str]]) -> str:
    if not problems:
        return f'<p id="{section}">None.</p>'
    rows = "".join(
        f'<tr class="problem"><td>{_e(where)}</td><td>{_e(code)}</td>'
        f'<td><span class="sev sev-{_e(severity)}">{_e(severity)}</span></td>'
        f"<td>{_e(detail)}</td></tr>"
        for where, code, severity, detail in problems
    )
    return (
        f'<table id="{section}"><thead><tr><th>Instance</th><th>Problem</th>'
        "<th>Severity</th><th>Detail</th></tr></thead><tbody>"
        + rows
        + "</tbody></table>"
    )
