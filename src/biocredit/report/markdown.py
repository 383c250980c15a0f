"""The report as Markdown; figures are referred to by path relative to the report."""

from __future__ import annotations

import os
from pathlib import Path

from .content import Content


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[list[str]]) -> str:
    """A Markdown table: the first row is the header; ``|`` in a cell is escaped."""
    header, *body = rows
    return "\n".join(["| " + " | ".join(_cell(h) for h in header) + " |",
                      "|" + "|".join("---" for _ in header) + "|",
                      *("| " + " | ".join(_cell(c) for c in row) + " |" for row in body)])


def render_markdown(content: Content, base: Path) -> str:
    """Markdown text for ``content``; image paths are written relative to ``base`` (the
    folder the report goes to)."""
    lines = [f"# {content.title}", ""]
    for line in content.intro:
        lines += [line, ""]
    lines += ["## Summary", ""]
    lines += [markdown_table([content.table_header, *content.table_rows]), ""]
    for section in content.sections:
        lines += [f"## {section.title}", "", section.text, ""]
        for table in section.tables:
            lines += [markdown_table(table), ""]
        for image in section.images:
            rel = Path(os.path.relpath(image, base)).as_posix()
            lines += [f"![{section.title}]({rel})", ""]
    if content.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in content.notes] + [""]
    return "\n".join(lines)
