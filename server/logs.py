"""Logging: one JSON object per line (or plain text), tagged with the id of what is being served.

`configure(settings)` installs one stderr handler on the root logger (uvicorn's loggers
propagate to it). `request_id` is a context variable: the HTTP middleware sets it per request
(and returns it as ``X-Request-ID``), a WebSocket session per message to its connection id; every
record logged meanwhile carries it.

JSON lines: ``{"ts", "level", "logger", "msg", "request_id"?, ...extra fields, "exc"?}``; fields
passed with ``extra={...}`` become keys. Nothing here adds secrets: tokens, passwords and
webhook secrets are never passed to a log call (tests/test_logs.py runs a server with known
secrets through failures and greps its output).
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import sys
from typing import IO

from server.errors import ConfigError
from server.settings import Settings

__all__ = ["JsonFormatter", "configure", "handler", "request_id"]

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("giftcast_request_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=` (uvicorn's
# "color_message" is its msg with terminal colour codes: dropped).
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "request_id", "color_message"}
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if getattr(record, "request_id", "-") != "-":
            entry["request_id"] = record.request_id
        for key, value in vars(record).items():
            if key not in _STANDARD:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def handler(stream: IO[str], log_format: str) -> logging.Handler:
    """A handler writing `log_format` ("json" or "plain") records, with request ids, to `stream`."""
    out = logging.StreamHandler(stream)
    out.addFilter(_RequestIdFilter())
    out.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(PLAIN_FORMAT))
    return out


def configure(settings: Settings) -> None:
    """Root logging for `python -m server serve`: level and format from the settings, to stderr."""
    level = logging.getLevelNamesMapping().get(settings.log_level.upper())
    if level is None:
        raise ConfigError(f"GIFTCAST_LOG_LEVEL={settings.log_level!r} is not a logging level")
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler(sys.stderr, settings.log_format))
    root.setLevel(level)
    # websockets' protocol logs every handshake request line and header at DEBUG: tokens in the
    # query string and Authorization headers included. Never below INFO, whatever the level.
    logging.getLogger("websockets").setLevel(max(level, logging.INFO))
