"""Copy the alert rules and the Grafana dashboards into the Helm chart.

Helm templates read only files inside the chart, so the chart carries copies:
Prometheus rule files from alerts/ go to files/alerts/ and dashboards from
grafana/ go to files/dashboards/. Run it after changing either source:

    python charts/sync.py           # write the copies
    python charts/sync.py --check   # exit 1 and list the differences
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
CHART_FILES = Path("charts/dify-license-exporter/files")
ALERTS_COPY = CHART_FILES / "alerts"
DASHBOARDS_COPY = CHART_FILES / "dashboards"


def is_rule_file(path: Path) -> bool:
    """Check whether path is a Prometheus rule file.

    A rule file is a mapping with a top-level `groups` list. promtool test files
    have `tests` instead, and Alertmanager configuration has `route`.
    """
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise SystemExit(
            f"{path}: invalid YAML, fix it and sync again: {error}"
        ) from None

    return isinstance(document, dict) and isinstance(document.get("groups"), list)


def expected_copies(root: Path = REPO_ROOT) -> dict[Path, bytes]:
    """Return the chart files the sources call for, by path relative to root."""
    copies: dict[Path, bytes] = {}

    alerts = root / "alerts"
    for source in sorted([*alerts.glob("*.yaml"), *alerts.glob("*.yml")]):
        if is_rule_file(source):
            # The template globs *.yaml, so .yml sources are renamed.
            copies[ALERTS_COPY / f"{source.stem}.yaml"] = source.read_bytes()

    for source in sorted((root / "grafana").glob("*.json")):
        copies[DASHBOARDS_COPY / source.name] = source.read_bytes()

    return copies


def current_copies(root: Path = REPO_ROOT) -> dict[Path, bytes]:
    """Return the copies the chart carries now, by path relative to root."""
    copies: dict[Path, bytes] = {}

    for folder in (ALERTS_COPY, DASHBOARDS_COPY):
        if (root / folder).is_dir():
            for path in sorted((root / folder).iterdir()):
                if path.is_file():
                    copies[path.relative_to(root)] = path.read_bytes()

    return copies


def differences(root: Path = REPO_ROOT) -> list[str]:
    """List the chart copies that are missing, stale or no longer wanted."""
    expected = expected_copies(root)
    current = current_copies(root)
    problems = []

    for path in sorted(expected.keys() | current.keys()):
        if path not in current:
            problems.append(f"missing: {path}")
        elif path not in expected:
            problems.append(f"not in the sources: {path}")
        elif current[path] != expected[path]:
            problems.append(f"differs from its source: {path}")

    return problems


def sync(root: Path = REPO_ROOT) -> None:
    """Write the expected copies and delete copies without a source."""
    expected = expected_copies(root)

    for path in current_copies(root).keys() - expected.keys():
        (root / path).unlink()

    for path, content in expected.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(content)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when the copies differ from the sources",
    )
    args = parser.parse_args(argv)

    if args.check:
        problems = differences()
        for problem in problems:
            print(problem)
        if problems:
            print("run: python charts/sync.py", file=sys.stderr)
        return 1 if problems else 0

    sync()
    return 0


if __name__ == "__main__":
    sys.exit(main())
