"""structlog to stderr: stdout belongs to the MCP stdio channel and to command output."""

from __future__ import annotations

import logging as std_logging
import sys

import structlog


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is *now*: tests and tools that swap stderr (capture, a closed
    in-process CLI run) must not leave the logger holding a dead stream."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(*, json: bool = False, level: str = "INFO") -> None:
    lvl = getattr(std_logging, level.upper(), std_logging.INFO)
    std_logging.basicConfig(stream=sys.stderr, level=lvl, format="%(message)s")
    # one INFO line per HTTP request (model server, evals) drowns what matters; --verbose shows them
    for noisy in ("httpx", "httpcore", "httpx2", "httpcore2"):
        std_logging.getLogger(noisy).setLevel(lvl if lvl <= std_logging.DEBUG else std_logging.WARNING)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)


# Safe default even if a library imports us before the CLI configures logging.
configure_logging()
