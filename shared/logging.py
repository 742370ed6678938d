"""structlog set-up shared by the three services: JSON lines, one redaction processor.

Call :func:`configure_logging` once at start-up. Standard-library loggers (aiohttp, botocore,
websockets) are routed through the same chain, so the redaction processor sees their records
too; no call site can forget it.

structlog is imported on the first line that is actually written, not before: ``cr-agent
scan`` is a short-lived process started many times and, at its default level, logs nothing,
so importing structlog at start-up (~12 ms on a slow machine) would be pure cost. Until then
:func:`get_logger` hands out :class:`LazyLogger` proxies whose level check is the stdlib's
cached ``isEnabledFor``, and the stdlib handler carries a formatter that builds structlog's
``ProcessorFormatter`` on the first record it formats.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from shared.redaction import SECRETS, redaction_processor

if TYPE_CHECKING:
    from structlog.typing import EventDict, Processor, WrappedLogger

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


class _Config:
    """What the last :func:`configure_logging` asked of structlog and has not yet applied."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.configured = False  # False: structlog's own defaults apply, as they did before
        self.pending: str | None = None  # the service of a configuration not yet applied


_config = _Config()


def configure_logging(
    level: str | int = "info",
    *,
    service: str,
    debug: bool = False,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and stdlib logging to write redacted JSON lines to ``stream``.

    ``debug`` turns on wire-level detail from the libraries (aiohttp, websockets); it still
    goes through the redaction processor. The stdlib side takes effect now; structlog itself
    is imported and configured when the first line gets through.
    """
    numeric = parse_level(level)
    if debug:
        numeric = logging.DEBUG
    out = stream or sys.stdout
    with _config.lock:
        _config.configured = True
        _config.pending = service
    if "structlog" in sys.modules:
        # already paid for (the service imports it): configure now, as before, so that a
        # structlog.configure made after this call (capture_logs in a test) is not overridden
        _configure_structlog()
    handler = logging.StreamHandler(out)
    handler.setFormatter(_DeferredFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # library chatter only when DEBUG asks for wire-level detail
    for name in ("aiohttp", "botocore", "boto3", "urllib3", "asyncio"):
        logging.getLogger(name).setLevel(logging.DEBUG if debug else max(numeric, logging.WARNING))
    # never websockets' frame dumps: it cuts each frame to a few dozen characters *before* any
    # redaction could see it, so a secret split by the cut would be logged in part; the
    # services log frames themselves, redacted first and cut after
    logging.getLogger("websockets").setLevel(
        logging.INFO if debug else max(numeric, logging.WARNING)
    )
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequests) for f in server_log.filters):
        server_log.addFilter(MalformedRequests())


class MalformedRequests(logging.Filter):
    """aiohttp logs a request its parser refuses (a URL or header over 8190 bytes, a broken
    request line) at error level with a traceback, though it answered 400 and nothing failed:
    any peer could fill the log with them. Such a record becomes one warning line saying what
    was refused and from where, without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        errors = sys.modules.get("aiohttp.http_exceptions")  # loaded wherever aiohttp serves
        if exc is None or errors is None or not isinstance(exc, errors.HttpProcessingError):
            return True
        said = str(getattr(exc, "message", "") or exc).strip().splitlines()
        context = record.getMessage()  # "Error handling request from <peer>"
        record.msg = "refused a malformed HTTP request (%s): %s; %s"
        record.args = (type(exc).__name__, said[0][:200] if said else "", context)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        return True


def _shared_processors(service: str) -> list[Processor]:
    """The chain both structlog's and the stdlib's lines pass, ending in redaction."""
    import structlog

    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _add_service(service),
        redaction_processor,
    ]


def _configure_structlog() -> None:
    """Apply the configuration :func:`configure_logging` left pending, if there is one.

    Pending only when nothing had imported structlog at that call, so nothing can have
    configured structlog before it; a direct ``structlog.configure`` made between that call
    and the first line is the one case this overrides.
    """
    if _config.pending is None:
        return
    with _config.lock:
        service = _config.pending
        if service is None:
            return
        import structlog

        structlog.configure(
            processors=[
                structlog.stdlib.filter_by_level,
                *_shared_processors(service),
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=False,
        )
        _config.pending = None


class _DeferredFormatter(logging.Formatter):
    """The root handler's formatter: structlog's ``ProcessorFormatter``, built on first use.

    Records reach it only after the level checks, so a process that logs nothing never builds
    it; every record that does get here, whichever library wrote it, is redacted.
    """

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service
        self._lock = threading.Lock()
        self._formatter: logging.Formatter | None = None

    def _build(self) -> logging.Formatter:
        import structlog

        return structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.ExtraAdder(),
                *_shared_processors(self._service),
            ],
            # no redaction here: both ways in (structlog's chain and foreign_pre_chain) end in it
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(default=str),
            ],
        )

    def format(self, record: logging.LogRecord) -> str:
        formatter = self._formatter
        if formatter is None:
            with self._lock:
                if self._formatter is None:
                    self._formatter = self._build()
                formatter = self._formatter
        return formatter.format(record)


def _add_service(service: str) -> Processor:
    def processor(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return processor


def _level_method(level: int, name: str) -> Callable[..., Any]:
    """``LazyLogger.<name>``: the level check first; structlog only for a line that passes."""

    def method(self: LazyLogger, event: str | None = None, *args: Any, **kw: Any) -> Any:
        if self._enabled(level):
            return getattr(self._bound(), name)(event, *args, **kw)
        return None

    method.__name__ = name
    method.__qualname__ = f"LazyLogger.{name}"
    return method


class LazyLogger:
    """Stands in for a structlog stdlib ``BoundLogger`` until a line passes the level check.

    A call below the configured level costs one cached stdlib level lookup and never imports
    structlog; a call that passes goes to a real bound logger built from the current
    configuration. ``bind`` and friends only copy the context, so they stay cheap too.
    Anything else (``name``, ``isEnabledFor``, ...) is answered by the real logger.
    """

    __slots__ = ("_context", "_name", "_proxy", "_stdlib")

    def __init__(self, name: str | None, context: dict[str, Any] | None = None) -> None:
        self._name = name
        self._context: dict[str, Any] = context if context is not None else {}
        # the logger structlog's LoggerFactory would wrap: root for None, as there
        self._stdlib = logging.getLogger(name)
        self._proxy: Any = None

    def _enabled(self, level: int) -> bool:
        # never configured: structlog's own default (print every level) applies, as before
        return not _config.configured or self._stdlib.isEnabledFor(level)

    def _bound(self) -> Any:
        _configure_structlog()
        proxy = self._proxy
        if proxy is None:
            import structlog

            # structlog's own lazy proxy binds a fresh logger from the current configuration
            # on every call (cache_logger_on_first_use=False), so a later structlog.configure
            # (a reconfiguration, structlog.testing.capture_logs) still reaches this logger
            proxy = self._proxy = structlog.stdlib.get_logger(self._name, **self._context)
        return proxy

    debug = _level_method(logging.DEBUG, "debug")
    info = _level_method(logging.INFO, "info")
    warning = warn = _level_method(logging.WARNING, "warning")
    error = _level_method(logging.ERROR, "error")
    exception = _level_method(logging.ERROR, "exception")
    critical = fatal = _level_method(logging.CRITICAL, "critical")

    def log(self, level: int, event: str | None = None, *args: Any, **kw: Any) -> Any:
        if self._enabled(level):
            return self._bound().log(level, event, *args, **kw)
        return None

    def bind(self, **new_values: Any) -> LazyLogger:
        return LazyLogger(self._name, {**self._context, **new_values})

    def new(self, **new_values: Any) -> LazyLogger:
        return LazyLogger(self._name, dict(new_values))

    def unbind(self, *keys: str) -> LazyLogger:
        """Drop ``keys`` from the context; KeyError for a key that is not bound, as structlog."""
        context = dict(self._context)
        for key in keys:
            del context[key]
        return LazyLogger(self._name, context)

    def try_unbind(self, *keys: str) -> LazyLogger:
        context = dict(self._context)
        for key in keys:
            context.pop(key, None)
        return LazyLogger(self._name, context)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._bound(), name)

    def __repr__(self) -> str:
        return f"<LazyLogger {self._name!r} context={self._context!r}>"


def get_logger(name: str | None = None) -> LazyLogger:
    """A structlog logger; every event it emits passes the redaction processor.

    structlog itself is loaded on the first line that passes the configured level.
    """
    return LazyLogger(name)


def register_secrets(*values: str | None) -> None:
    """Add values the redaction processor must remove from every log line."""
    SECRETS.add(*values)
