"""Logging set-up: one line per event in logfmt or JSON, with structured fields.

Callers pass fields through `extra=`; only the names in FIELDS are rendered, so an
object carrying a secret cannot reach the log by accident.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

LEVELS = ("debug", "info", "warn", "error")
FIELDS = (
    "source",
    "reason",
    "error",
    "cluster",
    "namespace",
    "release",
    "address",
    "path",
    "interval",
    "registry",
    "instances",
    "licenses",
    "version",
)


def _fields(record: logging.LogRecord) -> dict[str, object]:
    result: dict[str, object] = {
        "ts": datetime.fromtimestamp(record.created, tz=timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "level": record.levelname.lower().replace("warning", "warn"),
        "logger": record.name.rsplit(".", 1)[-1],
        "msg": record.getMessage(),
    }
    for name in FIELDS:
        if hasattr(record, name):
            result[name] = getattr(record, name)
    if record.exc_info:
        result["exception"] = logging.Formatter().formatException(record.exc_info)
    return result


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = []
        for key, value in _fields(record).items():
            text = str(value)
            if not text or any(c in text for c in ' "=\n\\') or not text.isprintable():
                text = json.dumps(text, ensure_ascii=False)
            parts.append(f"{key}={text}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), ensure_ascii=False, default=str)


def configure(level: str = "info", fmt: str = "logfmt") -> None:
    """Send log records of this package to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    name = "WARNING" if level == "warn" else level.upper()
    root.setLevel(name)
    # The kubernetes client logs request details at debug level; keep it quieter.
    logging.getLogger("urllib3").setLevel(max(logging.INFO, root.level))
