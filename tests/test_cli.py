"""CLI: check output on the bundled example, exit codes and validate."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dify_license_exporter.cli import main

from conftest import EXAMPLES, REPO

sys.path.insert(0, os.fspath(EXAMPLES))
import generate_registry  # noqa: E402

TODAY = "2026-12-04"
NOW = "2026-12-04T00:00:00Z"


@pytest.fixture
def example_registry(tmp_path) -> str:
    path = tmp_path / "registry.yaml"
    from datetime import date

    path.write_text(generate_registry.render(date.fromisoformat(TODAY)), encoding="utf-8")
    return os.fspath(path)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def check_json(capsys, registry: str, *extra: str) -> tuple[int, dict]:
    code, out, _ = run(
        capsys,
        "check",
        "--registry",
        registry,
        "--values-dir",
        os.fspath(EXAMPLES / "values"),
        "--now",
        NOW,
        "--format",
        "json",
        *extra,
    )
    return code, json.loads(out)


def test_committed_example_matches_generator():
    from datetime import date

    committed = (EXAMPLES / "registry.yaml").read_text(encoding="utf-8")
    today = committed.split("generated for ", 1)[1].split(" ", 1)[0]
    assert committed == generate_registry.render(date.fromisoformat(today))


def test_check_json_on_example(capsys, example_registry):
    code, document = check_json(capsys, example_registry)
    assert code == 0
    assert document["now"] == NOW
    findings = {
        (i["cluster"], i["namespace"]): (i["findings"], i["severity"], i["stage"])
        for i in document["instances"]
    }
    assert findings == {
        ("prod-cn", "dify"): (["expiring"], "warning", 30),
        ("prod-cn", "dify-dr"): (["not_deployed"], "warning", None),
        ("prod-cn", "dify-intl"): ([], "none", None),
        ("prod-cn", "dify-staging"): (["expiring"], "info", 90),
        ("test-sg", "dify-poc"): (["unregistered"], "warning", None),
        ("test-sg", "dify-qa"): (["binding_mismatch", "shared_license"], "warning", None),
        ("test-sg", "dify-sandbox"): (
            ["expiring", "binding_mismatch", "mode_mismatch", "registry_incomplete"],
            "warning",
            14,
        ),
        ("test-sg", "dify-test"): (["shared_license"], "info", None),
    }


def test_check_json_shape(capsys, example_registry):
    _, document = check_json(capsys, example_registry)
    prod = next(i for i in document["instances"] if i["namespace"] == "dify")
    # The example registry is in Asia/Shanghai: 2026-12-25 is the last valid day,
    # so the license stops at 2026-12-25T16:00:00Z.
    assert prod == {
        "cluster": "prod-cn",
        "namespace": "dify",
        "license": "prod-main",
        "environment": "production",
        "mode": "online",
        "expires": "2026-12-25T16:00:00Z",
        "days_to_expiry": pytest.approx(21 + 16 / 24),
        "stage": 30,
        "severity": "warning",
        "findings": ["expiring"],
        "status": None,
    }
    poc = next(i for i in document["instances"] if i["namespace"] == "dify-poc")
    assert poc["license"] is None
    assert poc["expires"] is None
    assert poc["days_to_expiry"] is None
    dr = next(i for i in document["instances"] if i["namespace"] == "dify-dr")
    assert dr["mode"] is None


def test_check_never_prints_license_id(capsys, example_registry):
    _, out, _ = run(capsys, "check", "--registry", example_registry, "--now", NOW)
    assert "DIFY-ENT-EXAMPLE" not in out
    _, out, _ = run(
        capsys, "check", "--registry", example_registry, "--now", NOW, "--format", "json"
    )
    assert "DIFY-ENT-EXAMPLE" not in out


@pytest.mark.parametrize(
    ("fail_on", "expected"), [("critical", 0), ("warning", 1), ("info", 1)]
)
def test_fail_on_levels(capsys, example_registry, fail_on, expected):
    code, _ = check_json(capsys, example_registry, "--fail-on", fail_on)
    assert code == expected


def test_check_exits_1_inside_change_window(capsys, example_registry):
    # What-if: on 2026-12-20 prod-main has 5 days and 16 hours left: critical.
    code, out, _ = run(
        capsys,
        "check",
        "--registry",
        example_registry,
        "--now",
        "2026-12-20T00:00:00Z",
    )
    assert code == 1
    line = next(row for row in out.splitlines() if "prod-main" in row)
    assert "critical" in line
    assert " 7 " in line


def test_check_table_sorted_by_days_left(capsys, example_registry):
    code, out, _ = run(
        capsys,
        "check",
        "--registry",
        example_registry,
        "--values-dir",
        os.fspath(EXAMPLES / "values"),
        "--now",
        NOW,
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"now: {NOW}"
    assert lines[1].split() == [
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
    ]
    namespaces = [line.split()[1] for line in lines[2:]]
    assert namespaces[:3] == ["dify-sandbox", "dify", "dify-staging"]
    assert namespaces[-1] == "dify-poc"


def test_invalid_registry_exits_2(capsys, write_file):
    path = write_file("bad.yaml", "licenses: [{name: x}]\n")
    code, out, err = run(capsys, "check", "--registry", path)
    assert code == 2
    assert out == ""
    assert f"{path}: licenses[0].id: required key is missing" in err


def test_bad_now_exits_2(capsys, example_registry):
    code, _, err = run(capsys, "check", "--registry", example_registry, "--now", "soon")
    assert code == 2
    assert "--now: invalid value 'soon'" in err


def test_missing_values_dir_exits_2(capsys, example_registry, tmp_path):
    missing = os.fspath(tmp_path / "nowhere")
    code, _, err = run(
        capsys, "check", "--registry", example_registry, "--values-dir", missing
    )
    assert code == 2
    assert f"{missing}: values folder not found; check --values-dir" in err


def test_unknown_flag_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["check", "--no-such-flag"])
    assert info.value.code == 2


def test_kubernetes_source_needs_cluster(capsys, example_registry):
    code, _, err = run(
        capsys, "check", "--registry", example_registry, "--source", "kubernetes"
    )
    assert code == 2
    assert "--source kubernetes needs --cluster NAME" in err


def test_validate_ok(capsys, example_registry):
    code, out, _ = run(capsys, "validate", "--registry", example_registry)
    assert code == 0
    assert out == (
        "registry valid: 6 licenses, 7 instances, 6 renewal entries, "
        "timezone Asia/Shanghai\n"
    )


def test_validate_reports_every_problem(capsys, write_file):
    path = write_file(
        "bad.yaml",
        """\
        timezone: Nowhere
        licenses:
          - {id: a, name: x, effective: 2026-13-01, expires: 2027-01-01,
             mode: online, bound_to: {cluster: c, namespace: n}}
        instances:
          - {cluster: c, namespace: n, license: x, environment: prod}
          - {cluster: c, namespace: m, license: y, environment: test}
        """,
    )
    code, _, err = run(capsys, "validate", path)
    assert code == 2
    assert err.startswith("error: invalid registry (4 problems):\n")
    assert f"{path}: timezone: unknown time zone 'Nowhere'" in err
    assert f"{path}: licenses[0].effective: invalid value '2026-13-01'" in err
    assert f'{path}: instances[0].environment: invalid value "prod"' in err
    assert f"{path}: instances[1].license: license 'y' is not in the license registry" in err


def test_console_script_runs(example_registry):
    result = subprocess.run(
        [sys.executable, "-m", "dify_license_exporter", "check", "--registry",
         example_registry, "--now", NOW, "--format", "json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["instances"]) == 7


def test_check_cluster_scope(capsys, example_registry):
    code, document = check_json(capsys, example_registry, "--cluster", "prod-cn")
    assert code == 0
    assert {i["cluster"] for i in document["instances"]} == {"prod-cn"}
    assert len(document["instances"]) == 4


@pytest.mark.parametrize("interval", ["nan", "inf", "0", "-1", "1e308"])
def test_serve_rejects_bad_refresh_interval(capsys, example_registry, interval):
    code, _, err = run(
        capsys, "serve", "--registry", example_registry, "--refresh-interval", interval,
        "--web.listen-address", "127.0.0.1:0",
    )
    assert code == 2
    assert f"--refresh-interval: invalid value {float(interval)}" in err


@pytest.mark.parametrize("path", ["/a b", "/m?x=1", "/m#x", "metrics", "/healthz"])
def test_serve_rejects_bad_telemetry_path(capsys, example_registry, path):
    code, _, err = run(
        capsys, "serve", "--registry", example_registry, "--web.telemetry-path", path,
        "--web.listen-address", "127.0.0.1:0",
    )
    assert code == 2
    assert f"--web.telemetry-path: invalid value {path!r}" in err


def test_serve_rejects_missing_values_dir(capsys, example_registry, tmp_path):
    missing = os.fspath(tmp_path / "nowhere")
    code, _, err = run(
        capsys, "serve", "--registry", example_registry, "--values-dir", missing,
        "--web.listen-address", "127.0.0.1:0",
    )
    assert code == 2
    assert f"--values-dir: {missing}: values folder not found" in err


def test_empty_cluster_rejected(capsys, example_registry):
    code, _, err = run(capsys, "check", "--registry", example_registry, "--cluster", "")
    assert code == 2
    assert "--cluster: empty value" in err


def test_check_fails_gate_on_invalid_values(capsys, example_registry, tmp_path):
    import shutil

    values = tmp_path / "values"
    shutil.copytree(EXAMPLES / "values", values)
    (values / "prod-cn" / "dify.yaml").write_text("enterprise: {licenseMode: Offline}\n")
    code, out, err = run(
        capsys, "check", "--registry", example_registry, "--values-dir", os.fspath(values),
        "--now", NOW, "--format", "json",
    )
    assert code == 2
    prod = next(i for i in json.loads(out)["instances"] if i["namespace"] == "dify")
    assert prod["mode"] is None
    assert prod["error"].endswith(
        "enterprise.licenseMode must be online or offline, got 'Offline'; fix the Helm values"
    )
    assert "error: " in err


def test_check_write_error_exits_2(example_registry):
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "dify_license_exporter", "check", "--registry",
             example_registry, "--format", "json"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            timeout=60,
        )
    assert result.returncode == 2
    assert result.stderr == "error: cannot write the output: No space left on device\n"


def test_validate_with_public_key_needs_signature(capsys, example_registry, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = tmp_path / "public.pem"
    key.write_bytes(
        Ed25519PrivateKey.generate().public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    code, _, err = run(
        capsys, "validate", "--registry", example_registry, "--registry-public-key",
        os.fspath(key),
    )
    assert code == 2
    assert f"{example_registry}" in err
    assert "signature" in err


def test_now_rejects_non_ascii_digits(capsys, example_registry):
    code, _, err = run(
        capsys, "check", "--registry", example_registry, "--now", "２０２６-12-04T00:00:00Z"
    )
    assert code == 2
    assert "--now: invalid value" in err
