"""Record two runs of one commit as the suite's verdict-reproduction fixture.

    .venv/bin/python scripts/record_verdict_fixture.py RUN1 RUN2 [--out tests/data/verdict_reproduction.json]

Stores only what the summary's verdicts are computed from (``servecmp/report/reproduce.py``:
per-round values of the cells the summary picks, friction per start-up), a few KB, and prints
each run's verdicts and any disagreement under the stable-verdict rule.
``tests/test_verdict_reproduction.py`` then checks that the two runs never disagree.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from servecmp.report.data import load_run
from servecmp.report.reproduce import disagreements, summary_inputs, verdict_of

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "verdict_reproduction.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs=2, type=Path, help="two run directories of one commit")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    recorded: list[dict[str, Any]] = []
    for path in args.runs:
        run = load_run(path)
        recs = summary_inputs(run)
        if not recs:
            print(f"{path}: no summary verdict to record", file=sys.stderr)
            return 2
        recorded.append({"run": run.run_id, "verdicts": recs})
        for rec in recs:
            v = verdict_of(rec)
            called = "no data" if v is None else (v.better or "—") if v.significant else "ns"
            print(f"{run.run_id}  {rec['key']:<45} {called}{' stable' if v and v.stable else ''}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # one verdict record a line: small, and a refresh diffs line by line
    lines = [
        "{"
        + f'"run": {json.dumps(r["run"])}, "verdicts": [\n'
        + ",\n".join(json.dumps(v, separators=(",", ":")) for v in r["verdicts"])
        + "\n]}"
        for r in recorded
    ]
    args.out.write_text('{"runs": [\n' + ",\n".join(lines) + "\n]}\n")
    found = disagreements(recorded[0]["verdicts"], recorded[1]["verdicts"])
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    print("disagreements: " + ("; ".join(found) if found else "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
