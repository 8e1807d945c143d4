"""The bad-input corpus in tests/bad_inputs: every case gives its expected outcome.

Registry cases run in-process, through the `validate` CLI and against a running
`serve` that must keep its last good registry. Values cases run through the files
source, `check` and `serve`, where a bad file affects only its own namespace.
Release cases run through the Helm release decoder.
"""

from __future__ import annotations

import base64
import gzip
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from dify_license_exporter import yamlfile
from dify_license_exporter.helmrelease import (
    ReleaseDecodeError,
    decode_release,
    summarize_release,
)
from dify_license_exporter.registry import RegistryError, format_instant, load_registry
from dify_license_exporter.sources.files import FilesSource

from conftest import REPO
from test_serve import ACCEPTED_LINT, PROMTOOL, Exporter, value, wait_for

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))
# Every License ID in the corpus starts with this; none may reach any output.
SECRET_PREFIX = "DIFY-CORPUS-SECRET"
GOOD_REGISTRY = CORPUS / "registry" / "hostile-labels.yaml"
HOSTILE = dict(
    cluster='prod "cn" 北京', namespace="dify", license="prod-main", environment="production"
)


def case_id(case: dict) -> str:
    return case.get("generate") or Path(case["file"]).stem


def oversized_yaml() -> bytes:
    # Valid YAML of MAX_FILE_BYTES + 1 bytes: only the size is wrong.
    body = b"# " + b"x" * (yamlfile.MAX_FILE_BYTES - 3) + b"\n"
    return body + b"\n" * (yamlfile.MAX_FILE_BYTES + 1 - len(body))


def many_wrong_entries() -> bytes:
    return b"licenses: [" + b",".join([b"1"] * 300_000) + b"]\n"


def tagged_alias_bomb() -> bytes:
    lines = ["a: &a [!!binary eA==, x, x, x, x, x, x, x, x]"]
    previous = "a"
    for name in "bcdef":
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
        previous = name
    return ("\n".join(lines) + "\n").encode()


REGISTRY_GENERATORS = {
    "oversized": oversized_yaml,
    "many-wrong-entries": many_wrong_entries,
    "tagged-alias-bomb": tagged_alias_bomb,
}


def registry_path(case: dict, folder: Path) -> Path:
    """Return the case's registry file, writing a generated one into `folder`."""
    if "file" in case:
        return CORPUS / case["file"]
    path = folder / f"{case['generate']}.yaml"
    if not path.exists():
        path.write_bytes(REGISTRY_GENERATORS[case["generate"]]())
    return path


def rendered(problem) -> str:
    return f"{problem.path}: {problem.message}" if problem.path else problem.message


# Registry cases ---------------------------------------------------------------


def test_corpus_size():
    assert sum(len(CASES[kind]) for kind in ("registry", "values", "releases")) >= 40


@pytest.mark.parametrize("case", CASES["registry"], ids=case_id)
def test_registry_case_in_process(case, tmp_path):
    path = registry_path(case, tmp_path)
    if "valid" in case:
        registry = load_registry([os.fspath(path)])
        assert len(registry.licenses) == case["valid"]["licenses"]
        assert len(registry.instances) == case["valid"]["instances"]
        if "expires" in case["valid"]:
            expires = registry.licenses["prod-main"].expires
            assert format_instant(expires) == case["valid"]["expires"]
        return
    with pytest.raises(RegistryError) as info:
        load_registry([os.fspath(path)])
    problems = info.value.problems
    assert info.value.reason == case["reason"]
    if "problems" in case:
        assert [rendered(p) for p in problems] == case["problems"]
        assert all(p.file == os.fspath(path) for p in problems)
    if "problem_count" in case:
        assert len(problems) == case["problem_count"]
    if "last_problem" in case:
        assert rendered(problems[-1]) == case["last_problem"]


@pytest.fixture(scope="module")
def validate_runs(tmp_path_factory):
    """Run `validate` on every registry case, four processes at a time."""
    folder = tmp_path_factory.mktemp("generated")

    def run(case: dict) -> tuple[str, subprocess.CompletedProcess]:
        path = registry_path(case, folder)
        result = subprocess.run(
            [sys.executable, "-m", "dify_license_exporter", "validate", "--registry", path],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
        )
        return os.fspath(path), result

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, CASES["registry"]))
    return {case_id(case): result for case, result in zip(CASES["registry"], results)}


@pytest.mark.parametrize("case", CASES["registry"], ids=case_id)
def test_registry_case_cli(case, validate_runs):
    path, result = validate_runs[case_id(case)]
    assert "Traceback" not in result.stderr
    assert SECRET_PREFIX not in result.stdout + result.stderr
    if "valid" in case:
        assert result.returncode == 0
        assert result.stdout.startswith(
            f"registry valid: {case['valid']['licenses']} licenses, "
            f"{case['valid']['instances']} instances"
        )
        return
    assert result.returncode == 2
    assert result.stderr.startswith("error: invalid registry (")
    for problem in case.get("problems", []):
        assert f"  {path}: {problem}\n" in result.stderr
    if "problem_count" in case:
        lines = [line for line in result.stderr.splitlines() if line.startswith("  ")]
        assert len(lines) == case["problem_count"]


def promtool_lint(body: str) -> tuple[int, set[str]]:
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30
    )
    lines = {line.strip() for line in (result.stdout + result.stderr).splitlines()}
    return result.returncode, lines - {""}


def test_serve_keeps_last_good_registry_through_corpus(tmp_path):
    """Swap each invalid registry case into a running exporter and back."""
    live = tmp_path / "registry.yaml"
    good = GOOD_REGISTRY.read_bytes()
    live.write_bytes(good)
    exporter = Exporter(["--registry", os.fspath(live), "--refresh-interval", "0.1"], tmp_path)
    try:
        exporter.wait_ready()
        samples = exporter.samples()
        expiry = value(samples, "dify_license_expiry_timestamp_seconds", **HOSTILE)
        assert expiry == 1798761600.0

        expected: dict[str, int] = {}
        invalid_cases = [case for case in CASES["registry"] if "valid" not in case]
        for case in invalid_cases:
            expected[case["reason"]] = expected.get(case["reason"], 0) + 1
            replace_file(live, registry_path(case, tmp_path).read_bytes())
            samples = wait_for(
                lambda: (s := exporter.samples())
                and value(
                    s,
                    "dify_license_exporter_refresh_errors_total",
                    source="registry",
                    reason=case["reason"],
                )
                == expected[case["reason"]]
                and s,
                timeout=60,
            )
            assert value(samples, "dify_license_exporter_registry_valid") == 0.0
            assert value(samples, "dify_license_expiry_timestamp_seconds", **HOSTILE) == expiry
            replace_file(live, good)
            wait_for(
                lambda: value(exporter.samples(), "dify_license_exporter_registry_valid")
                == 1.0,
                timeout=60,
            )

        samples = exporter.samples()
        for reason in ("read_failed", "invalid_yaml", "invalid_registry"):
            assert value(
                samples,
                "dify_license_exporter_refresh_errors_total",
                source="registry",
                reason=reason,
            ) == expected.get(reason, 0)
        logs = exporter.logs()
        assert logs.count("msg=\"refresh error\"") == len(invalid_cases)
        assert "Traceback" not in logs
        assert SECRET_PREFIX not in logs
    finally:
        assert exporter.stop() == 0


def replace_file(path: Path, data: bytes) -> None:
    """Replace a file atomically, so a refresh never reads half of it."""
    staging = path.with_suffix(".staging")
    staging.write_bytes(data)
    os.replace(staging, path)


def test_hostile_labels_pass_promtool(tmp_path):
    exporter = Exporter(["--registry", os.fspath(GOOD_REGISTRY)], tmp_path)
    try:
        exporter.wait_ready()
        body = exporter.metrics()
        code, lint = promtool_lint(body)
        assert code in (0, 3)
        assert lint <= ACCEPTED_LINT
        samples = exporter.samples()
        info = dict(
            HOSTILE,
            owner='Jane "JR" Roe \\ <jane@example.com>\nsecond line',
            department="Plateforme IA – Zürich 研发部 🚀",
            requester="tab\there, bell\a, escape\x1b[31m",
            activator="trailing backslash \\",
            bound_cluster='prod "cn" 北京',
            bound_namespace="dify",
            priority="high",
        )
        assert value(samples, "dify_license_info", **info) == 1.0
        # Exposition escapes: a backslash, a double quote and a newline.
        assert 'owner="Jane \\"JR\\" Roe \\\\ <jane@example.com>\\nsecond line"' in body
        assert SECRET_PREFIX not in body
    finally:
        assert exporter.stop() == 0


# Values cases -----------------------------------------------------------------


def values_tree(tmp_path: Path) -> Path:
    """Copy the values corpus and add the generated cases; return the values folder."""
    root = tmp_path / "values"
    shutil.copytree(CORPUS / "values", root)
    folder = root / "corpus"
    (folder / "values-oversized.yaml").write_bytes(oversized_yaml())
    # A name that is not UTF-8: os.listdir returns it with surrogate escapes.
    with open(os.path.join(os.fsencode(folder), b"values-non-utf8-\xff.yaml"), "wb") as handle:
        handle.write(b"enterprise: {licenseMode: offline}\n")
    return root


def values_registry(tmp_path: Path) -> Path:
    """Register every namespace of the values corpus, each with its own license."""
    lines = ["timezone: UTC", "licenses:"]
    names = [values_namespace(case) for case in CASES["values"]]
    for index, name in enumerate(names):
        lines.append(
            f"  - {{id: {SECRET_PREFIX}-{index}, name: {name}, effective: 2026-01-01, "
            f"expires: 2099-12-31, mode: offline, "
            f"bound_to: {{cluster: corpus, namespace: {name}}}}}"
        )
    lines.append("instances:")
    for name in names:
        lines.append(
            f"  - {{cluster: corpus, namespace: {name}, license: {name}, "
            "environment: test, owner: o, department: d}"
        )
    lines.append("renewals:")
    for name in names:
        lines.append(f"  - {{license: {name}, requester: r, activator: a}}")
    path = tmp_path / "values-registry.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def values_namespace(case: dict) -> str:
    return case.get("generate") or Path(case["file"]).stem


VALUES_ERRORS = [case for case in CASES["values"] if "reason" in case]


def test_values_cases_through_files_source(tmp_path):
    root = values_tree(tmp_path)
    result = FilesSource(os.fspath(root)).observe()
    errors = {error.message for error in result.errors}
    for case in CASES["values"]:
        name = values_namespace(case)
        observation = result.instances.get(("corpus", name))
        if case.get("generate") == "values-non-utf8-name":
            path = os.path.join(root, "corpus", "values-non-utf8-\\xff.yaml")
            assert f"{path}: {case['message']}" in errors
            assert not any(key[1].startswith("values-non-utf8") for key in result.instances)
        elif "reason" in case:
            path = os.path.join(root, "corpus", f"{name}.yaml")
            assert observation.error_reason == case["reason"], name
            assert observation.error_message == f"{path}: {case['message']}"
            assert observation.mode is None
        elif case.get("observed") is False:
            assert observation is None, name
        else:
            assert observation.error_reason is None, name
            assert observation.mode == case["mode"], name
    assert len(result.errors) == len(VALUES_ERRORS)


def test_values_cases_through_check(tmp_path):
    root = values_tree(tmp_path)
    registry = values_registry(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "dify_license_exporter", "check", "--registry", registry,
         "--values-dir", root, "--format", "json", "--now", "2026-06-01T00:00:00Z"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert "Traceback" not in result.stderr
    assert SECRET_PREFIX not in result.stdout + result.stderr
    # The unreadable values files make check fail as a gate (exit 2), after the
    # instances are printed; no finding is critical in 2026.
    assert result.returncode == 2
    warnings = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(warnings) == len(VALUES_ERRORS)
    for case in VALUES_ERRORS:
        assert any(line.endswith(case["message"]) for line in warnings), case["message"]
    statuses = {item["namespace"]: item for item in yaml.safe_load(result.stdout)["instances"]}
    assert statuses["good"]["mode"] == "offline"
    assert statuses["good"]["findings"] == []
    assert statuses["disabled"]["findings"] == ["not_deployed"]
    assert statuses["empty"]["findings"] == ["mode_mismatch"]
    assert statuses["binary"]["mode"] is None
    assert statuses["binary"]["error"].endswith("not valid UTF-8 at byte 0; save the file as UTF-8")


def test_values_cases_through_serve(tmp_path):
    root = values_tree(tmp_path)
    registry = values_registry(tmp_path)
    exporter = Exporter(
        ["--registry", os.fspath(registry), "--values-dir", os.fspath(root)], tmp_path
    )
    try:
        exporter.wait_ready()
        body = exporter.metrics()
        code, lint = promtool_lint(body)
        assert code in (0, 3)
        assert lint <= ACCEPTED_LINT
        samples = exporter.samples()
        for case in CASES["values"]:
            name = values_namespace(case)
            labels = dict(cluster="corpus", namespace=name, license=name, environment="test")
            days = value(samples, "dify_license_days_to_expiry", **labels)
            # Every registered namespace keeps its license series, bad values or not.
            assert days is not None and days > 0, name
            if case.get("generate") == "values-non-utf8-name":
                continue
            if "reason" in case:
                assert value(
                    samples,
                    "dify_license_observation_error",
                    cluster="corpus",
                    namespace=name,
                    reason=case["reason"],
                ) == 1.0, name
                assert value(samples, "dify_license_mode", **labels, mode="offline") is None
            elif "mode" in case:
                assert value(samples, "dify_license_mode", **labels, mode=case["mode"]) == 1.0
        counts: dict[str, int] = {}
        for case in VALUES_ERRORS:
            counts[case["reason"]] = counts.get(case["reason"], 0) + 1
        for reason in ("values_unreadable", "values_invalid", "values_dir_missing"):
            assert value(
                samples, "dify_license_exporter_refresh_errors_total", source="files", reason=reason
            ) == counts.get(reason, 0)
        assert "Traceback" not in exporter.logs()
    finally:
        assert exporter.stop() == 0


# Release cases ----------------------------------------------------------------


def gzip_bomb() -> str:
    raw = gzip.compress(b"\0" * (65 * 1024 * 1024), compresslevel=9, mtime=0)
    return base64.b64encode(base64.b64encode(raw)).decode()


@pytest.mark.parametrize("case", CASES["releases"], ids=case_id)
def test_release_case(case):
    if case.get("generate") == "gzip-bomb":
        payload = gzip_bomb()
    else:
        payload = (CORPUS / case["file"]).read_text().strip()
    if "error" in case:
        with pytest.raises(ReleaseDecodeError) as info:
            summarize_release(decode_release(payload))
        assert str(info.value) == case["error"]
        return
    summary = summarize_release(decode_release(payload))
    assert summary.values == case["values"]
    assert summary.chart_name == "dify"
    assert summary.revision == 3


# Scale ------------------------------------------------------------------------

FLEET_SIZE = 20_000


def write_fleet(path: Path) -> None:
    """Write a registry of FLEET_SIZE instances, each with its own license."""
    lines = ["timezone: UTC", "licenses:"]
    for index in range(FLEET_SIZE):
        lines.append(
            f"  - {{id: {SECRET_PREFIX}-{index}, name: lic-{index}, effective: 2026-01-01, "
            f"expires: 2027-{index % 12 + 1:02d}-{index % 28 + 1:02d}, mode: online, "
            f"bound_to: {{cluster: c{index % 10}, namespace: ns-{index}}}}}"
        )
    lines.append("instances:")
    for index in range(FLEET_SIZE):
        lines.append(
            f"  - {{cluster: c{index % 10}, namespace: ns-{index}, license: lic-{index}, "
            f"environment: production, owner: owner-{index}, department: d}}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_fleet_of_20000_instances(tmp_path):
    registry = tmp_path / "fleet.yaml"
    write_fleet(registry)

    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "dify_license_exporter", "check", "--registry", registry,
         "--format", "json", "--now", "2026-06-01T00:00:00Z"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    check_seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert len(yaml.safe_load(result.stdout)["instances"]) == FLEET_SIZE
    # NOTE: measured at about 8 s on a busy 2-core machine, mostly YAML parsing.
    assert check_seconds < 60

    exporter = Exporter(["--registry", os.fspath(registry), "--refresh-interval", "600"], tmp_path)
    try:
        exporter.wait_ready(timeout=120)
        started = time.monotonic()
        body = exporter.metrics()
        scrape_seconds = time.monotonic() - started
        assert body.count("\ndify_license_days_to_expiry{") == FLEET_SIZE
        assert scrape_seconds < 10
    finally:
        assert exporter.stop() == 0
