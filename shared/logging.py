"""structlog set-up shared by the three services: JSON lines, one redaction processor.

Call :func:`configure_logging` once at start-up. Standard-library loggers (aiohttp, botocore,
websockets) are routed through the same chain, so the redaction processor sees their records
too; no call site can forget it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from shared.redaction import SECRETS, redaction_processor

LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "critical": logging.CRITICAL,
}


def parse_level(level: str | int) -> int:
    """Map a ``LOG_LEVEL`` value to a logging level; raises ValueError naming the value."""
    if isinstance(level, int):
        return level
    try:
        return LEVELS[level.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}") from None


def configure_logging(
    level: str | int = "info",
    *,
    service: str,
    debug: bool = False,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and stdlib logging to write redacted JSON lines to ``stream``.

    ``debug`` turns on wire-level detail from the libraries (aiohttp, websockets); it still
    goes through the redaction processor.
    """
    numeric = parse_level(level)
    if debug:
        numeric = logging.DEBUG
    out = stream or sys.stdout
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _add_service(service),
        redaction_processor,
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared_processors,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.ExtraAdder(),
                *shared_processors,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                redaction_processor,
                structlog.processors.JSONRenderer(default=str),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # library chatter only when DEBUG asks for wire-level detail
    for name in ("aiohttp", "websockets", "botocore", "boto3", "urllib3", "asyncio"):
        logging.getLogger(name).setLevel(logging.DEBUG if debug else max(numeric, logging.WARNING))


def _add_service(service: str) -> Any:
    def processor(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    return processor


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; every event it emits passes the redaction processor."""
    return structlog.stdlib.get_logger(name)


def register_secrets(*values: str | None) -> None:
    """Add values the redaction processor must remove from every log line."""
    SECRETS.add(*values)
