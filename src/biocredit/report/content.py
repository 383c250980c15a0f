"""What a report says, independent of its format (Markdown or HTML)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Section:
    """A heading, a paragraph of explanation, the figures (PNG files) it shows and its
    tables (each a list of rows, the first the header)."""

    title: str
    text: str
    images: list[Path] = field(default_factory=list)
    tables: list[list[list[str]]] = field(default_factory=list)


@dataclass
class Content:
    """The whole report: a title, lines of context, the summary table, sections, notes."""

    title: str
    intro: list[str]
    table_header: list[str]
    table_rows: list[list[str]]
    sections: list[Section]
    notes: list[str] = field(default_factory=list)
