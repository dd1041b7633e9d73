"""One logging setup (servecmp/log.py): tagged one-line records on stderr, configured by the CLI."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest

from servecmp import log
from servecmp.cli import main
from servecmp.cluster.commands import Ops


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    yield
    if log._handler is not None:
        logging.getLogger("servecmp").removeHandler(log._handler)
        log._handler = None


def test_records_are_tagged_lines_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    log.setup()
    log.setup()  # again: still one handler, one line per record
    logging.getLogger("servecmp.run.orchestrate").info("starting %s", "x" * 200)
    logging.getLogger("servecmp.tune").info("tune run")
    Ops().log("creating cluster")
    logging.getLogger("servecmp.load.shapes").debug("not shown at INFO")
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 3, lines  # a long message stays on one line when stderr is not a terminal
    assert re.fullmatch(r"\[servecmp \d\d:\d\d:\d\d\] starting x{200}", lines[0])
    assert re.fullmatch(r"\[servecmp tune \d\d:\d\d:\d\d\] tune run", lines[1])
    assert re.fullmatch(r"\[kind \d\d:\d\d:\d\d\] creating cluster", lines[2])


def test_a_root_handler_a_library_installed_does_not_print_our_lines_twice(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import sys

    root = logging.getLogger()
    foreign = logging.StreamHandler(sys.stderr)  # what logging.basicConfig() in an import adds
    root.addHandler(foreign)
    try:
        log.setup()
        logging.getLogger("servecmp.run.orchestrate").info("load: a target")
    finally:
        root.removeHandler(foreign)
        logging.getLogger("servecmp").propagate = True
    err = capsys.readouterr().err
    assert err.count("load: a target") == 1, err


def test_the_cli_sets_it_up(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gen", "rules", "--check"]) == 0
    logging.getLogger("servecmp.cluster.commands").info("after the CLI")
    assert "] after the CLI" in capsys.readouterr().err


def test_a_replaced_stderr_gets_the_records(capsys: pytest.CaptureFixture[str]) -> None:
    import io
    import sys

    log.setup()
    swapped = io.StringIO()
    old, sys.stderr = sys.stderr, swapped
    try:
        logging.getLogger("servecmp.run").info("to the new stream")
    finally:
        sys.stderr = old
    assert "to the new stream" in swapped.getvalue()
