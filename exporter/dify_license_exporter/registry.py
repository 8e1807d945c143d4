"""Load and validate the license, instance and renewal registries.

One or more YAML files are read with the strict reader in `yamlfile`, checked
against the shipped JSON Schema (`registry.schema.json`) and then against the rules a
schema cannot express: real calendar dates, known time zones, unique aliases,
references between the registries and effective-before-expiry. Every problem of
every file is collected and reported at once, each naming the file, the field path,
the bad value and the fix.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from importlib import resources
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import jsonschema

from . import yamlfile
from .yamlfile import YamlError, join_path

DEFAULT_NOTICE_DAYS: tuple[int, ...] = (90, 60, 30, 7)
ENVIRONMENTS = ("production", "staging", "test", "development")
PRIORITY = {"production": "high", "staging": "medium"}
SECRET_FIELDS = {"id"}
MIN_YEAR = 1970
MAX_YEAR = 9998
# Problems listed per load. A file of a million wrong entries must not turn into
# a million messages (and the memory of a million schema errors).
MAX_PROBLEMS = 100

# The document root, the `licenses` list and each entry may contain a License ID.
_LICENSE_ENTRY_PATH = re.compile(r"^(licenses(\[\d+\])?)?$")
_URL_USERINFO = re.compile(r"://[^/@\s\"]*@")
# ASCII digits only: `\d` would also accept other scripts' digits, such as
# full-width ones, which int() converts silently.
_DATE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$")
_DATETIME = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2})"
    r"(?::([0-9]{2})(\.[0-9]+)?)?([Zz]|[+-][0-9]{2}:[0-9]{2})?$"
)


@dataclass(frozen=True)
class License:
    """A license registry entry. `id` is a credential and is never rendered."""

    id: str = field(repr=False)
    name: str
    effective: datetime
    expires: datetime
    mode: str
    bound_cluster: str
    bound_namespace: str
    last_refreshed: datetime | None = None


@dataclass(frozen=True)
class Instance:
    """An instance registry entry: one Dify deployment in one namespace."""

    cluster: str
    namespace: str
    license: str
    environment: str
    owner: str = ""
    department: str = ""
    api_url: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.cluster, self.namespace)

    @property
    def priority(self) -> str:
        return PRIORITY.get(self.environment, "low")


@dataclass(frozen=True)
class Renewal:
    """A renewal registry entry for one license."""

    license: str
    notice_days: tuple[int, ...] = DEFAULT_NOTICE_DAYS
    requester: str = ""
    activator: str = ""


@dataclass(frozen=True)
class Registry:
    """The three registries joined, ready for evaluation."""

    timezone: str = "UTC"
    licenses: dict[str, License] = field(default_factory=dict)
    instances: tuple[Instance, ...] = ()
    renewals: dict[str, Renewal] = field(default_factory=dict)

    def renewal_for(self, license_name: str) -> Renewal:
        return self.renewals.get(license_name) or Renewal(license=license_name)

    def instance_count(self, license_name: str) -> int:
        return sum(1 for item in self.instances if item.license == license_name)


@dataclass(frozen=True)
class RegistryProblem:
    """One validation problem, rendered as `file: path: message`."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        return f"{where}: {self.message}"


class RegistryError(Exception):
    """The registry is invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[RegistryProblem], reason: str):
        self.problems = problems
        self.reason = reason
        super().__init__("\n".join(str(p) for p in problems))


def load_schema() -> dict[str, Any]:
    """Return the registry JSON Schema shipped with the package."""
    text = resources.files(__package__).joinpath("registry.schema.json").read_text()
    return json.loads(text)


def _inline_refs(node: Any, definitions: dict[str, Any]) -> Any:
    """Replace each local `$ref` by the definition it names.

    jsonschema resolves a `$ref` on every visit; with the definitions inlined, a
    registry of 5,000 instances validates about twice as fast. The schema has no
    recursive definitions, so the expansion is finite.
    """
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(definitions[ref.split("/")[-1]], definitions)
        return {
            key: _inline_refs(value, definitions)
            for key, value in node.items()
            if key != "$defs"
        }
    if isinstance(node, list):
        return [_inline_refs(item, definitions) for item in node]
    return node


_SCHEMA = load_schema()
_VALIDATOR = jsonschema.Draft202012Validator(_inline_refs(_SCHEMA, _SCHEMA["$defs"]))


def load_registry(
    paths: Iterable[str], read_text: Callable[[str], str] = yamlfile.read_text
) -> Registry:
    """Read, validate and join registry files.

    `read_text` returns a file's text and raises like `yamlfile.read_text`; the
    signature check passes one that returns the bytes it verified. Raises
    RegistryError with every problem of every file; its `reason` is
    `read_failed`, `invalid_yaml` or `invalid_registry`.
    """
    documents: list[tuple[str, dict[str, Any]]] = []
    raw_documents: list[dict[str, Any]] = []
    problems: list[RegistryProblem] = []
    reason = "invalid_registry"
    paths = list(paths)
    repeated = sorted({path for path in paths if paths.count(path) > 1})
    if repeated:
        raise RegistryError(
            [
                RegistryProblem(path, "", "given more than once; pass each file once")
                for path in repeated
            ],
            "read_failed",
        )
    if not paths:
        raise RegistryError(
            [RegistryProblem("registry", "", "no registry file given; pass --registry")],
            "read_failed",
        )
    for path in paths:
        try:
            text = read_text(path)
        except FileNotFoundError:
            problems.append(
                RegistryProblem(path, "", "file not found; check the --registry path")
            )
            reason = "read_failed"
            continue
        except OSError as exc:
            problems.append(RegistryProblem(path, "", yamlfile.describe_os_error(exc)))
            reason = "read_failed"
            continue
        except YamlError as exc:
            problems.extend(RegistryProblem(path, p.path, p.message) for p in exc.problems)
            reason = "invalid_yaml"
            continue
        try:
            data, yaml_problems = yamlfile.parse(text)
        except YamlError as exc:
            problems.extend(RegistryProblem(path, p.path, p.message) for p in exc.problems)
            if reason != "read_failed":
                reason = "invalid_yaml"
            continue
        problems.extend(RegistryProblem(path, p.path, p.message) for p in yaml_problems)
        if data is None:
            data = {}
        schema_problems, invalid_items = _schema_problems(path, data)
        problems.extend(schema_problems)
        if isinstance(data, dict):
            documents.append((path, _drop_items(data, invalid_items)))
            raw_documents.append(data)
    registry, join_problems = _join(documents, _invalid_license_names(raw_documents))
    problems.extend(join_problems)
    problems = _hide_license_ids(problems, raw_documents)
    if len(problems) > MAX_PROBLEMS:
        problems = problems[:MAX_PROBLEMS] + [_too_many_problems("registry")]
    if problems:
        raise RegistryError(problems, reason)
    return registry


@functools.cache
def _iana_zone_names() -> frozenset[str]:
    """Return the zone names of the IANA database, without the host's aliases.

    `available_timezones` lists every file of the zone folder, which on Debian
    includes `localtime`, a link to the host's /etc/localtime.
    """
    host_specific = {"localtime", "posixrules", "Factory"}
    names = {
        name
        for name in available_timezones()
        if name not in host_specific and not name.startswith(("posix/", "right/"))
    }
    return frozenset(names | {"UTC"})


def _hide_license_ids(
    problems: list[RegistryProblem], raw_documents: list[dict[str, Any]]
) -> list[RegistryProblem]:
    """Hide every License ID quoted in a message, wherever it was written.

    A License ID written where a license name belongs (`instances[0].license`)
    would otherwise be echoed as the bad value.
    """
    ids = set()
    for data in raw_documents:
        items = data.get("licenses")
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
                ids.add(item["id"])
    if not ids:
        return problems
    quoted = {}
    for license_id in ids:
        for text in (repr(license_id), json.dumps(license_id, ensure_ascii=False)):
            quoted[text] = "(a License ID, hidden; use the license's name)"
    pattern = re.compile("|".join(re.escape(text) for text in sorted(quoted, key=len, reverse=True)))
    result = []
    for problem in problems:
        message = pattern.sub(lambda match: quoted[match.group(0)], problem.message)
        result.append(RegistryProblem(problem.file, problem.path, message))
    return result


def _invalid_license_names(raw_documents: list[dict[str, Any]]) -> set[str]:
    """Return every license name written in the files, valid entry or not."""
    names = set()
    for data in raw_documents:
        items = data.get("licenses")
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                names.add(item["name"])
    return names


def _drop_items(data: dict[str, Any], invalid: set[tuple[str, int]]) -> dict:
    """Keep only the well-formed entries, so cross-checks can still run on them."""
    result: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("licenses", "instances", "renewals"):
            if not isinstance(value, list) or (key, -1) in invalid:
                continue
            # Invalid entries become None, so later messages keep the file's indexes.
            value = [
                None if (key, index) in invalid else item
                for index, item in enumerate(value)
            ]
        elif key == "timezone" and not isinstance(value, str):
            continue
        result[key] = value
    return result


def _describe_value(path: str, value: Any) -> str:
    if path.rsplit(".", 1)[-1] in SECRET_FIELDS and path.startswith("licenses"):
        return "(value hidden)"
    if _LICENSE_ENTRY_PATH.match(path):
        return "(value hidden)"
    text = json.dumps(value, default=str, ensure_ascii=False)
    # Credentials written into a URL (https://user:password@host) are not echoed.
    text = _URL_USERINFO.sub("://(credentials hidden)@", text)
    if len(text) > 80:
        text = text[:77] + "..."
    return text


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref and ref.startswith("#/$defs/"):
        return _SCHEMA["$defs"][ref.split("/")[-1]]
    return schema


def _fix(schema: dict[str, Any]) -> str:
    description = _resolve(schema).get("description", "")
    if not description:
        return ""
    # Lowercase "Use ..." but keep an acronym such as "IANA ..." as written.
    if description[1:2].islower():
        description = description[0].lower() + description[1:]
    return f"; {description}"


def _schema_problems(
    file: str, data: Any
) -> tuple[list[RegistryProblem], set[tuple[str, int]]]:
    """Return the schema problems and the (section, index) of each invalid entry.

    An index of -1 marks a section that is not a list at all.
    """
    problems = []
    invalid: set[tuple[str, int]] = set()
    errors = list(itertools.islice(_VALIDATOR.iter_errors(data), MAX_PROBLEMS + 1))
    truncated = len(errors) > MAX_PROBLEMS
    if truncated:
        # Entries past the cut were not checked, so none of the file is joined.
        del errors[MAX_PROBLEMS:]
        invalid.update((section, -1) for section in ("licenses", "instances", "renewals"))
    errors.sort(key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        path = ""
        for part in error.absolute_path:
            path = join_path(path, part)
        problems.extend(_explain(file, path, error))
        location = list(error.absolute_path)
        if len(location) >= 2 and isinstance(location[1], int):
            invalid.add((str(location[0]), location[1]))
        elif len(location) == 1:
            invalid.add((str(location[0]), -1))
        elif not location and error.validator == "additionalProperties":
            continue
    if truncated:
        problems.append(_too_many_problems(file))
    return problems, invalid


def _too_many_problems(file: str) -> RegistryProblem:
    return RegistryProblem(
        file,
        "",
        f"more than {MAX_PROBLEMS} problems, only the first are listed; fix them "
        "and validate again",
    )


def _explain(
    file: str, path: str, error: jsonschema.ValidationError
) -> list[RegistryProblem]:
    schema = error.schema if isinstance(error.schema, dict) else {}
    value = error.instance
    kind = error.validator
    if kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        result = []
        unknown = sorted(set(value) - set(allowed), key=str)
        for key in unknown[: MAX_PROBLEMS + 1]:
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            suggestion = f"did you mean {hint[0]!r}? " if hint else ""
            result.append(
                RegistryProblem(
                    file,
                    join_path(path, key),
                    f"unknown key {'null' if key is None else repr(key)}; "
                    f"{suggestion}allowed keys: "
                    + ", ".join(allowed),
                )
            )
        return result
    if kind == "required":
        missing = [name for name in error.validator_value if name not in value]
        result = []
        for name in missing:
            sub = schema.get("properties", {}).get(name, {})
            result.append(
                RegistryProblem(
                    file, join_path(path, name), f"required key is missing{_fix(sub)}"
                )
            )
        return result
    shown = _describe_value(path, value)
    if kind == "type":
        names = {"object": "mapping", "array": "list", "null": "empty"}
        allowed = error.validator_value
        allowed = allowed if isinstance(allowed, list) else [allowed]
        expected = " or ".join(names.get(name, name) for name in allowed)
        article = "an" if expected[0] in "aeiou" else "a"
        got = yamlfile.type_name(value) if value is None else f"{yamlfile.type_name(value)} {shown}"
        message = f"must be {article} {expected}, got {got}"
        if not path:
            return [
                RegistryProblem(
                    file,
                    path,
                    f"{message}; a registry file is a mapping with the keys timezone, "
                    "licenses, instances and renewals",
                )
            ]
    elif kind == "enum":
        options = ", ".join(str(o) for o in error.validator_value)
        # The schema's description would repeat the options.
        return [
            RegistryProblem(
                file, path, f"invalid value {shown}; must be one of {options}"
            )
        ]
    elif kind == "uniqueItems":
        message = f"repeated values in {shown}; list each value once"
    elif kind == "minItems":
        message = f"empty list {shown}; give at least one value or remove the key"
    elif kind in ("minimum", "maximum"):
        message = f"value {shown} is out of range"
    elif kind == "minLength":
        message = f"empty value {shown}; fill it in or remove the key"
    elif kind == "maxLength":
        message = f"value {shown} is longer than {error.validator_value} characters"
    else:
        message = f"invalid value {shown}"
    return [RegistryProblem(file, path, message + _fix(schema))]


def parse_instant(text: str, zone: ZoneInfo, end_of_day: bool) -> datetime:
    """Parse a date or RFC 3339 date-time into an aware UTC instant.

    A date-only value means 00:00 of that day in `zone`, or 00:00 of the following
    day when `end_of_day` is set (a date-only expiry is the last valid day). A
    date-time without an offset is read in `zone`. Raises ValueError with a message
    that names the problem and the fix.
    """
    match = _DATE.match(text)
    if match:
        day = _make_date(*(int(g) for g in match.groups()))
        if end_of_day:
            day = day + timedelta(days=1)
        local = datetime.combine(day, time(0, 0), tzinfo=zone)
        return local.astimezone(timezone.utc)
    match = _DATETIME.match(text)
    if not match:
        raise ValueError(
            "not a date or date-time; use a date such as 2026-12-31 "
            "or an RFC 3339 date-time such as 2026-12-31T18:00:00Z"
        )
    year, month, day_of_month, hour, minute = (int(g) for g in match.groups()[:5])
    second = int(match.group(6) or 0)
    fraction = match.group(7) or ""
    offset = match.group(8)
    day = _make_date(year, month, day_of_month)
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(
            f"time {hour:02d}:{minute:02d}:{second:02d} does not exist; "
            "use 00:00:00 to 23:59:59 (for the end of a day, give the next day "
            "at 00:00)"
        )
    microsecond = int((fraction[1:] + "000000")[:6]) if fraction else 0
    if offset is None:
        tzinfo: Any = zone
    elif offset in ("Z", "z"):
        tzinfo = timezone.utc
    else:
        sign = 1 if offset[0] == "+" else -1
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError(f"offset {offset} does not exist; use -23:59 to +23:59")
        tzinfo = timezone(sign * timedelta(hours=hours, minutes=minutes))
    local = datetime(
        day.year, day.month, day.day, hour, minute, second, microsecond, tzinfo=tzinfo
    )
    return local.astimezone(timezone.utc)


def _make_date(year: int, month: int, day: int) -> date:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError(f"year {year} is out of range; use {MIN_YEAR} to {MAX_YEAR}")
    try:
        return date(year, month, day)
    except ValueError as exc:
        raise ValueError(
            f"{year:04d}-{month:02d}-{day:02d} is not a calendar date ({exc}); "
            "use a real date"
        ) from None


def format_instant(value: datetime) -> str:
    """Render an instant as RFC 3339 UTC with a Z suffix."""
    text = value.astimezone(timezone.utc).isoformat()
    return text.replace("+00:00", "Z")


def _join(
    documents: list[tuple[str, dict[str, Any]]],
    written_license_names: set[str],
) -> tuple[Registry, list[RegistryProblem]]:
    problems: list[RegistryProblem] = []
    zone_name = "UTC"
    zone_file = None
    for path, data in documents:
        if "timezone" not in data:
            continue
        name = data["timezone"]
        if zone_file is not None and name != zone_name:
            problems.append(
                RegistryProblem(
                    path,
                    "timezone",
                    f"{name!r} differs from {zone_name!r} set in {zone_file}; "
                    "set the same timezone in every file or in one file only",
                )
            )
            continue
        try:
            ZoneInfo(name)
            # `localtime` and `posixrules` load from the zone folder but follow
            # the host's settings; only names of the IANA database are accepted.
            if name not in _iana_zone_names():
                raise ZoneInfoNotFoundError(name)
        # A folder of the zone database (America) or an overlong name is an OSError.
        except (ZoneInfoNotFoundError, ValueError, OSError):
            problems.append(
                RegistryProblem(
                    path,
                    "timezone",
                    f"unknown time zone {name!r}; use an IANA name such as UTC, "
                    "Europe/Berlin or Asia/Shanghai",
                )
            )
            continue
        zone_name, zone_file = name, path
    zone = ZoneInfo(zone_name)

    licenses: dict[str, License] = {}
    license_origin: dict[str, str] = {}
    id_origin: dict[str, str] = {}
    instances: list[Instance] = []
    instance_origin: dict[tuple[str, str], str] = {}
    renewals: dict[str, Renewal] = {}
    renewal_origin: dict[str, str] = {}
    references: list[tuple[str, str, str]] = []
    # Names of licenses rejected for other reasons: references to them are not
    # reported a second time.
    invalid_licenses: set[str] = set(written_license_names)

    for path, data in documents:
        for index, item in enumerate(data.get("licenses") or []):
            if item is None:
                continue
            where = f"licenses[{index}]"
            parsed = _build_license(path, where, item, zone, problems)
            if parsed is None:
                invalid_licenses.add(item["name"])
                continue
            if parsed.name in licenses:
                problems.append(
                    RegistryProblem(
                        path,
                        f"{where}.name",
                        f"duplicate license name {parsed.name!r}, first defined at "
                        f"{license_origin[parsed.name]}; give each license its own "
                        "name",
                    )
                )
                continue
            if parsed.id in id_origin:
                problems.append(
                    RegistryProblem(
                        path,
                        f"{where}.id",
                        f"the same License ID (value hidden) as {id_origin[parsed.id]}; "
                        "register each license once and let instances share it by "
                        "name",
                    )
                )
                continue
            licenses[parsed.name] = parsed
            license_origin[parsed.name] = f"{path}: {where}"
            id_origin[parsed.id] = f"{path}: {where}"
        for index, item in enumerate(data.get("instances") or []):
            if item is None:
                continue
            where = f"instances[{index}]"
            instance = Instance(
                cluster=item["cluster"],
                namespace=item["namespace"],
                license=item["license"],
                environment=item["environment"],
                owner=(item.get("owner") or "").strip(),
                department=(item.get("department") or "").strip(),
                api_url=item.get("api_url"),
            )
            if instance.key in instance_origin:
                problems.append(
                    RegistryProblem(
                        path,
                        where,
                        f"instance {instance.cluster}/{instance.namespace} is already "
                        f"registered at {instance_origin[instance.key]}; register each "
                        "namespace once",
                    )
                )
                continue
            instance_origin[instance.key] = f"{path}: {where}"
            instances.append(instance)
            references.append((path, f"{where}.license", instance.license))
        for index, item in enumerate(data.get("renewals") or []):
            if item is None:
                continue
            where = f"renewals[{index}]"
            renewal = Renewal(
                license=item["license"],
                notice_days=tuple(
                    sorted(item.get("notice_days") or DEFAULT_NOTICE_DAYS, reverse=True)
                ),
                requester=(item.get("requester") or "").strip(),
                activator=(item.get("activator") or "").strip(),
            )
            if renewal.license in renewals:
                problems.append(
                    RegistryProblem(
                        path,
                        f"{where}.license",
                        f"license {renewal.license!r} already has a renewal entry at "
                        f"{renewal_origin[renewal.license]}; merge the two entries",
                    )
                )
                continue
            renewals[renewal.license] = renewal
            renewal_origin[renewal.license] = f"{path}: {where}"
            references.append((path, f"{where}.license", renewal.license))

    for path, where, name in references:
        if name in licenses or name in invalid_licenses:
            continue
        known = sorted(licenses)
        hint = difflib.get_close_matches(name, known, n=1)
        suggestion = f"did you mean {hint[0]!r}? " if hint else ""
        problems.append(
            RegistryProblem(
                path,
                where,
                f"license {name!r} is not in the license registry; {suggestion}"
                "use the name of an entry under licenses",
            )
        )

    registry = Registry(
        timezone=zone_name,
        licenses=licenses,
        instances=tuple(instances),
        renewals=renewals,
    )
    return registry, problems


def _build_license(
    path: str,
    where: str,
    item: dict[str, Any],
    zone: ZoneInfo,
    problems: list[RegistryProblem],
) -> License | None:
    instants: dict[str, datetime | None] = {}
    for key, end_of_day in (
        ("effective", False),
        ("expires", True),
        ("last_refreshed", False),
    ):
        text = item.get(key)
        if text is None:
            instants[key] = None
            continue
        try:
            instants[key] = parse_instant(text, zone, end_of_day)
        except (ValueError, OverflowError) as exc:
            problems.append(
                RegistryProblem(path, f"{where}.{key}", f"invalid value {text!r}: {exc}")
            )
            return None
    effective, expires = instants["effective"], instants["expires"]
    assert effective is not None and expires is not None
    if effective >= expires:
        problems.append(
            RegistryProblem(
                path,
                f"{where}.effective",
                f"effective {item['effective']!r} is not before expires "
                f"{item['expires']!r}; the license must start before it expires",
            )
        )
        return None
    bound = item["bound_to"]
    return License(
        id=item["id"],
        name=item["name"],
        effective=effective,
        expires=expires,
        mode=item["mode"],
        bound_cluster=bound["cluster"],
        bound_namespace=bound["namespace"],
        last_refreshed=instants["last_refreshed"],
    )
