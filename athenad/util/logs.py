"""structlog set-up of the daemon and its workers, and the logger of library code.

Only the daemon and the workers configure structlog (JSON lines); importing athenad
configures nothing, so a program using the library keeps its own set-up, and a
command-line tool's warnings reach stderr through Python's logging. structlog itself is
imported only when something logs or configures it: it costs a command more to import
than most commands take to run.

Events are stable snake_case names with key-value context, rendered as JSON lines
(one object per line, ending with a newline) so the log file can be grepped and
parsed.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from typing import Any, TextIO

import msgspec

_encoder = msgspec.json.Encoder(enc_hook=str)  # anything unusual is logged as its str()


def _encode_json(event: dict[str, Any], **_options: object) -> str:
    # msgspec rather than the json module: a log line per job is on the hot path.
    return _encoder.encode(event).decode()


def configure_logging(
    stream: TextIO | None = None, *, level: str = "info", json: bool = True
) -> None:
    """Send structlog events to ``stream`` (default stderr) as JSON lines or console text."""
    import structlog

    renderer = (
        structlog.processors.JSONRenderer(serializer=_encode_json)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=_SafePrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=True,
    )


class _SafePrintLoggerFactory:
    """structlog's print loggers, but a line the stream refuses (a full disk, a closed
    pipe) is dropped: logging never raises into the code that logs."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, *args: Any) -> Any:
        return _safe_print_logger()(self.stream)


@functools.cache
def _safe_print_logger() -> Any:
    import structlog

    class SafePrintLogger(structlog.PrintLogger):
        def msg(self, message: str) -> None:
            with contextlib.suppress(OSError, ValueError):
                super().msg(message)

        log = debug = info = warn = warning = msg
        fatal = failure = err = error = critical = exception = msg

    return SafePrintLogger


class LibraryLogger:
    """The logger of library code (sessions, checkpoints, backups).

    When the program configured structlog (the daemon, the CLIs and most applications
    do), events go through that set-up. Otherwise they go to Python's ``logging`` under
    ``name``, as a library's should: nothing is printed on stdout, and without any
    logging set-up only warnings and errors reach stderr.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._fallback: Any = None

    def _target(self) -> Any:
        import structlog

        if structlog.is_configured():
            return structlog.get_logger(self.name)
        if self._fallback is None:
            self._fallback = structlog.wrap_logger(
                logging.getLogger(self.name),
                processors=[structlog.processors.KeyValueRenderer(key_order=["event"])],
                wrapper_class=structlog.stdlib.BoundLogger,
            )
        return self._fallback

    def __getattr__(self, method: str) -> Any:
        return getattr(self._target(), method)
