"""Logging set-up for the command-line entry points (the library itself never configures logging).

Library modules log through the standard ``logging`` module under the ``image2`` logger,
passing context such as ``extra={"file": path}``; this module renders those records and
structlog events alike, for people on a terminal or as one JSON object per line.
"""

from __future__ import annotations

import logging
import sys

import structlog

_SHARED = [
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure(log_format: str = "console", level: str = "INFO") -> None:
    """Send image2's log events to stderr, as readable lines or JSON, at ``level`` and above."""
    renderer = (structlog.processors.JSONRenderer() if log_format == "json"
                else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_SHARED, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    logger = logging.getLogger("image2")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.stdlib.filter_by_level, *_SHARED,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "image2.cli", **context: object) -> structlog.stdlib.BoundLogger:
    """Return a structlog logger under ``image2`` with ``context`` (e.g. ``file=``) bound."""
    return structlog.get_logger(name).bind(**context)
