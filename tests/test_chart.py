"""Tests of the Helm chart, rendered by the Helm v4 engine of helm-python-sdk.

Manifests are checked against the Kubernetes 1.29 and 1.33 schemas bundled with
kubernetes-validate, the PrometheusRule's groups with promtool, and two value sets
against golden renders. Regenerate the golden files with
`UPDATE_GOLDEN=1 pytest tests/test_chart.py -k golden`.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from cryptography.hazmat.primitives import serialization

REPO_ROOT = Path(__file__).resolve().parent.parent
CHART_DIR = REPO_ROOT / "charts" / "dify-license-exporter"
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
RELEASE = "dle"
NAMESPACE = "monitoring"
FULLNAME = "dle-dify-license-exporter"
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")
# Kinds from the Prometheus Operator; kubernetes-validate has no schema for them.
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
READ_VERBS = ["get", "list", "watch"]


def load_sync_module():
    spec = importlib.util.spec_from_file_location(
        "chart_sync", REPO_ROOT / "charts" / "sync.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ci_values(name: str) -> dict:
    return yaml.safe_load((CHART_DIR / "ci" / name).read_text())


VALUE_SETS = {"default": {}} | {
    path.name: ci_values(path.name)
    for path in sorted((CHART_DIR / "ci").glob("*.yaml"))
}


@pytest.fixture(scope="module")
def chart():
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


def render_raw(chart: helm.Chart, values: dict) -> dict[str, str]:
    return chart.render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE)


def render(chart: helm.Chart, values: dict) -> list[dict]:
    """Render and parse every manifest, leaving out NOTES.txt and empty documents."""
    documents = []
    for path, text in sorted(render_raw(chart, values).items()):
        if path.endswith("NOTES.txt"):
            continue
        documents.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return documents


def find(documents: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [
        doc
        for doc in documents
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]


def only(documents: list[dict], kind: str, name: str | None = None) -> dict:
    matches = find(documents, kind, name)
    assert len(matches) == 1, f"expected one {kind} {name or ''}, got {len(matches)}"
    return matches[0]


def pod_spec(documents: list[dict]) -> dict:
    return only(documents, "Deployment")["spec"]["template"]["spec"]


def container(documents: list[dict]) -> dict:
    containers = pod_spec(documents)["containers"]
    assert len(containers) == 1
    return containers[0]


def flag_values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == flag]


# Lint and schema validation


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_lint_strict_clean(value_set):
    report = helm.lint(CHART_DIR, copy.deepcopy(VALUE_SETS[value_set]), strict=True)

    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
    assert report["total_charts_linted"] == 1


@pytest.mark.parametrize("value_set", VALUE_SETS)
@pytest.mark.parametrize("kubernetes_version", KUBERNETES_VERSIONS)
def test_manifests_match_kubernetes_schema(chart, value_set, kubernetes_version):
    documents = render(chart, VALUE_SETS[value_set])
    built_in = [doc for doc in documents if doc["kind"] not in OPERATOR_KINDS]

    assert len(built_in) >= 3
    for doc in built_in:
        validated = kubernetes_validate.validate(doc, kubernetes_version, strict=True)
        assert validated == kubernetes_version.rsplit(".", 1)[0]


def test_kubernetes_validate_rejects_unknown_field(chart):
    # Proves the bundled schemas are used offline and strict mode is on.
    deployment = copy.deepcopy(only(render(chart, {}), "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFS"] = True

    with pytest.raises(kubernetes_validate.ValidationError) as caught:
        kubernetes_validate.validate(deployment, "1.29.0", strict=True)

    assert "readOnlyRootFS" in caught.value.message


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"sourc": "files"}, "at '': additional properties 'sourc' not allowed"),
        (
            {"source": "file"},
            "at '/source': value must be one of 'kubernetes', 'files'",
        ),
        ({"cluster": ""}, "at '/cluster': minLength: got 0, want 1"),
        ({"refreshInterval": "60"}, "at '/refreshInterval': got string, want integer"),
        ({"refreshInterval": 0}, "at '/refreshInterval': minimum: got 0, want 1"),
        (
            {"serviceMonitor": {"enabled": "true"}},
            "at '/serviceMonitor/enabled': got string, want boolean",
        ),
        (
            {"serviceMonitor": {"interval": "1 minute"}},
            (
                "at '/serviceMonitor/interval': '1 minute' does not match pattern "
                "'^([0-9]+(ms|s|m|h))+$'"
            ),
        ),
        (
            {"kubernetes": {"namespaces": ["Dify_Prod"]}},
            (
                "at '/kubernetes/namespaces/0': 'Dify_Prod' does not match pattern "
                "'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'"
            ),
        ),
        (
            {"kubernetes": {"namespaceSelectors": "a=b"}},
            "at '/kubernetes': additional properties 'namespaceSelectors' not allowed",
        ),
        (
            {"registry": {"inline": {"licenses": []}}},
            "at '/registry/inline': got object, want string",
        ),
        (
            {"log": {"format": "text"}},
            "at '/log/format': value must be one of 'json', 'logfmt'",
        ),
        ({"telemetryPath": "/healthz"}, "at '/telemetryPath': 'not' failed"),
        (
            {"prometheusRule": {"additionalRuleLabels": {"severity": "page"}}},
            "at '/prometheusRule/additionalRuleLabels/severity': 'not' failed",
        ),
        (
            {"image": {"digest": "latest"}},
            (
                "at '/image/digest': 'latest' does not match pattern "
                "'^(sha256:[a-f0-9]{64})?$'"
            ),
        ),
        (
            {"webConfig": {"config": {"basic_auth": {"u": "p"}}}},
            "at '/webConfig/config': additional properties 'basic_auth' not allowed",
        ),
    ],
)
def test_schema_rejects_invalid_values(chart, values, error):
    with pytest.raises(helm.HelmValuesError) as caught:
        chart.validate_schema(values)

    assert str(caught.value) == f"dify-license-exporter:\n- {error}\n"


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_schema_accepts_value_sets(chart, value_set):
    chart.validate_schema(copy.deepcopy(VALUE_SETS[value_set]))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"kubernetes": {"namespaces": ["dify"], "namespaceInclude": ["dify*"]}},
            "set kubernetes.namespaces or kubernetes.namespaceInclude, not both",
        ),
        (
            {"source": "files"},
            "source: files needs files.values or files.existingConfigMap",
        ),
        (
            {"registry": {"existingConfigMap": "a", "existingSecret": "b"}},
            "set registry.existingConfigMap or registry.existingSecret, not both",
        ),
        (
            {"registry": {"signature": "c2lnbmF0dXJl"}},
            "registry.signature needs registry.publicKey",
        ),
    ],
)
def test_render_fails_on_conflicting_values(chart, values, message):
    with pytest.raises(helm.HelmRenderError) as caught:
        render_raw(chart, values)

    assert message in str(caught.value)


# Deployment


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_pod_passes_restricted_pod_security(chart, value_set):
    spec = pod_spec(render(chart, VALUE_SETS[value_set]))
    pod_context = spec["securityContext"]
    allowed_volume_types = {
        "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
        "persistentVolumeClaim", "projected", "secret",
    }  # fmt: skip

    assert pod_context["runAsNonRoot"] is True
    assert pod_context["runAsUser"] != 0
    assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "hostNetwork" not in spec
    assert "hostPID" not in spec
    assert "hostIPC" not in spec
    for volume in spec["volumes"]:
        assert set(volume) - {"name"} <= allowed_volume_types
    for item in spec["containers"]:
        context = item["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["runAsNonRoot"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        assert all("hostPort" not in port for port in item["ports"])


def test_default_container_arguments(chart):
    args = container(render(chart, {}))["args"]

    assert args == [
        "serve",
        "--registry", "/etc/dify-license-exporter/registry/registry.yaml",
        "--source", "kubernetes",
        "--cluster", "default",
        "--chart-name", "dify",
        "--enterprise-pod-selector", "app=dify-enterprise",
        "--web.listen-address", ":9877",
        "--web.telemetry-path", "/metrics",
        "--refresh-interval", "60",
        "--log.level", "info",
        "--log.format", "json",
    ]  # fmt: skip


def test_full_values_container_arguments(chart):
    args = container(render(chart, VALUE_SETS["full-values.yaml"]))["args"]

    assert flag_values(args, "--cluster") == ["prod-cn"]
    assert flag_values(args, "--registry-public-key") == [
        "/etc/dify-license-exporter/registry-key/public-key.pem"
    ]
    assert flag_values(args, "--namespace-include") == ["dify*"]
    assert flag_values(args, "--namespace-exclude") == ["dify-sandbox-*"]
    assert flag_values(args, "--namespace-selector") == [
        "dify.example.com/monitored=true"
    ]
    assert flag_values(args, "--enterprise-pod-selector") == [
        "app=dify-enterprise,component=enterprise"
    ]
    assert flag_values(args, "--web.config.file") == [
        "/etc/dify-license-exporter/web/web-config.yml"
    ]
    assert flag_values(args, "--refresh-interval") == ["120"]
    assert flag_values(args, "--log.level") == ["debug"]
    assert flag_values(args, "--log.format") == ["logfmt"]


def test_namespace_list_becomes_include_flags(chart):
    args = container(render(chart, VALUE_SETS["namespaced-values.yaml"]))["args"]

    assert flag_values(args, "--namespace-include") == ["dify", "dify-staging"]
    assert flag_values(args, "--registry") == [
        "/etc/dify-license-exporter/registry/licenses.yaml"
    ]
    assert (
        args[-1] == "--registry=/etc/dify-license-exporter/registry/licenses-extra.yaml"
    )


def test_files_source_container_arguments(chart):
    documents = render(chart, VALUE_SETS["files-values.yaml"])
    args = container(documents)["args"]
    values_map = only(documents, "ConfigMap", f"{FULLNAME}-values")

    assert args[:7] == [
        "serve",
        "--registry", "/etc/dify-license-exporter/registry/registry.yaml",
        "--source", "files",
        "--cluster", "lab",
    ]  # fmt: skip
    assert flag_values(args, "--values-dir") == ["/etc/dify-license-exporter/values"]
    assert flag_values(args, "--chart-name") == []
    assert pod_spec(documents)["automountServiceAccountToken"] is False
    assert values_map["data"] == {
        "lab_dify.yaml": "enterprise:\n  enabled: true\n  licenseMode: offline\n",
        "lab_dify-canary.yaml": "enterprise:\n  enabled: false\n",
    }
    values_volume = next(
        v for v in pod_spec(documents)["volumes"] if v["name"] == "values"
    )
    assert values_volume["configMap"]["items"] == [
        {"key": "lab_dify.yaml", "path": "lab/dify.yaml"},
        {"key": "lab_dify-canary.yaml", "path": "lab/dify-canary.yaml"},
    ]


def test_probes_and_resources(chart):
    exporter = container(render(chart, {}))

    assert exporter["livenessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": "http-metrics",
    }
    assert exporter["readinessProbe"]["httpGet"] == {
        "path": "/readyz",
        "port": "http-metrics",
    }
    assert exporter["ports"] == [
        {"name": "http-metrics", "containerPort": 9877, "protocol": "TCP"}
    ]
    assert exporter["resources"] == {
        "requests": {"cpu": "50m", "memory": "96Mi"},
        "limits": {"memory": "256Mi"},
    }


def test_tls_switches_probes_to_https(chart):
    values = copy.deepcopy(VALUE_SETS["full-values.yaml"])
    del values["webConfig"]["config"]["basic_auth_users"]
    exporter = container(render(chart, values))

    assert exporter["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert exporter["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert {
        "name": "tls",
        "mountPath": "/etc/dify-license-exporter/tls",
        "readOnly": True,
    } in (exporter["volumeMounts"])


def test_basic_auth_switches_probes_to_tcp(chart):
    # The kubelet sends no credentials and the exporter guards /healthz and
    # /readyz too, so HTTP probes would always get 401.
    exporter = container(render(chart, VALUE_SETS["full-values.yaml"]))

    assert exporter["livenessProbe"]["tcpSocket"] == {"port": "http-metrics"}
    assert "httpGet" not in exporter["livenessProbe"]
    assert exporter["readinessProbe"]["tcpSocket"] == {"port": "http-metrics"}
    assert "httpGet" not in exporter["readinessProbe"]


def test_registry_mounted_as_folder(chart):
    # subPath mounts never see the kubelet's ..data symlink swap, so an updated
    # registry would not reach the exporter without a restart.
    for value_set, values in VALUE_SETS.items():
        mounts = container(render(chart, values))["volumeMounts"]
        registry_mount = next(m for m in mounts if m["name"] == "registry")

        assert registry_mount == {
            "name": "registry",
            "mountPath": "/etc/dify-license-exporter/registry",
            "readOnly": True,
        }, value_set
        assert all("subPath" not in m and "subPathExpr" not in m for m in mounts), (
            value_set
        )


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_exporter_parses_container_arguments(chart, value_set):
    cli = pytest.importorskip("dify_license_exporter.cli")
    values = VALUE_SETS[value_set]
    args = container(render(chart, values))["args"]

    parsed = cli.build_parser().parse_args(args)

    assert parsed.command == "serve"
    assert parsed.source == values.get("source", "kubernetes")
    assert parsed.cluster == values.get("cluster", "default")
    assert parsed.listen_address == ":9877"


# Registry and web configuration


@pytest.mark.parametrize(
    "value_set", ["default", "full-values.yaml", "files-values.yaml"]
)
def test_inline_registry_passes_exporter_validation(chart, value_set, tmp_path):
    registry = only(
        render(chart, VALUE_SETS[value_set]), "Secret", f"{FULLNAME}-registry"
    )
    path = tmp_path / "registry.yaml"
    path.write_text(registry["stringData"]["registry.yaml"])

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dify_license_exporter",
            "validate",
            "--registry",
            str(path),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("registry valid:")


def project_configmap(folder: Path, files: dict[str, str], generation: int) -> None:
    """Write files the way the kubelet projects a ConfigMap volume.

    The content goes into a fresh `..<generation>` folder, the `..data` symlink is
    swapped to it by an atomic rename, and each top-level entry is a symlink
    through `..data`.
    """
    version = folder / f"..{generation}"
    for relative, content in files.items():
        (version / relative).parent.mkdir(parents=True, exist_ok=True)
        (version / relative).write_text(content)

    temporary_link = folder / "..data_tmp"
    temporary_link.symlink_to(version.name)
    temporary_link.rename(folder / "..data")

    for top in {Path(relative).parts[0] for relative in files}:
        if not (folder / top).is_symlink():
            (folder / top).symlink_to(Path("..data") / top)


def scrape(port: int) -> str:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{port}/metrics", timeout=5
    ) as response:
        return response.read().decode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_registry_symlink_swap_reaches_exporter(chart, tmp_path):
    pytest.importorskip("dify_license_exporter.cli")
    values = VALUE_SETS["files-values.yaml"]
    documents = render(chart, values)
    registry_map = only(documents, "Secret", f"{FULLNAME}-registry")
    values_map = only(documents, "ConfigMap", f"{FULLNAME}-values")
    values_volume = next(
        v for v in pod_spec(documents)["volumes"] if v["name"] == "values"
    )
    args = container(documents)["args"]
    registry_dir = tmp_path / "registry"
    values_dir = tmp_path / "values"
    registry_dir.mkdir()
    values_dir.mkdir()

    project_configmap(registry_dir, registry_map["stringData"], 1)
    project_configmap(
        values_dir,
        {
            item["path"]: values_map["data"][item["key"]]
            for item in values_volume["configMap"]["items"]
        },
        1,
    )

    # The chart's arguments, with the mount paths moved under tmp_path, a loopback
    # address and a short refresh interval.
    moved = [arg.replace("/etc/dify-license-exporter", str(tmp_path)) for arg in args]
    port = free_port()
    moved[moved.index("--web.listen-address") + 1] = f"127.0.0.1:{port}"
    moved[moved.index("--refresh-interval") + 1] = "0.2"
    log_file = (tmp_path / "exporter.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "dify_license_exporter", *moved],
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    try:
        before = wait_for_metrics(port, 'dify_license_instances{license="lab"} 1.0')
        updated = registry_map["stringData"]["registry.yaml"].replace(
            "renewals: []",
            "renewals:\n  - license: lab\n    notice_days: [45, 10]",
        )
        project_configmap(registry_dir, {"registry.yaml": updated}, 2)
        after = wait_for_metrics(port, 'threshold="45"')
    finally:
        process.terminate()
        process.wait(timeout=10)
        log_file.close()

    instance = 'cluster="lab",environment="test",license="lab"'
    # The values ConfigMap, projected through items, is read as lab/dify.yaml.
    assert (
        f'dify_license_mode{{{instance},mode="offline",namespace="dify"}} 1.0' in before
    )
    assert 'severity="info",threshold="90"} 90.0' in before
    assert 'threshold="45"' not in before
    # The new registry arrived through the ..data swap, with no restart.
    assert (
        f'{{{instance},namespace="dify",severity="info",threshold="45"}} 45.0' in after
    )
    assert (
        f'{{{instance},namespace="dify",severity="critical",threshold="10"}} 10.0'
        in after
    )
    assert 'threshold="90"' not in after


def wait_for_metrics(port: int, expected: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        try:
            text = scrape(port)
        except OSError:
            text = ""
        if expected in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"{expected!r} not in the metrics after {timeout} s")


def test_default_registry_secret(chart):
    registry = only(render(chart, {}), "Secret", f"{FULLNAME}-registry")

    assert registry["type"] == "Opaque"
    assert registry["stringData"] == {
        "registry.yaml": "timezone: UTC\nlicenses: []\ninstances: []\nrenewals: []\n"
    }


def test_signed_inline_registry(chart):
    values = VALUE_SETS["full-values.yaml"]
    documents = render(chart, values)
    registry = only(documents, "Secret", f"{FULLNAME}-registry")
    key = only(documents, "ConfigMap", f"{FULLNAME}-registry-key")

    assert registry["stringData"]["registry.yaml"] == values["registry"]["inline"]
    assert registry["stringData"]["registry.yaml.sig"] == values["registry"]["signature"]
    assert key["data"] == {"public-key.pem": values["registry"]["publicKey"]}
    public_key = serialization.load_pem_public_key(
        key["data"]["public-key.pem"].encode()
    )
    # Raises InvalidSignature unless the signature covers the rendered bytes.
    public_key.verify(
        base64.b64decode(registry["stringData"]["registry.yaml.sig"]),
        registry["stringData"]["registry.yaml"].encode(),
    )


def test_existing_registry_objects(chart):
    namespaced = render(chart, VALUE_SETS["namespaced-values.yaml"])
    existing = render(chart, VALUE_SETS["existing-objects-values.yaml"])
    namespaced_volume = next(
        v for v in pod_spec(namespaced)["volumes"] if v["name"] == "registry"
    )
    existing_volume = next(
        v for v in pod_spec(existing)["volumes"] if v["name"] == "registry"
    )

    assert find(namespaced, "ConfigMap") == []
    assert namespaced_volume == {
        "name": "registry",
        "configMap": {"name": "dify-license-registry"},
    }
    assert existing_volume == {
        "name": "registry",
        "secret": {"secretName": "dify-license-registry"},
    }
    assert find(existing, "ServiceAccount") == []
    assert pod_spec(existing)["serviceAccountName"] == "default"


def test_web_config_secret(chart):
    values = VALUE_SETS["full-values.yaml"]
    secret = only(render(chart, values), "Secret", f"{FULLNAME}-web-config")

    assert secret["type"] == "Opaque"
    assert (
        yaml.safe_load(secret["stringData"]["web-config.yml"])
        == values["webConfig"]["config"]
    )


def test_existing_web_config_secret(chart):
    documents = render(chart, VALUE_SETS["namespaced-values.yaml"])
    volume = next(
        v for v in pod_spec(documents)["volumes"] if v["name"] == "web-config"
    )

    assert find(documents, "Secret") == []
    assert volume["secret"] == {"secretName": "license-exporter-web"}
    # The Secret's content is unknown to the chart, so the probes cannot assume
    # that the exporter serves them without credentials.
    assert container(documents)["readinessProbe"]["tcpSocket"] == {"port": "http-metrics"}


# RBAC


def test_default_cluster_role_rules(chart):
    documents = render(chart, {})
    role = only(documents, "ClusterRole")
    binding = only(documents, "ClusterRoleBinding")

    assert role["metadata"]["name"] == f"{NAMESPACE}-{FULLNAME}"
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets", "pods"], "verbs": READ_VERBS}
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": f"{NAMESPACE}-{FULLNAME}",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
    ]
    assert find(documents, "Role") == []


def test_namespace_selector_adds_namespace_rule(chart):
    role = only(render(chart, VALUE_SETS["full-values.yaml"]), "ClusterRole")

    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets", "pods"], "verbs": READ_VERBS},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": READ_VERBS},
    ]


def test_namespace_list_creates_roles(chart):
    documents = render(chart, VALUE_SETS["namespaced-values.yaml"])
    roles = find(documents, "Role")
    bindings = find(documents, "RoleBinding")

    assert [role["metadata"]["namespace"] for role in roles] == ["dify", "dify-staging"]
    for role in roles:
        assert role["rules"] == [
            {"apiGroups": [""], "resources": ["secrets", "pods"], "verbs": READ_VERBS}
        ]
    for binding in bindings:
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": "license-exporter-reader",
                "namespace": NAMESPACE,
            }
        ]
    # Namespaces are cluster-scoped, so the label selector still needs a ClusterRole.
    assert only(documents, "ClusterRole")["rules"] == [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": READ_VERBS}
    ]


def test_files_source_has_no_rbac(chart):
    documents = render(chart, VALUE_SETS["files-values.yaml"])

    for kind in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
        assert find(documents, kind) == [], kind
    assert only(documents, "ServiceAccount")["automountServiceAccountToken"] is False


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_rbac_grants_only_read_verbs(chart, value_set):
    documents = render(chart, VALUE_SETS[value_set])

    for role in find(documents, "ClusterRole") + find(documents, "Role"):
        for rule in role["rules"]:
            assert rule["verbs"] == READ_VERBS
            assert rule["apiGroups"] == [""]
            assert set(rule["resources"]) <= {"secrets", "pods", "namespaces"}


# Service, ServiceMonitor and NetworkPolicy


def test_service_port(chart):
    service = only(render(chart, {}), "Service")

    assert service["spec"]["ports"] == [
        {
            "name": "http-metrics",
            "port": 9877,
            "targetPort": "http-metrics",
            "protocol": "TCP",
        }
    ]
    assert service["spec"]["selector"] == {
        "app.kubernetes.io/name": "dify-license-exporter",
        "app.kubernetes.io/instance": RELEASE,
    }


def test_service_monitor(chart):
    values = VALUE_SETS["full-values.yaml"]
    monitor = only(render(chart, values), "ServiceMonitor")
    endpoint = monitor["spec"]["endpoints"][0]

    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"
    assert endpoint["port"] == "http-metrics"
    assert endpoint["interval"] == "2m"
    assert endpoint["scrapeTimeout"] == "30s"
    assert endpoint["scheme"] == "https"
    assert endpoint["honorLabels"] is True
    assert endpoint["relabelings"] == values["serviceMonitor"]["relabelings"]
    assert (
        endpoint["metricRelabelings"] == values["serviceMonitor"]["metricRelabelings"]
    )
    assert endpoint["tlsConfig"] == values["serviceMonitor"]["tlsConfig"]
    assert endpoint["basicAuth"] == values["serviceMonitor"]["basicAuth"]


def test_service_monitor_off_by_default(chart):
    documents = render(chart, {})

    assert find(documents, "ServiceMonitor") == []
    assert find(documents, "PrometheusRule") == []
    assert find(documents, "NetworkPolicy") == []


def test_network_policy(chart):
    policy = only(render(chart, VALUE_SETS["full-values.yaml"]), "NetworkPolicy")
    egress = policy["spec"]["egress"]

    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["spec"]["ingress"][0]["ports"] == [
        {"port": "http-metrics", "protocol": "TCP"}
    ]
    assert policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
    }
    assert egress[0]["ports"] == [
        {"port": 53, "protocol": "UDP"},
        {"port": 53, "protocol": "TCP"},
    ]
    assert egress[1]["ports"] == [
        {"port": 443, "protocol": "TCP"},
        {"port": 6443, "protocol": "TCP"},
    ]
    assert egress[2]["ports"] == [{"port": 5001, "protocol": "TCP"}]
    assert len(egress) == 3


# PrometheusRule and dashboard


def chart_rule_groups() -> list[dict]:
    groups = []
    for path in sorted((CHART_DIR / "files" / "alerts").glob("*.yaml")):
        groups.extend(yaml.safe_load(path.read_text())["groups"])
    return groups


def alert_names(groups: list[dict]) -> list[str]:
    return [
        rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule
    ]


@pytest.fixture
def rule_groups():
    groups = chart_rule_groups()
    if not groups:
        pytest.skip("no rule files in alerts/ yet; run charts/sync.py once they exist")
    return groups


def test_prometheus_rule_carries_alert_groups(chart, rule_groups):
    rule = only(render(chart, VALUE_SETS["full-values.yaml"]), "PrometheusRule")
    rendered = rule["spec"]["groups"]

    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert [g["name"] for g in rendered] == [g["name"] for g in rule_groups]
    assert alert_names(rendered) == alert_names(rule_groups)
    for group in rendered:
        for item in group["rules"]:
            if "alert" in item:
                assert item["labels"]["team"] == "platform"


def test_prometheus_rule_passes_promtool(chart, rule_groups, tmp_path):
    rule = only(render(chart, VALUE_SETS["full-values.yaml"]), "PrometheusRule")
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    rule_count = sum(len(group["rules"]) for group in rule["spec"]["groups"])

    result = subprocess.run(
        ["promtool", "check", "rules", str(rules_file)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {rule_count} rules found" in result.stdout


def test_additional_rule_labels_merge(chart, rule_groups):
    values = copy.deepcopy(VALUE_SETS["full-values.yaml"])
    values["prometheusRule"]["additionalRuleLabels"] = {"team": "x", "pager": "dify"}
    rule = only(render(chart, values), "PrometheusRule")
    source_rules = [r for g in rule_groups for r in g["rules"] if "alert" in r]
    rendered_rules = [
        r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r
    ]

    assert len(rendered_rules) == len(source_rules)
    for source, rendered in zip(source_rules, rendered_rules, strict=True):
        expected = {"team": "x", "pager": "dify", **source.get("labels", {})}
        assert rendered["labels"] == expected
    for group in rule["spec"]["groups"]:
        for item in group["rules"]:
            if "record" in item:
                assert "team" not in item.get("labels", {})


def test_prometheus_rule_drops_disabled_alerts(chart, rule_groups):
    values = copy.deepcopy(VALUE_SETS["files-values.yaml"])
    disabled = alert_names(rule_groups)[0]
    values["prometheusRule"]["disabledAlerts"] = [disabled]
    rule = only(render(chart, values), "PrometheusRule")

    assert alert_names(rule["spec"]["groups"]) == [
        name for name in alert_names(rule_groups) if name != disabled
    ]


def test_prometheus_rule_job_name(chart, rule_groups):
    rule = only(render(chart, VALUE_SETS["files-values.yaml"]), "PrometheusRule")
    source_exprs = [r["expr"] for g in rule_groups for r in g["rules"]]
    rendered_exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]

    assert any('job="dify-license-exporter"' in expr for expr in source_exprs)
    assert not any('job="dify-license-exporter"' in expr for expr in rendered_exprs)
    assert sum(
        expr.count('job="license-exporter-lab"') for expr in rendered_exprs
    ) == sum(expr.count('job="dify-license-exporter"') for expr in source_exprs)


def test_dashboard_configmap(chart):
    dashboards = sorted((CHART_DIR / "files" / "dashboards").glob("*.json"))
    configmap = only(
        render(chart, VALUE_SETS["full-values.yaml"]),
        "ConfigMap",
        f"{FULLNAME}-dashboards",
    )

    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Dify Enterprise"}
    assert sorted(configmap["data"]) == [path.name for path in dashboards]
    for path in dashboards:
        assert configmap["data"][path.name] == path.read_text()
        assert json.loads(configmap["data"][path.name])["title"]


def test_dashboard_custom_sidecar_label(chart):
    configmap = only(
        render(chart, VALUE_SETS["files-values.yaml"]),
        "ConfigMap",
        f"{FULLNAME}-dashboards",
    )

    assert configmap["metadata"]["namespace"] == "grafana"
    assert configmap["metadata"]["labels"]["example.com/grafana-dashboard"] == "true"
    assert "grafana_dashboard" not in configmap["metadata"]["labels"]
    assert "annotations" not in configmap["metadata"]


def test_chart_copies_match_sources():
    problems = load_sync_module().differences()

    assert problems == [], "run: python charts/sync.py"


def test_sync_copies_rule_files_only(tmp_path):
    sync = load_sync_module()
    (tmp_path / "alerts").mkdir()
    (tmp_path / "grafana").mkdir()
    (tmp_path / "alerts" / "license.yml").write_text(
        "groups:\n  - name: a\n    rules: []\n"
    )
    (tmp_path / "alerts" / "license_test.yaml").write_text(
        "rule_files: [x]\ntests: []\n"
    )
    (tmp_path / "alerts" / "alertmanager.yaml").write_text("route:\n  receiver: x\n")
    (tmp_path / "grafana" / "board.json").write_text('{"title": "x"}')
    (tmp_path / "grafana" / "build_dashboard.py").write_text("")
    stale = tmp_path / sync.ALERTS_COPY / "removed.yaml"
    stale.parent.mkdir(parents=True)
    stale.write_text("groups: []\n")

    assert sync.differences(tmp_path) == [
        f"missing: {sync.ALERTS_COPY / 'license.yaml'}",
        f"not in the sources: {sync.ALERTS_COPY / 'removed.yaml'}",
        f"missing: {sync.DASHBOARDS_COPY / 'board.json'}",
    ]

    sync.sync(tmp_path)

    assert sync.differences(tmp_path) == []
    assert sorted(p.name for p in (tmp_path / sync.ALERTS_COPY).iterdir()) == [
        "license.yaml"
    ]
    assert sorted(p.name for p in (tmp_path / sync.DASHBOARDS_COPY).iterdir()) == [
        "board.json"
    ]


# Values documentation


def schema_leaves(schema: dict, defaults: dict, prefix: str = "") -> list[str]:
    """List value paths, down to objects without fixed keys or with an empty default.

    `webConfig.config` is one value although its schema names its keys, because
    its default is empty and its content is the exporter-toolkit format.
    """
    leaves = []
    for key, child in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        default = defaults.get(key) if isinstance(defaults, dict) else None
        fixed_keys = (
            child.get("type") == "object" and child.get("additionalProperties") is False
        )
        if fixed_keys and default:
            leaves.extend(schema_leaves(child, default, f"{path}."))
        else:
            leaves.append(path)
    return leaves


def chart_value_paths() -> list[str]:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    return [leaf for leaf in schema_leaves(schema, defaults) if leaf != "global"]


def test_readme_lists_every_value():
    readme = (CHART_DIR / "README.md").read_text()
    documented = re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE)

    assert sorted(documented) == sorted(chart_value_paths())


def test_values_file_defines_every_value():
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())

    for path in chart_value_paths():
        node = defaults
        for part in path.split("."):
            assert isinstance(node, dict) and part in node, f"{path} has no default"
            node = node[part]


# Golden renders


GOLDEN_SETS = {"default": "default.yaml", "namespaced-values.yaml": "namespaced.yaml"}


def golden_text(chart: helm.Chart, values: dict) -> str:
    parts = []
    for path, text in sorted(render_raw(chart, values).items()):
        if text.strip() and not path.endswith("NOTES.txt"):
            parts.append(f"---\n# Source: {path}\n{text.strip()}\n")
    return "".join(parts)


@pytest.mark.parametrize("value_set", GOLDEN_SETS)
def test_golden_render(chart, value_set):
    golden = GOLDEN_DIR / GOLDEN_SETS[value_set]
    rendered = golden_text(chart, VALUE_SETS[value_set])

    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN_DIR.mkdir(exist_ok=True)
        golden.write_text(rendered)

    assert golden.exists(), f"{golden.name} missing; run with UPDATE_GOLDEN=1"
    assert rendered == golden.read_text(), (
        f"{golden.name} differs; rerun with UPDATE_GOLDEN=1"
    )
