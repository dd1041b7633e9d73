"""The package's one logging setup: modules log through ``logging.getLogger(__name__)``; the CLI
calls :func:`setup` once.

Log lines go to stderr (stdout carries what a command produces: tables, paths, JSON) as
``[servecmp 12:00:00] message`` (``servecmp tune`` for the tuner, ``kind`` for the cluster path).
On a terminal they go through rich's ``RichHandler`` on the same console as the run's progress
bar (:func:`console`), so they print above the bar instead of through it; elsewhere (CI, a pipe)
a plain handler keeps each message on one line, unwrapped.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from rich.console import Console
from rich.highlighter import NullHighlighter
from rich.logging import RichHandler

ROOT = "servecmp"
# logger name prefix -> the tag in front of its lines
TAGS = {"servecmp.tune": "servecmp tune", "servecmp.cluster": "kind"}

_console: Console | None = None
_handler: logging.Handler | None = None


def console() -> Console:
    """The stderr console that log lines and progress bars share."""
    global _console
    if _console is None:
        _console = Console(stderr=True)
    return _console


class _Tagged(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("[%(tag)s %(asctime)s] %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        record.tag = next(
            (
                tag
                for prefix, tag in TAGS.items()
                if record.name == prefix or record.name.startswith(prefix + ".")
            ),
            ROOT,
        )
        return super().format(record)


class _Stderr(logging.StreamHandler[TextIO]):
    """The current ``sys.stderr`` at each record, not the one at setup (tests and tools swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup(level: int = logging.INFO) -> None:
    """Send the package's log records at ``level`` and above to stderr; calling it again
    replaces the handler rather than adding a second one."""
    global _handler
    logger = logging.getLogger(ROOT)
    if _handler is not None:
        logger.removeHandler(_handler)
    handler: logging.Handler
    if console().is_terminal:
        handler = RichHandler(
            console=console(),
            show_time=False,
            show_level=False,
            show_path=False,
            markup=False,
            highlighter=NullHighlighter(),
            rich_tracebacks=False,
        )
    else:
        handler = _Stderr()
    handler.setFormatter(_Tagged())
    logger.addHandler(handler)
    _handler = handler
    logger.setLevel(level)
    # Our handler only: a handler a third party put on the root logger (logging.basicConfig on
    # import) would print every line a second time in its own format.
    logger.propagate = False
