"""Files source: Helm values files as `helm get values` writes them."""

from __future__ import annotations

import os

from dify_license_exporter.sources.files import FilesSource


def observe(tmp_path, files: dict[str, str], cluster: str | None = None):
    for name, text in files.items():
        path = tmp_path / "values" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return FilesSource(os.fspath(tmp_path / "values"), cluster).observe()


def test_user_supplied_values(tmp_path):
    result = observe(
        tmp_path,
        {"prod/dify.yaml": "enterprise:\n  licenseMode: offline\n  licenseServer: https://l.example\n"},
    )
    observation = result.instances[("prod", "dify")]
    assert observation.mode == "offline"
    assert observation.license_server == "https://l.example"
    assert result.clusters == frozenset({"prod"})
    assert result.errors == []


def test_defaults_when_keys_absent(tmp_path):
    result = observe(tmp_path, {"prod/dify.yaml": "global:\n  host: x\n", "prod/empty.yaml": ""})
    assert result.instances[("prod", "dify")].mode == "online"
    assert result.instances[("prod", "empty")].mode == "online"


def test_helm_header_lines_accepted(tmp_path):
    result = observe(
        tmp_path,
        {
            "prod/a.yaml": "USER-SUPPLIED VALUES:\nenterprise:\n  licenseMode: offline\n",
            "prod/b.yaml": "COMPUTED VALUES:\nenterprise:\n  enabled: true\n  licenseMode: online\n",
        },
    )
    assert result.instances[("prod", "a")].mode == "offline"
    assert result.instances[("prod", "b")].mode == "online"


def test_enterprise_disabled_is_not_observed(tmp_path):
    result = observe(tmp_path, {"prod/community.yaml": "enterprise:\n  enabled: false\n"})
    assert result.instances == {}
    assert result.clusters == frozenset({"prod"})


def test_invalid_mode_is_error_for_that_instance_only(tmp_path):
    result = observe(
        tmp_path,
        {
            "prod/bad.yaml": "enterprise:\n  licenseMode: Offline\n",
            "prod/good.yaml": "enterprise:\n  licenseMode: offline\n",
        },
    )
    bad = result.instances[("prod", "bad")]
    assert bad.mode is None
    assert bad.error_reason == "values_invalid"
    assert bad.error_message.endswith(
        "bad.yaml: enterprise.licenseMode must be online or offline, got 'Offline'; "
        "fix the Helm values"
    )
    assert result.instances[("prod", "good")].mode == "offline"
    assert [e.reason for e in result.errors] == ["values_invalid"]


def test_values_that_are_a_list(tmp_path):
    result = observe(tmp_path, {"prod/list.yaml": "- a\n- b\n"})
    observation = result.instances[("prod", "list")]
    assert observation.error_reason == "values_invalid"
    assert "Helm values must be a mapping, got list" in observation.error_message


def test_binary_file_is_unreadable(tmp_path):
    path = tmp_path / "values" / "prod" / "bin.yaml"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xff\xfe\x00\x01garbage")
    result = FilesSource(os.fspath(tmp_path / "values")).observe()
    observation = result.instances[("prod", "bin")]
    assert observation.error_reason == "values_unreadable"
    assert "not valid UTF-8 at byte 0" in observation.error_message


def test_invalid_yaml_names_line(tmp_path):
    result = observe(tmp_path, {"prod/broken.yaml": "enterprise:\n  licenseMode: [x\n"})
    observation = result.instances[("prod", "broken")]
    assert observation.error_reason == "values_invalid"
    assert "invalid YAML at line 3" in observation.error_message


def test_hidden_entries_and_other_suffixes_ignored(tmp_path):
    result = observe(
        tmp_path,
        {
            "prod/dify.yml": "enterprise: {licenseMode: offline}\n",
            "prod/README.md": "notes\n",
            "prod/..data/dify.yaml": "enterprise: {licenseMode: online}\n",
            ".git/x.yaml": "{}\n",
        },
    )
    assert list(result.instances) == [("prod", "dify")]
    assert result.instances[("prod", "dify")].mode == "offline"
    assert result.clusters == frozenset({"prod"})


def test_cluster_flag_limits_folders(tmp_path):
    result = observe(
        tmp_path,
        {"prod/a.yaml": "{}\n", "test/b.yaml": "{}\n"},
        cluster="test",
    )
    assert list(result.instances) == [("test", "b")]
    assert result.clusters == frozenset({"test"})


def test_missing_cluster_folder_is_error(tmp_path):
    result = observe(tmp_path, {"prod/a.yaml": "{}\n"}, cluster="nowhere")
    assert result.instances == {}
    assert [e.reason for e in result.errors] == ["values_dir_missing"]
    assert "cluster folder not found" in result.errors[0].message
