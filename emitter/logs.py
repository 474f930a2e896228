"""Logging set-up: one JSON object per line for machines, readable lines for people on a terminal."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Formats records as single-line JSON with any `extra=` fields (group_id, message_id, trace_id)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class TraceContext(logging.Filter):
    """Adds the current span's trace_id to records, so a log line leads to its trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        from opentelemetry import trace  # noqa: PLC0415 - keeps import of this module cheap

        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid and not hasattr(record, "trace_id"):
            record.trace_id = f"{ctx.trace_id:032x}"
        return True


def setup_logging(level: str = "INFO", fmt: Literal["auto", "json", "text"] = "auto") -> None:
    """Configure the `emitter` loggers (and quiet the chatty libraries) on stderr."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if use_json else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    handler.addFilter(TraceContext())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("emitter").setLevel(level)
