#!/usr/bin/env python3
"""Fail unless a pytest JUnit XML report shows at least one passed test.

A test step whose tests all skip (no binary, no Docker, wrong marker) exits 0 in pytest; a
workflow that exists to run them must not then report success. Usage:
``pytest ... --junitxml=FILE && python scripts/require_passed.py FILE``.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def counts(path: Path) -> dict[str, int]:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    if not suites:
        raise ValueError(f"{path}: no <testsuite> element (not a pytest --junitxml report)")
    total = {
        k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "skipped", "failures", "errors")
    }
    total["passed"] = total["tests"] - total["skipped"] - total["failures"] - total["errors"]
    return total


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: require_passed.py JUNIT_XML", file=sys.stderr)
        return 2
    path = Path(argv[0])
    try:
        c = counts(path)
    except (OSError, ET.ParseError, ValueError) as err:
        print(f"require_passed: cannot read {path}: {err}", file=sys.stderr)
        return 2
    print(
        f"{path}: {c['passed']} passed, {c['skipped']} skipped, {c['failures']} failed, "
        f"{c['errors']} errors"
    )
    if c["passed"] < 1:
        print(
            f"require_passed: no test passed in {path} (all {c['skipped']} skipped?)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
