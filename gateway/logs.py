"""How every gateway process logs: text or one JSON object per line, keys redacted.

The gateway never logs a prompt or a completion; an exception is logged by its type
and traceback only. Anything key-shaped that still reaches a message (an upstream's
error text, a URL) is replaced by ``[redacted]``.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from datetime import datetime, timezone

# Anything key-shaped: SAMALink keys, "sk-..." style provider keys, bearer tokens.
_KEY_PATTERN = re.compile(
    r"(sama_[A-Za-z0-9-]{4,}|sk-[A-Za-z0-9_-]{6,}|Bearer\s+\S+|key-[A-Za-z0-9]{8,}|AIza[0-9A-Za-z_-]{10,})"
)


def redact_keys(text: str) -> str:
    """``text`` with anything key-shaped replaced by ``[redacted]``."""
    return _KEY_PATTERN.sub("[redacted]", text)


class JsonLogFormatter(logging.Formatter):
    """One JSON object per log line (``LOG_FORMAT=json``), anything key-shaped redacted."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_keys(record.getMessage()),
            "process": record.process,
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
            entry["traceback"] = redact_keys("".join(traceback.format_tb(record.exc_info[2])))
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(log_format: str) -> None:
    """Log to stderr as text, or as one JSON object per line when ``log_format`` is ``json``."""
    if log_format == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JsonLogFormatter())
        logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
