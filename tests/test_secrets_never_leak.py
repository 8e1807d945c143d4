"""Secrets never leak: License IDs, API credentials, passwords and Secret data.

Recognizable secret values are planted everywhere they could come from: License
IDs in the registry, credentials in api_url, the probe bearer token, Helm values
that carry passwords, malformed registry entries whose `id` has a wrong type,
and basic auth passwords and hashes. Every output is then searched for them:
`serve` logs at debug level in logfmt and JSON, /metrics, `check` table and
JSON, `validate` and `check` errors, and every `report` format.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest
from conftest import REPO, free_port
from dify_api_simulator import Behavior, DifyApiSimulator, system_features
from dify_license_exporter.cli import main

NOW = "2026-06-01T00:00:00Z"
LICENSE_IDS = ("DIFY-ENT-PLANTED-ID-0001", "DIFY-ENT-PLANTED-ID-0002")
URL_USER = "planted-url-user"
URL_PASSWORD = "PLANTED-URL-PASSWORD-3c9"
BEARER_TOKEN = "PLANTED-BEARER-TOKEN-77f1"
VALUES_SECRETS = (
    "PLANTED-VALUES-SECRET-KEY-5b2",
    "PLANTED-VALUES-DB-PASSWORD-a81",
    "PLANTED-VALUES-TAGGED-SECRET-0d4",
)
WEB_PASSWORD = "PLANTED-WEB-PASSWORD-e42"
WRONG_PASSWORD = "PLANTED-WRONG-PASSWORD-91c"
WRONG_USER = "PLANTED-USER-TYPO-6ad"
# Cost 4 keeps the test fast; the value is a secret whatever its cost.
WEB_HASH = bcrypt.hashpw(WEB_PASSWORD.encode(), bcrypt.gensalt(4)).decode()
BAD_ENTRY_SECRETS = {
    "string-entry": "PLANTED-ID-STRING-ENTRY-111",
    "mapping-section": "PLANTED-ID-MAPPING-SECTION-222",
    "integer-id": "987654321987",
    "list-id": "PLANTED-ID-IN-LIST-333",
    "tagged-id": "PLANTED-ID-TAGGED-444",
    "root-list": "PLANTED-ID-ROOT-LIST-555",
    "bad-date": "PLANTED-ID-BAD-DATE-666",
    "duplicate-id": "PLANTED-ID-DUPLICATE-777",
    "url-credentials": "PLANTED-FTP-PASSWORD-888",
}

LICENSE_TEMPLATE = """\
  - id: {id}
    name: {name}
    effective: 2026-01-01
    expires: 2026-12-31
    mode: online
    bound_to: {{cluster: prod-cn, namespace: {namespace}}}
"""


def good_registry(api_base: str) -> str:
    licenses = LICENSE_TEMPLATE.format(
        id=LICENSE_IDS[0], name="prod-main", namespace="dify"
    ) + LICENSE_TEMPLATE.format(
        id=LICENSE_IDS[1], name="staging", namespace="dify-staging"
    )
    credentials_url = api_base.replace("://", f"://{URL_USER}:{URL_PASSWORD}@")
    return (
        "licenses:\n"
        + licenses
        + textwrap.dedent(
            f"""\
            instances:
              - cluster: prod-cn
                namespace: dify
                license: prod-main
                environment: production
                owner: Jane Roe
                department: AI Platform
                api_url: {credentials_url}/healthy
              - cluster: prod-cn
                namespace: dify-staging
                license: staging
                environment: staging
                owner: Jane Roe
                department: AI Platform
                api_url: {credentials_url}/failing
            """
        )
    )


def bad_registries() -> dict[str, str]:
    """Invalid registries, each hiding a secret where an error could echo it."""
    valid_entry = LICENSE_TEMPLATE.format(id="ID", name="prod-main", namespace="dify")
    tagged = base64.b64encode(BAD_ENTRY_SECRETS["tagged-id"].encode()).decode()
    return {
        "string-entry": f"licenses:\n  - {BAD_ENTRY_SECRETS['string-entry']}\n",
        "mapping-section": f"licenses:\n  id: {BAD_ENTRY_SECRETS['mapping-section']}\n",
        "integer-id": "licenses:\n"
        + valid_entry.replace("id: ID", "id: " + BAD_ENTRY_SECRETS["integer-id"]),
        "list-id": "licenses:\n"
        + valid_entry.replace("id: ID", "id: " + f"[{BAD_ENTRY_SECRETS['list-id']}]"),
        "tagged-id": "licenses:\n"
        + valid_entry.replace("id: ID", "id: " + f"!!binary {tagged}"),
        "root-list": f"- id: {BAD_ENTRY_SECRETS['root-list']}\n",
        "bad-date": "licenses:\n"
        + valid_entry.replace("id: ID", "id: " + BAD_ENTRY_SECRETS["bad-date"]).replace(
            "expires: 2026-12-31", "expires: 2026-02-30"
        ),
        "duplicate-id": "licenses:\n"
        + valid_entry.replace("id: ID", "id: " + "first").replace(
            "    name:", f"    id: {BAD_ENTRY_SECRETS['duplicate-id']}\n    name:"
        ),
        "url-credentials": textwrap.dedent(
            f"""\
            instances:
              - cluster: prod-cn
                namespace: dify
                license: prod-main
                environment: production
                api_url: ftp://user:{BAD_ENTRY_SECRETS["url-credentials"]}@host/x
            """
        ),
    }


def all_secrets() -> list[str]:
    values = [
        *LICENSE_IDS,
        URL_PASSWORD,
        BEARER_TOKEN,
        *VALUES_SECRETS,
        WEB_PASSWORD,
        WRONG_PASSWORD,
        WRONG_USER,
        WEB_HASH,
        *BAD_ENTRY_SECRETS.values(),
    ]
    # Encoded forms a leak could take: an Authorization header, a !!binary value.
    for user, password in (
        ("prometheus", WEB_PASSWORD),
        ("prometheus", WRONG_PASSWORD),
        (WRONG_USER, WEB_PASSWORD),
    ):
        values.append(base64.b64encode(f"{user}:{password}".encode()).decode())
    values.append(base64.b64encode(BAD_ENTRY_SECRETS["tagged-id"].encode()).decode())
    values.append(base64.b64encode(VALUES_SECRETS[2].encode()).decode())
    return values


def assert_no_secret(where: str, text: str) -> None:
    for secret in all_secrets():
        assert secret not in text, f"{where} contains the planted secret {secret!r}"


@pytest.fixture
def dify_api():
    with DifyApiSimulator() as simulator:
        simulator.set(
            "healthy",
            Behavior(
                body=system_features("active", "2026-12-31"),
                require_token="a-token-that-differs",
                features_body={},
            ),
        )
        simulator.set("failing", Behavior(mode="error", code=500))
        yield simulator


@pytest.fixture
def setup(tmp_path, dify_api):
    """Registry, values, probe credentials and web config, all carrying secrets."""
    registry = tmp_path / "registry.yaml"
    registry.write_text(good_registry(dify_api.base), encoding="utf-8")
    values = tmp_path / "values" / "prod-cn"
    values.mkdir(parents=True)
    (values / "dify.yaml").write_text(
        textwrap.dedent(
            f"""\
            api:
              secretKey: {VALUES_SECRETS[0]}
            externalPostgres:
              password: {VALUES_SECRETS[1]}
            enterprise:
              enabled: true
              licenseMode: online
              licenseServer: https://{URL_USER}:{URL_PASSWORD}@license.example
            """
        ),
        encoding="utf-8",
    )
    tagged = base64.b64encode(VALUES_SECRETS[2].encode()).decode()
    (values / "dify-staging.yaml").write_text(
        "enterprise:\n  licenseMode: offline\n"
        f"redis:\n  password: !!binary {tagged}\n"
        f"  password: {VALUES_SECRETS[1]}\n",
        encoding="utf-8",
    )
    token = tmp_path / "token"
    token.write_text(BEARER_TOKEN + "\n", encoding="utf-8")
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prometheus: '{WEB_HASH}'\n", encoding="utf-8")
    return {
        "registry": os.fspath(registry),
        "values": os.fspath(tmp_path / "values"),
        "token": os.fspath(token),
        "web": os.fspath(web),
    }


def source_flags(setup: dict[str, str]) -> list[str]:
    return [
        "--registry",
        setup["registry"],
        "--values-dir",
        setup["values"],
        "--probe.credentials-file",
        setup["token"],
    ]


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def get(url: str, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.mark.parametrize("log_format", ["logfmt", "json"])
def test_serve_logs_and_metrics_hold_no_secret(tmp_path, setup, log_format):
    port = free_port()
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dify_license_exporter",
                "serve",
                *source_flags(setup),
                "--web.listen-address",
                f"127.0.0.1:{port}",
                "--web.config.file",
                setup["web"],
                "--refresh-interval",
                "0.2",
                "--log.level",
                "debug",
                "--log.format",
                log_format,
            ],
            cwd=REPO,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if get(base + "/healthz", basic("prometheus", WEB_PASSWORD))[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)

        pages = []
        status, body = get(base + "/metrics", basic("prometheus", WEB_PASSWORD))
        assert status == 200
        assert 'license="prod-main"' in body
        pages.append(body)
        for headers in (
            basic("prometheus", WRONG_PASSWORD),
            basic(WRONG_USER, WEB_PASSWORD),
            {},
        ):
            status, body = get(base + "/metrics", headers)
            assert status == 401
            pages.append(body)

        registry = Path(setup["registry"])
        good = registry.read_text(encoding="utf-8")
        for text in bad_registries().values():
            registry.write_text(text, encoding="utf-8")
            time.sleep(0.5)  # at least two refreshes
        registry.write_text(good, encoding="utf-8")
        time.sleep(0.5)
        status, body = get(base + "/metrics", basic("prometheus", WEB_PASSWORD))
        assert status == 200
        pages.append(body)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    logs = log_path.read_text(encoding="utf-8")

    # The run exercised the paths that could leak.
    assert process.returncode == 0
    assert "refresh error" in logs
    assert "invalid_registry" in logs
    assert "invalid_yaml" in logs or "invalid_registry" in logs
    assert "values_invalid" in logs
    assert "probe failed" in logs
    assert "debug" in logs
    for index, page in enumerate(pages):
        assert_no_secret(f"scrape {index}", page)
    assert_no_secret(f"serve log ({log_format})", logs)


@pytest.mark.parametrize("output_format", ["table", "json"])
def test_check_output_holds_no_secret(capsys, caplog, setup, output_format):
    with caplog.at_level(logging.DEBUG):
        code, output = run(
            capsys,
            "check",
            *source_flags(setup),
            "--now",
            NOW,
            "--format",
            output_format,
            "--fail-on",
            "info",
        )
    # A planted values file is unreadable, which fails check as a gate (exit 2)
    # after the instances are printed.
    assert code == 2
    assert "prod-main" in output
    assert "warning: probe failed" in output
    assert_no_secret(f"check --format {output_format}", output)
    assert_no_secret("check logs", caplog.text)


@pytest.mark.parametrize("output_format", ["html", "csv", "markdown"])
def test_report_holds_no_secret(capsys, caplog, setup, output_format):
    with caplog.at_level(logging.DEBUG):
        code, output = run(
            capsys,
            "report",
            *source_flags(setup),
            "--now",
            NOW,
            "--format",
            output_format,
        )
    assert code == 0
    assert "prod-main" in output
    assert_no_secret(f"report --format {output_format}", output)
    assert_no_secret("report logs", caplog.text)


@pytest.mark.parametrize("case", sorted(bad_registries()))
@pytest.mark.parametrize("command", ["validate", "check"])
def test_registry_errors_hold_no_secret(capsys, tmp_path, case, command):
    path = tmp_path / "registry.yaml"
    path.write_text(bad_registries()[case], encoding="utf-8")
    code, output = run(capsys, command, "--registry", os.fspath(path))
    assert code == 2
    assert output.startswith("error: invalid registry (")
    assert_no_secret(f"{command} on {case}", output)


def test_hidden_values_still_name_the_field(capsys, tmp_path):
    path = tmp_path / "registry.yaml"
    path.write_text(bad_registries()["string-entry"], encoding="utf-8")
    _, output = run(capsys, "validate", os.fspath(path))
    assert (
        f"{path}: licenses[0]: must be a mapping, got string (value hidden)" in output
    )


def test_url_credentials_replaced_in_errors(capsys, tmp_path):
    path = tmp_path / "registry.yaml"
    path.write_text(bad_registries()["url-credentials"], encoding="utf-8")
    _, output = run(capsys, "validate", os.fspath(path))
    assert (
        f"{path}: instances[0].api_url: invalid value "
        '"ftp://(credentials hidden)@host/x"' in output
    )


def test_bad_web_config_hash_not_echoed(capsys, setup, tmp_path):
    web = tmp_path / "bad-web.yml"
    web.write_text(
        f"basic_auth_users:\n  prometheus: '{WEB_PASSWORD}'\n", encoding="utf-8"
    )
    code, output = run(
        capsys,
        "serve",
        "--registry",
        setup["registry"],
        "--web.listen-address",
        f"127.0.0.1:{free_port()}",
        "--web.config.file",
        os.fspath(web),
    )
    assert code == 2
    assert f"{web}: basic_auth_users.prometheus: not a bcrypt hash" in output
    assert_no_secret("web config error", output)


def test_license_repr_hides_id():
    from dify_license_exporter.registry import load_registry

    path = REPO / "examples" / "registry.yaml"
    registry = load_registry([os.fspath(path)])
    text = repr(registry) + json.dumps([str(v) for v in registry.licenses.values()])
    assert "DIFY-ENT-EXAMPLE" not in text
