"""The notes table: one line per reason for missing data."""

from __future__ import annotations

from servecmp.report.cells import targets
from servecmp.report.data import RunData
from servecmp.report.format import FRICTION_LABEL
from servecmp.report.notes import unavailable_reasons
from servecmp.report.servers import server_label
from servecmp.report.table import Table


def notes_table(run: RunData) -> Table:
    t = Table(["note", "reason"], [])
    for i, why in enumerate(unavailable_reasons(run), start=1):
        who = [x.name for x in targets(run) if x.unavailable == why]
        fr = sorted(
            {
                f"{server_label(r.server)} {FRICTION_LABEL.get(r.metric, r.metric).lower()}"
                for r in run.friction
                if not r.available and (r.reason or "no reason recorded") == why
            }
        )
        subject = ", ".join(who) if who else ""
        if fr and not who:
            subject = "; ".join(fr[:4]) + (f" and {len(fr) - 4} more" if len(fr) > 4 else "")
        t.add([str(i), f"{subject} unavailable: {why}" if subject else why])
    return t
