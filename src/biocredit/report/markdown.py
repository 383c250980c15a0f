"""The report as Markdown; figures are referred to by path relative to the report."""

from __future__ import annotations

import os
from pathlib import Path

from .content import Content


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(content: Content, base: Path) -> str:
    """Markdown text for ``content``; image paths are written relative to ``base`` (the
    folder the report goes to)."""
    lines = [f"# {content.title}", ""]
    for line in content.intro:
        lines += [line, ""]
    lines += ["## Summary", ""]
    lines.append("| " + " | ".join(_cell(h) for h in content.table_header) + " |")
    lines.append("|" + "|".join("---" for _ in content.table_header) + "|")
    for row in content.table_rows:
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    lines.append("")
    for section in content.sections:
        lines += [f"## {section.title}", "", section.text, ""]
        for image in section.images:
            rel = Path(os.path.relpath(image, base)).as_posix()
            lines += [f"![{section.title}]({rel})", ""]
    if content.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in content.notes] + [""]
    return "\n".join(lines)
