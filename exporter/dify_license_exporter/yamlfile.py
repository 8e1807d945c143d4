"""Strict YAML reading for registries and Helm values files.

Parsing uses libyaml when PyYAML was built with it. Scalars follow the YAML 1.2 core
schema: only true and false are booleans and dates stay strings, so `off`, `no` or
`2026-01-01` reach the validators as written. Duplicate keys, multi-document streams
and oversized or explosive inputs are errors.
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
from dataclasses import dataclass
from typing import Any

import yaml

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
    from yaml.cyaml import CParser as _EventParser
else:  # pragma: no cover - PyYAML without libyaml

    class _EventParser(  # type: ignore[no-redef]
        yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser
    ):
        """Pure-Python event parser, used when PyYAML lacks libyaml."""

        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)

        def dispose(self) -> None:
            pass


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
    """Read a file's bytes, at most MAX_FILE_BYTES + 1 of them; raises OSError.

    Only regular files are read: opening a FIFO would block forever, and a
    device could be endless.
    """
    info = os.stat(path)
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, "not a regular file", path)
    with open(path, "rb") as handle:
        return handle.read(MAX_FILE_BYTES + 1)


def describe_os_error(error: OSError) -> str:
    """Describe why a file cannot be read, with the fix for that cause."""
    if isinstance(error, FileNotFoundError):
        return "file not found; check the path"
    if isinstance(error, IsADirectoryError):
        return "is a folder, not a file; give the path of the file inside it"
    if isinstance(error, PermissionError):
        return "permission denied; make the file readable by the exporter's user"
    if error.errno == errno.ELOOP:
        return "symbolic link loop; point the link at a real file"
    if error.errno == errno.EINVAL and error.strerror == "not a regular file":
        return "not a regular file (a FIFO, socket or device); give a regular file"
    return f"cannot read the file: {error.strerror}; check the path and permissions"


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

    Values are built straight from the parser's events. A node tree of a
    5,000-instance registry would take about 65 MiB, the values about 10 MiB.
    """
    parser = _EventParser(text)
    builder = _Builder(parser)
    try:
        return builder.build_stream(), builder.problems
    except yaml.YAMLError as exc:
        raise YamlError([YamlProblem("", _describe_yaml_error(exc, text))]) from None
    finally:
        parser.dispose()


def _describe_yaml_error(exc: yaml.YAMLError, text: str = "") -> str:
    if isinstance(exc, yaml.reader.ReaderError) and text:
        # The reader reports a character offset, not a line.
        before = text[: exc.position]
        line = before.count("\n") + 1
        column = exc.position - (before.rfind("\n") + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return (
            f"invalid YAML at line {line}, column {column}: the character U+{code:04X} "
            "is not allowed; remove it, or write it as an escape in a double-quoted "
            "string"
        )
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


def type_name(value: Any) -> str:
    """Name the type of a parsed YAML value in YAML's words, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def join_path(path: str, key: Any) -> str:
    """Extend a field path: `licenses` + 2 -> `licenses[2]`, + `id` -> `.id`."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    if key is None:
        key = "null"
    return f"{path}.{key}" if path else str(key)


class _Builder:
    """Build Python values from parser events, tracking field paths for messages.

    An anchored value is built once; each alias to it reuses the same object and
    adds the anchored value's size to the node count, so alias bombs still hit
    MAX_NODES. Problems inside an anchored value are thus reported once.
    """

    def __init__(self, parser: Any) -> None:
        self.parser = parser
        self.problems: list[YamlProblem] = []
        self.count = 0
        # anchor -> (value, node count, nesting height)
        self.anchors: dict[str, tuple[Any, int, int]] = {}

    def build_stream(self) -> Any:
        self.parser.get_event()  # StreamStartEvent
        if isinstance(self.parser.peek_event(), yaml.StreamEndEvent):
            return None
        self.parser.get_event()  # DocumentStartEvent
        data, _height = self._build(self.parser.get_event(), "", 0)
        self.parser.get_event()  # DocumentEndEvent
        if not isinstance(self.parser.get_event(), yaml.StreamEndEvent):
            raise YamlError(
                [
                    YamlProblem(
                        "",
                        "contains several YAML documents; keep one document per file",
                    )
                ]
            )
        return data

    def _add_nodes(self, path: str, nodes: int) -> None:
        self.count += nodes
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

    def _check_depth(self, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise YamlError(
                [
                    YamlProblem(
                        path,
                        f"nested deeper than {MAX_DEPTH} levels; flatten the document",
                    )
                ]
            )

    def _build(self, event: Any, path: str, depth: int) -> tuple[Any, int]:
        """Build the value that starts with `event`; return it and its height."""
        self._check_depth(path, depth)
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in self.anchors:
                raise YamlError(
                    [
                        YamlProblem(
                            path,
                            f"alias *{event.anchor} is not defined before this point; "
                            "define the anchor first (recursive anchors are not "
                            "supported)",
                        )
                    ]
                )
            value, nodes, height = self.anchors[event.anchor]
            self._add_nodes(path, nodes)
            self._check_depth(path, depth + height)
            return value, height
        first = self.count
        self._add_nodes(path, 1)
        if isinstance(event, yaml.ScalarEvent):
            value, height = self._build_scalar(event, path), 0
        else:
            if event.tag is not None and event.tag not in _COLLECTION_TAGS:
                # A tag such as !!python/object/apply on a list would otherwise be
                # dropped silently; it never belongs in a registry or Helm values.
                self.problems.append(
                    YamlProblem(path, f"unsupported tag {event.tag}; remove the tag")
                )
            if isinstance(event, yaml.SequenceStartEvent):
                value, height = self._build_sequence(path, depth)
            else:
                value, height = self._build_mapping(path, depth)
        if event.anchor is not None:
            self.anchors[event.anchor] = (value, self.count - first, height)
        return value, height

    def _build_sequence(self, path: str, depth: int) -> tuple[list, int]:
        result = []
        height = 0
        while not isinstance(event := self.parser.get_event(), yaml.SequenceEndEvent):
            item, item_height = self._build(event, join_path(path, len(result)), depth + 1)
            result.append(item)
            height = max(height, item_height + 1)
        return result, height

    def _build_mapping(self, path: str, depth: int) -> tuple[dict, int]:
        result: dict[Any, Any] = {}
        height = 0
        while not isinstance(key_event := self.parser.get_event(), yaml.MappingEndEvent):
            line = key_event.start_mark.line + 1
            is_merge = isinstance(key_event, yaml.ScalarEvent) and (
                key_event.tag == "tag:yaml.org,2002:merge"
                or (key_event.value == "<<" and not key_event.style)
            )
            key, _ = self._build(key_event, path, depth + 1)
            value_event = self.parser.get_event()
            if is_merge:
                self._build(value_event, join_path(path, "<<"), depth + 1)
                self.problems.append(
                    YamlProblem(
                        join_path(path, "<<"),
                        "merge keys (<<) are not supported; write the keys out",
                    )
                )
                continue
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                self._build(value_event, path, depth + 1)
                self.problems.append(
                    YamlProblem(path, "a mapping key must be a scalar; use a plain key")
                )
                continue
            if isinstance(key, float) and math.isnan(key):
                key = "nan"
            key_path = join_path(path, key)
            value, value_height = self._build(value_event, key_path, depth + 1)
            height = max(height, value_height + 1)
            if key in result:
                self.problems.append(
                    YamlProblem(
                        key_path,
                        f"duplicate key {key!r} at line {line}; keep only one",
                    )
                )
                continue
            result[key] = value
        return result, height

    def _build_scalar(self, event: yaml.ScalarEvent, path: str) -> Any:
        value = event.value
        if event.tag not in (None, "!", _STR_TAG):
            return self._build_tagged(event, path)
        # libyaml reports plain scalars with style "", the pure parser with None.
        if event.style or event.tag is not None:
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

    def _build_tagged(self, event: yaml.ScalarEvent, path: str) -> Any:
        tag = event.tag
        value = event.value
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
        self.problems.append(
            YamlProblem(path, f"unsupported or invalid tag {tag}; remove the tag")
        )
        return value
