"""Every adapter's ``servecmp tune`` search space, knob by knob, against a stored snapshot:
values (with their types), the protocols a knob is limited to, the fields the server's config
reads, and the citation. The spaces are built from shared helpers (servecmp/servers/knobs.py);
a change to the helpers must not move any server's space unseen.

A deliberate change to a space: rewrite the snapshot with
``PYTHONPATH=. .venv/bin/python tests/test_search_spaces.py`` and review its diff.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from servecmp.servers import registry

SNAPSHOT = Path(__file__).parent / "data" / "search_spaces.json"


def snapshot() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in registry.adapters():
        space = a.search_space
        if space is None:
            out[a.name] = None
            continue
        out[a.name] = {
            "knobs": [
                {
                    "field": k.field,
                    "values": list(k.values),
                    "protocols": list(k.protocols),
                    "source": k.source,
                }
                for k in space.knobs
            ],
            "known": list(space.known_fields()),
        }
    return out


def _text(data: Any) -> str:
    # JSON text keeps 5 apart from 5.0 and False apart from 0, which == would not
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False)


@pytest.mark.parametrize("server", [a.name for a in registry.adapters()])
def test_search_space_matches_the_snapshot(server: str) -> None:
    stored = json.loads(SNAPSHOT.read_text())
    assert server in stored, f"{server}: not in {SNAPSHOT.name}; rewrite it (module docstring)"
    assert _text(snapshot()[server]) == _text(stored[server])


def test_snapshot_lists_no_server_the_registry_lacks() -> None:
    assert set(json.loads(SNAPSHOT.read_text())) == {a.name for a in registry.adapters()}


def test_a_space_naming_a_field_no_helper_knows_is_refused_by_name() -> None:
    from servecmp.servers import knobs

    with pytest.raises(ValueError, match=r"unknown field\(s\) tuning\.worker; known"):
        knobs.space(knobs.workers("cite"), reads=("tuning.worker",))
    # the known list follows one order whatever order the knobs come in
    s = knobs.space(knobs.logging("cite"), knobs.workers("cite"), reads=(knobs.IO_THREADS,))
    assert s.known_fields() == (knobs.WORKERS, knobs.IO_THREADS, knobs.LOGGING)
    assert [k.field for k in s.knobs] == [knobs.LOGGING, knobs.WORKERS]


if __name__ == "__main__":
    SNAPSHOT.write_text(_text(snapshot()) + "\n")
    print(f"wrote {SNAPSHOT}")
