"""Strict YAML reading for registries and Helm values files.

Parsing uses libyaml when PyYAML was built with it. Scalars follow the YAML 1.2 core
schema: only true and false are booleans and dates stay strings, so `off`, `no` or
`2026-01-01` reach the validators as written. Duplicate keys, multi-document streams
and oversized or explosive inputs are errors.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import yaml
import yaml.resolver

# A registry of 20,000 instances is about 5 MiB; 16 MiB leaves room for comments.
MAX_FILE_BYTES = 16 * 1024 * 1024
# Nodes built after expanding aliases. Guards against "billion laughs" documents.
MAX_NODES = 2_000_000
MAX_DEPTH = 64

_STR_TAG = "tag:yaml.org,2002:str"
_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL_TRUE = re.compile(r"^(?:true|True|TRUE)$")
_BOOL_FALSE = re.compile(r"^(?:false|False|FALSE)$")
_INT_DEC = re.compile(r"^[-+]?[0-9]+$")
_INT_OCT = re.compile(r"^0o[0-7]+$")
_INT_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")

if getattr(yaml, "__with_libyaml__", False):
    from yaml.cyaml import CParser

    class _Composer(CParser, yaml.resolver.BaseResolver):
        """libyaml parser that tags every plain scalar as a string."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            yaml.resolver.BaseResolver.__init__(self)

else:  # pragma: no cover - PyYAML without libyaml

    class _Composer(  # type: ignore[no-redef]
        yaml.reader.Reader,
        yaml.scanner.Scanner,
        yaml.parser.Parser,
        yaml.composer.Composer,
        yaml.resolver.BaseResolver,
    ):
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)
            yaml.resolver.BaseResolver.__init__(self)


@dataclass(frozen=True)
class YamlProblem:
    """One problem found while reading a YAML file."""

    path: str
    message: str


class YamlError(Exception):
    """The file cannot be parsed at all; `problems` lists why."""

    def __init__(self, problems: list[YamlProblem]):
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


def read_text(path: str) -> str:
    """Read a file as UTF-8 text, enforcing MAX_FILE_BYTES.

    Raises OSError when the file cannot be read and YamlError when it is too large
    or not UTF-8.
    """
    return decode_text(read_bytes(path))


def read_bytes(path: str) -> bytes:
    """Read a file's bytes, at most MAX_FILE_BYTES + 1 of them; raises OSError."""
    with open(path, "rb") as handle:
        return handle.read(MAX_FILE_BYTES + 1)


def decode_text(data: bytes) -> str:
    """Decode bytes read by `read_bytes` as UTF-8 text, enforcing MAX_FILE_BYTES.

    Raises YamlError when the data is too large or not UTF-8.
    """
    if len(data) > MAX_FILE_BYTES:
        raise YamlError(
            [
                YamlProblem(
                    "",
                    f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; "
                    "split it into several files",
                )
            ]
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError(
            [
                YamlProblem(
                    "",
                    f"not valid UTF-8 at byte {exc.start}; save the file as UTF-8",
                )
            ]
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


def parse(text: str) -> tuple[Any, list[YamlProblem]]:
    """Parse one YAML document into plain Python values.

    Returns the data and the list of non-fatal problems (duplicate keys, unsupported
    tags). Raises YamlError when the text is not YAML, has several documents, or
    exceeds the node or depth limits.
    """
    composer = _Composer(text)
    try:
        node = composer.get_single_node()
    except yaml.composer.ComposerError as exc:
        raise YamlError([YamlProblem("", _describe_yaml_error(exc))]) from None
    except yaml.YAMLError as exc:
        raise YamlError([YamlProblem("", _describe_yaml_error(exc))]) from None
    finally:
        composer.dispose()
    if node is None:
        return None, []
    builder = _Builder()
    data = builder.build(node, "", 0)
    return data, builder.problems


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if "expected a single document" in str(exc):
        return "contains several YAML documents; keep one document per file"
    if mark is not None:
        return (
            f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: "
            f"{problem}; fix the syntax there"
        )
    return f"invalid YAML: {problem}"


def join_path(path: str, key: Any) -> str:
    """Extend a field path: `licenses` + 2 -> `licenses[2]`, + `id` -> `.id`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


class _Builder:
    """Build Python values from YAML nodes, tracking field paths for messages."""

    def __init__(self) -> None:
        self.problems: list[YamlProblem] = []
        self.count = 0
        self.reported: set[int] = set()

    def _report_once(self, node: yaml.Node, path: str, message: str) -> None:
        """Record a problem of a node once, however often aliases repeat the node."""
        if id(node) in self.reported:
            return
        self.reported.add(id(node))
        self.problems.append(YamlProblem(path, message))

    def build(self, node: yaml.Node, path: str, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise YamlError(
                [
                    YamlProblem(
                        path,
                        f"more than {MAX_NODES} values after expanding aliases; "
                        "remove recursive or repeated anchors",
                    )
                ]
            )
        if depth > MAX_DEPTH:
            raise YamlError(
                [
                    YamlProblem(
                        path,
                        f"nested deeper than {MAX_DEPTH} levels; flatten the document",
                    )
                ]
            )
        if isinstance(node, yaml.CollectionNode) and node.tag not in _COLLECTION_TAGS:
            # A tag such as !!python/object/apply on a list would otherwise be
            # dropped silently; it never belongs in a registry or Helm values.
            self._report_once(node, path, f"unsupported tag {node.tag}; remove the tag")
        if isinstance(node, yaml.MappingNode):
            return self._build_mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [
                self.build(item, join_path(path, index), depth + 1)
                for index, item in enumerate(node.value)
            ]
        return self._build_scalar(node, path)

    def _build_mapping(self, node: yaml.MappingNode, path: str, depth: int) -> dict:
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or (
                isinstance(key_node, yaml.ScalarNode)
                and key_node.value == "<<"
                and not key_node.style
            ):
                self.problems.append(
                    YamlProblem(
                        join_path(path, "<<"),
                        "merge keys (<<) are not supported; write the keys out",
                    )
                )
                continue
            key = self.build(key_node, path, depth + 1)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                self.problems.append(
                    YamlProblem(path, "a mapping key must be a scalar; use a plain key")
                )
                continue
            if isinstance(key, float) and math.isnan(key):
                key = "nan"
            key_path = join_path(path, key)
            if key in result:
                self.problems.append(
                    YamlProblem(
                        key_path,
                        f"duplicate key {key!r} at line {key_node.start_mark.line + 1}; "
                        "keep only one",
                    )
                )
                continue
            result[key] = self.build(value_node, key_path, depth + 1)
        return result

    def _build_scalar(self, node: yaml.ScalarNode, path: str) -> Any:
        value = node.value
        if node.tag != _STR_TAG:
            return self._build_tagged(node, path)
        # libyaml reports plain scalars with style "", the pure parser with None.
        if node.style:
            return value
        if _NULL.match(value):
            return None
        if _BOOL_TRUE.match(value):
            return True
        if _BOOL_FALSE.match(value):
            return False
        if _INT_DEC.match(value):
            return int(value)
        if _INT_OCT.match(value):
            return int(value[2:], 8)
        if _INT_HEX.match(value):
            return int(value[2:], 16)
        if _FLOAT.match(value):
            return float(value)
        if _INF.match(value):
            return -math.inf if value.startswith("-") else math.inf
        if _NAN.match(value):
            return math.nan
        return value

    def _build_tagged(self, node: yaml.ScalarNode, path: str) -> Any:
        tag = node.tag
        value = node.value
        try:
            if tag == "tag:yaml.org,2002:int":
                return int(value, 0)
            if tag == "tag:yaml.org,2002:float":
                return float(value)
            if tag == "tag:yaml.org,2002:bool":
                if value in ("true", "false"):
                    return value == "true"
            if tag == "tag:yaml.org,2002:null":
                return None
        except ValueError:
            pass
        # The value is not echoed: a tagged scalar may be a password or a key.
        self._report_once(node, path, f"unsupported or invalid tag {tag}; remove the tag")
        return value
