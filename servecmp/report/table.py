"""The report's table: rendered to both HTML and Markdown from the same strings."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    classes: list[list[str]] = field(default_factory=list)  # css class per cell (HTML only)
    caption: str = ""

    def add(self, row: list[str], cls: list[str] | None = None) -> None:
        self.rows.append(row)
        self.classes.append(cls or [""] * len(row))
