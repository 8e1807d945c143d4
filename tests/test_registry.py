"""Registry loader: one test per kind of error, plus the happy paths."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import jsonschema
import pytest
import yaml

from dify_license_exporter.registry import (
    DEFAULT_NOTICE_DAYS,
    RegistryError,
    load_registry,
    load_schema,
)

from conftest import EXAMPLES

VALID = """\
timezone: UTC
licenses:
  - id: DIFY-SECRET-0001
    name: prod-main
    effective: 2026-01-01
    expires: 2026-12-31
    mode: online
    bound_to: {cluster: prod-cn, namespace: dify}
instances:
  - cluster: prod-cn
    namespace: dify
    license: prod-main
    environment: production
    owner: Jane Roe
    department: AI Platform
renewals:
  - license: prod-main
    requester: procurement@example.com
    activator: sre@example.com
"""


def problems_of(paths) -> list[str]:
    with pytest.raises(RegistryError) as info:
        load_registry(paths)
    return [str(problem) for problem in info.value.problems]


def only_problem(paths) -> str:
    problems = problems_of(paths)
    assert len(problems) == 1, problems
    return problems[0]


def test_valid_registry_loads(write_file):
    registry = load_registry([write_file("r.yaml", VALID)])
    license = registry.licenses["prod-main"]
    assert license.expires == datetime(2027, 1, 1, tzinfo=timezone.utc)
    assert license.effective == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert license.mode == "online"
    assert registry.instances[0].priority == "high"
    assert registry.renewal_for("prod-main").notice_days == DEFAULT_NOTICE_DAYS


def test_license_id_hidden_in_repr(write_file):
    registry = load_registry([write_file("r.yaml", VALID)])
    assert "DIFY-SECRET-0001" not in repr(registry)


def test_unknown_key_named_with_suggestion(write_file):
    path = write_file("r.yaml", VALID.replace("    mode: online", "    mode: online\n    expirs: 2027-01-01"))
    message = only_problem([path])
    assert message.startswith(f"{path}: licenses[0].expirs: unknown key 'expirs'")
    assert "did you mean 'expires'?" in message


def test_unknown_top_level_key(write_file):
    path = write_file("r.yaml", VALID + "licences: []\n")
    message = only_problem([path])
    assert message.startswith(f"{path}: licences: unknown key 'licences'")
    assert "did you mean 'licenses'?" in message


def test_duplicate_yaml_key(write_file):
    path = write_file("r.yaml", VALID.replace("    mode: online", "    mode: online\n    mode: offline"))
    message = only_problem([path])
    assert message == (
        f"{path}: licenses[0].mode: duplicate key 'mode' at line 8; keep only one"
    )


def test_impossible_date(write_file):
    path = write_file("r.yaml", VALID.replace("expires: 2026-12-31", "expires: 2026-02-30"))
    message = only_problem([path])
    assert message.startswith(f"{path}: licenses[0].expires: invalid value '2026-02-30'")
    assert "not a calendar date" in message


def test_hour_24_rejected(write_file):
    path = write_file(
        "r.yaml", VALID.replace("expires: 2026-12-31", "expires: 2026-12-31T24:00:00Z")
    )
    message = only_problem([path])
    assert "licenses[0].expires: invalid value '2026-12-31T24:00:00Z'" in message
    assert "use 00:00:00 to 23:59:59" in message


def test_year_out_of_range(write_file):
    path = write_file("r.yaml", VALID.replace("expires: 2026-12-31", "expires: 9999-12-31"))
    message = only_problem([path])
    assert "licenses[0].expires: invalid value '9999-12-31': year 9999 is out of range" in message


def test_not_a_date(write_file):
    path = write_file("r.yaml", VALID.replace("expires: 2026-12-31", "expires: next year"))
    message = only_problem([path])
    assert message.startswith(f"{path}: licenses[0].expires: invalid value \"next year\"")
    assert "2026-12-31T18:00:00Z" in message


def test_wrong_type(write_file):
    path = write_file("r.yaml", VALID.replace("namespace: dify\n    license", "namespace: 42\n    license"))
    message = only_problem([path])
    assert message.startswith(
        f"{path}: instances[0].namespace: must be a string, got integer 42"
    )


def test_yaml11_boolean_stays_string(write_file):
    path = write_file("r.yaml", VALID.replace("mode: online", "mode: off"))
    message = only_problem([path])
    assert message.startswith(
        f"{path}: licenses[0].mode: invalid value \"off\"; must be one of online, offline"
    )


def test_invalid_environment(write_file):
    path = write_file("r.yaml", VALID.replace("environment: production", "environment: prod"))
    message = only_problem([path])
    assert message.startswith(
        f"{path}: instances[0].environment: invalid value \"prod\"; must be one of "
        "production, staging, test, development"
    )


def test_duplicate_alias(write_file):
    second = """\
  - id: DIFY-SECRET-0002
    name: prod-main
    effective: 2026-01-01
    expires: 2026-06-30
    mode: offline
    bound_to: {cluster: prod-cn, namespace: dify2}
instances:"""
    path = write_file("r.yaml", VALID.replace("instances:", second, 1))
    message = only_problem([path])
    assert message.startswith(
        f"{path}: licenses[1].name: duplicate license name 'prod-main', first defined "
        f"at {path}: licenses[0]"
    )


def test_dangling_reference(write_file):
    path = write_file("r.yaml", VALID.replace("license: prod-main\n    environment", "license: prod-mian\n    environment"))
    message = only_problem([path])
    assert message == (
        f"{path}: instances[0].license: license 'prod-mian' is not in the license "
        "registry; did you mean 'prod-main'? use the name of an entry under licenses"
    )


def test_dangling_renewal_reference(write_file):
    path = write_file("r.yaml", VALID.replace("  - license: prod-main\n    requester", "  - license: other\n    requester"))
    message = only_problem([path])
    assert message.startswith(f"{path}: renewals[0].license: license 'other' is not")


def test_effective_after_expiry(write_file):
    path = write_file("r.yaml", VALID.replace("effective: 2026-01-01", "effective: 2027-01-01"))
    message = only_problem([path])
    assert message == (
        f"{path}: licenses[0].effective: effective '2027-01-01' is not before expires "
        "'2026-12-31'; the license must start before it expires"
    )


def test_unknown_time_zone(write_file):
    path = write_file("r.yaml", VALID.replace("timezone: UTC", "timezone: Mars/Olympus"))
    message = only_problem([path])
    assert message.startswith(f"{path}: timezone: unknown time zone 'Mars/Olympus'")


def test_non_positive_notice_days(write_file):
    path = write_file("r.yaml", VALID + "    notice_days: [30, 0]\n")
    message = only_problem([path])
    assert message.startswith(f"{path}: renewals[0].notice_days[1]: value 0 is out of range")


def test_repeated_notice_days(write_file):
    path = write_file("r.yaml", VALID + "    notice_days: [30, 7, 30]\n")
    message = only_problem([path])
    assert message.startswith(
        f"{path}: renewals[0].notice_days: repeated values in [30, 7, 30]"
    )


def test_missing_required_key(write_file):
    path = write_file("r.yaml", VALID.replace("    mode: online\n", ""))
    message = only_problem([path])
    assert message.startswith(f"{path}: licenses[0].mode: required key is missing")
    assert "use online or offline" in message


def test_bad_alias_pattern(write_file):
    path = write_file("r.yaml", VALID.replace("name: prod-main", "name: Prod_Main"))
    problems = problems_of([path])
    assert problems[0].startswith(f'{path}: licenses[0].name: invalid value "Prod_Main"')
    assert "lowercase letters" in problems[0]


def test_duplicate_instance(write_file):
    extra = """\
  - cluster: prod-cn
    namespace: dify
    license: prod-main
    environment: staging
renewals:"""
    path = write_file("r.yaml", VALID.replace("renewals:", extra))
    message = only_problem([path])
    assert message.startswith(
        f"{path}: instances[1]: instance prod-cn/dify is already registered"
    )


def test_secret_id_never_in_error(write_file):
    path = write_file("r.yaml", VALID.replace("id: DIFY-SECRET-0001", "id: 12345678901"))
    message = only_problem([path])
    assert message.startswith(f"{path}: licenses[0].id: must be a string, got integer (value hidden)")
    assert "12345678901" not in message


def test_all_errors_of_a_file_reported_at_once(write_file):
    text = (
        VALID.replace("expires: 2026-12-31", "expires: 2026-02-30")
        .replace("environment: production", "environment: prod")
        .replace("timezone: UTC", "timezone: Nowhere/City")
    )
    path = write_file("r.yaml", text)
    problems = problems_of([path])
    assert len(problems) == 3
    assert any("instances[0].environment" in p for p in problems)
    assert any("licenses[0].expires" in p for p in problems)
    assert any(": timezone: unknown time zone" in p for p in problems)


def test_invalid_yaml_names_line(write_file):
    path = write_file("r.yaml", "licenses:\n  - name: [unclosed\n")
    message = only_problem([path])
    assert message.startswith(f"{path}: invalid YAML at line 3")


def test_missing_file(tmp_path):
    path = str(tmp_path / "absent.yaml")
    with pytest.raises(RegistryError) as info:
        load_registry([path])
    assert info.value.reason == "read_failed"
    assert str(info.value.problems[0]) == (
        f"{path}: file not found; check the --registry path"
    )


def test_several_files_concatenate(write_file):
    first = write_file("a.yaml", VALID)
    second = write_file(
        "b.yaml",
        """\
        instances:
          - cluster: prod-cn
            namespace: dify-two
            license: prod-main
            environment: test
        """,
    )
    registry = load_registry([first, second])
    assert [i.namespace for i in registry.instances] == ["dify", "dify-two"]
    assert registry.timezone == "UTC"


def test_conflicting_time_zones(write_file):
    first = write_file("a.yaml", VALID)
    second = write_file("b.yaml", "timezone: Asia/Shanghai\n")
    message = only_problem([first, second])
    assert message.startswith(
        f"{second}: timezone: 'Asia/Shanghai' differs from 'UTC' set in {first}"
    )


def test_reference_across_files_names_referencing_file(write_file):
    first = write_file("a.yaml", VALID)
    second = write_file(
        "b.yaml",
        """\
        instances:
          - cluster: edge
            namespace: dify
            license: missing-one
            environment: test
        """,
    )
    message = only_problem([first, second])
    assert message.startswith(f"{second}: instances[0].license: license 'missing-one'")


def test_empty_file_is_empty_registry(write_file):
    registry = load_registry([write_file("r.yaml", "# nothing yet\n")])
    assert registry.instances == ()
    assert registry.licenses == {}


def test_example_registry_valid_against_schema():
    schema = load_schema()
    with open(EXAMPLES / "registry.yaml", encoding="utf-8") as handle:
        data = yaml.load(handle, Loader=yaml.BaseLoader)
    # BaseLoader keeps every scalar a string; convert the notice days back.
    for renewal in data["renewals"]:
        if "notice_days" in renewal:
            renewal["notice_days"] = [int(d) for d in renewal["notice_days"]]
    jsonschema.Draft202012Validator(schema).validate(data)


def test_schema_file_is_valid_json_schema():
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert json.dumps(schema)


def test_license_id_used_as_name_is_hidden(write_file):
    path = write_file(
        "r.yaml",
        VALID.replace("license: prod-main\n    environment", "license: DIFY-SECRET-0001\n    environment"),
    )
    message = only_problem([path])
    assert message.startswith(
        f"{path}: instances[0].license: invalid value (a License ID, hidden; use the "
        "license's name)"
    )
    assert "DIFY-SECRET-0001" not in message


def test_duplicate_license_id(write_file):
    second = """\
  - id: DIFY-SECRET-0001
    name: prod-copy
    effective: 2026-01-01
    expires: 2026-06-30
    mode: online
    bound_to: {cluster: prod-cn, namespace: dify}
instances:"""
    path = write_file("r.yaml", VALID.replace("instances:", second, 1))
    message = only_problem([path])
    assert message == (
        f"{path}: licenses[1].id: the same License ID (value hidden) as {path}: "
        "licenses[0]; register each license once and let instances share it by name"
    )


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "posix/UTC"])
def test_host_specific_time_zone_rejected(write_file, zone):
    path = write_file("r.yaml", VALID.replace("timezone: UTC", f"timezone: {zone}"))
    message = only_problem([path])
    assert message.startswith(f"{path}: timezone: unknown time zone '{zone}'")


def test_empty_optional_text_is_incomplete_not_invalid(write_file):
    path = write_file("r.yaml", VALID.replace("owner: Jane Roe", "owner:"))
    registry = load_registry([path])
    assert registry.instances[0].owner == ""


def test_folder_as_registry(tmp_path):
    message = only_problem([str(tmp_path)])
    assert message == f"{tmp_path}: is a folder, not a file; give the path of the file inside it"


def test_fifo_as_registry_does_not_block(tmp_path):
    path = tmp_path / "registry.yaml"
    os.mkfifo(path)
    message = only_problem([str(path)])
    assert message == (
        f"{path}: not a regular file (a FIFO, socket or device); give a regular file"
    )


def test_same_file_twice(write_file):
    path = write_file("r.yaml", VALID)
    assert only_problem([path, path]) == f"{path}: given more than once; pass each file once"


def test_control_character_names_line(write_file):
    path = write_file("r.yaml", VALID.replace("    mode: online", "    mode: on\x01line"))
    assert only_problem([path]) == (
        f"{path}: invalid YAML at line 7, column 13: the character U+0001 is not "
        "allowed; remove it, or write it as an escape in a double-quoted string"
    )


def test_api_url_with_query_rejected(write_file):
    path = write_file(
        "r.yaml",
        VALID.replace("    department: AI Platform", "    department: AI Platform\n    api_url: http://dify:5001/?x=1"),
    )
    assert only_problem([path]).startswith(
        f'{path}: instances[0].api_url: invalid value "http://dify:5001/?x=1"'
    )
