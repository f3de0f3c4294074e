"""Logging set-up for the ``loaphuong`` command: text lines, or one JSON object per line.

JSON (``--log-json`` or ``LOAPHUONG_LOG_JSON=true``) is for log shippers (journald → Loki, Vector,
Elasticsearch): each record is ``{"ts", "level", "logger", "msg", ...}`` with the record's extra
fields (``logger.info("...", extra={"broadcast": bc})``) beside them and ``exc`` holding a
traceback; nothing else is printed on the line.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
NOISY = ("amqtt", "transitions", "apscheduler.executors", "uvicorn.access")

#: Attributes every LogRecord has: anything else on a record came in through ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime",
                                                                                   "taskName"}
_OWN = ("ts", "level", "logger", "msg")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key if key not in _OWN else f"extra_{key}"] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


_MINE = "_loaphuong_handler"


def configure_logging(*, verbose: bool = False, json_lines: bool = False) -> None:
    """The root logger to stderr, as text or JSON lines (replacing any handler set before)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    setattr(handler, _MINE, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MINE, False)]:  # ours from a call before
        root.removeHandler(old)
        old.close()
    # only our own handler is replaced: one a host process installed (pytest's log capture, an
    # embedding service) stays, where basicConfig(force=True) would have removed it
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def json_from_env(value: str | None) -> bool:
    """``LOAPHUONG_LOG_JSON`` read as pydantic reads a bool (before the settings are loaded)."""
    return (value or "").strip().lower() in ("1", "true", "yes", "on", "y", "t")
