"""Logging set-up for the command-line entry points (the library itself never configures logging).

Library modules log through the standard ``logging`` module under the ``image2`` logger,
passing context such as ``extra={"file": path}``; this module renders those records and
structlog events alike, for people on a terminal (short lines, the file named once above the
lines about it) or as one JSON object per line. structlog is imported at the first event, so
commands that log nothing (``--help``) start at once.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

_UNSHOWN = frozenset({"event", "timestamp", "level", "logger", "file", "step", "status"})
"""Fields a console line never lists as ``key=value``: shown otherwise, or not worth the room."""


def _shown(value: Any) -> str:
    """A field's value as a console line shows it: lists joined by commas, paths in them by their names."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) if " " in str(item) else os.path.basename(str(item)) for item in value)
    return str(value)


class ConsoleLines:
    """Renders an event as a short line for people: the time, the level when above info, what happened.

    An event about a file (``file=``) is preceded by a line naming the file whenever the file
    differs from the previous event's, so the lines of one input form a block under its name.
    A ``step`` event reads ``<step> <status> <seconds> s``; any other event about a step is
    prefixed with the step's name.
    """

    def __init__(self) -> None:
        self._file: str | None = None
        self._lock = threading.Lock()

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> str:
        clock = str(event.get("timestamp", ""))[11:19]
        level = str(event.get("level", "info")).lower()
        severity = "" if level in ("info", "debug") else f"{level}: "
        file = event.get("file")
        step = event.get("step")
        name = str(event.get("event", ""))
        if name == "step" and step is not None:
            text = f"{step} {str(event.get('status', '')).lower()} {float(event.get('seconds', 0.0)):.2f} s"
        else:
            text = f"{step}: {name}" if step is not None else name
            text += "".join(f" {key}={_shown(value)}" for key, value in event.items()
                            if key not in _UNSHOWN and not key.startswith("_") and value not in (None, "", [], ()))
        with self._lock:
            header = ""
            if file is not None and file != self._file:
                header = f"{clock} {os.path.basename(str(file))}\n"
            self._file = None if file is None else file
        return header + f"{clock} " + ("  " if file is not None else "") + severity + text


def _shared_processors() -> list[Any]:
    import structlog

    return [structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True)]


def _formatter(log_format: str) -> logging.Formatter:
    """Return the structlog formatter rendering records as readable lines or JSON."""
    import structlog

    renderer = structlog.processors.JSONRenderer() if log_format == "json" else ConsoleLines()
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    )


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at each record (a live display may have taken it over),
    with the structlog formatter built at the first record."""

    def __init__(self, log_format: str) -> None:
        logging.Handler.__init__(self)
        self.log_format = log_format

    @property
    def stream(self) -> Any:
        return sys.stderr

    def format(self, record: logging.LogRecord) -> str:
        if self.formatter is None:
            self.setFormatter(_formatter(self.log_format))
        return super().format(record)


def configure(log_format: str = "console", level: str = "INFO") -> None:
    """Send image2's log events to stderr, as readable lines or JSON, at ``level`` and above."""
    logger = logging.getLogger("image2")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(_StderrHandler(log_format))
    logger.setLevel(level.upper())
    logger.propagate = False


def _route_structlog() -> None:
    """Have structlog events go through the standard ``image2`` logger (and so through configure's handler)."""
    import structlog

    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.stdlib.filter_by_level,
                    *_shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "image2.cli", **context: object) -> Any:
    """Return a structlog logger under ``image2`` with ``context`` (e.g. ``file=``) bound."""
    import structlog

    _route_structlog()
    return structlog.get_logger(name).bind(**context)
