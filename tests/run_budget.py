"""Settings for tests that run `servecmp run` end to end (docs/testing.md, budget rules)."""

from __future__ import annotations

from typing import Any

# The update and kill probes hold their steady load ``before_s`` before the event and until
# ``after_s`` past it (defaults 10 s and 20 s, servecmp/experiment.py EventLoad): 30 s per event
# in which a test checks nothing more. 1 s each side runs the same mechanism; the load still
# spans the whole outage, since the probe holds it until the server answers again.
EVENT_LOAD: dict[str, Any] = {"before_s": 1.0, "after_s": 1.0}


def friction(startups: int = 1) -> dict[str, Any]:
    """An experiment's ``friction`` for a test: ``startups`` start-ups, short event timelines."""
    return {"startups": startups, "event_load": dict(EVENT_LOAD)}
