"""Servers of a run: facts come from their adapters (servecmp.servers.registry)."""

from __future__ import annotations

from dataclasses import dataclass

from servecmp.report.cells import targets
from servecmp.report.data import RunData
from servecmp.servers import registry


@dataclass(frozen=True)
class ServerFacts:
    """What the report needs to know about a server: its display label and the in-process
    baseline target its overhead is measured against. ``registered`` is False for a server found
    in stored results that this installation's registry does not know (a report rebuilt from an
    older or newer run): it is then shown under its stored name, without a baseline."""

    name: str
    label: str
    baseline: str | None
    registered: bool
    inprocess: bool = False
    short: str = ""  # the name in verdict cells ("" : the label); version/flavour stay in headers


def server_facts(name: str) -> ServerFacts:
    try:
        adapter = registry.get(name)
    except (
        KeyError,
        ImportError,
        AttributeError,
    ):  # not registered, or its package absent/incomplete
        return ServerFacts(name, name, None, registered=False)
    return ServerFacts(
        name,
        adapter.label,
        adapter.baseline,
        registered=True,
        inprocess=adapter.is_inprocess,
        short=adapter.short_label,
    )


def server_label(name: str) -> str:
    return server_facts(name).label


def short_label(name: str) -> str:
    """The server's name without version or flavour, for cells that repeat it."""
    facts = server_facts(name)
    return facts.short or facts.label


def baseline_of(server: str) -> str | None:
    """Target name of the in-process baseline ``server`` is compared against (None: none known)."""
    return server_facts(server).baseline


def _registry_order(name: str) -> tuple[int, str]:
    order = registry.names()
    return (order.index(name), "") if name in order else (len(order), name)


def servers(run: RunData) -> list[str]:
    """The model servers (not in-process baselines) of a run, in registry order, then any server
    the registry does not know, by name: one report column each."""
    infos = targets(run)
    baselines = {t.server for t in infos if t.baseline}
    found = {t.server for t in infos if not t.baseline}
    found |= {
        r.server
        for r in run.friction
        if r.server not in baselines and not server_facts(r.server).inprocess
    }
    return sorted(found, key=_registry_order)


def server_pairs(names: list[str]) -> list[tuple[str, str]]:
    """Every unordered pair, in column order: (a, b) with a before b."""
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
