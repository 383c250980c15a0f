"""The report as one self-contained HTML file: inline CSS, PNGs as base64 data URIs, no
scripts, fonts or links to anything outside the file."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from .content import Content

STYLE = """
body { font-family: sans-serif; max-width: 1400px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em;
     border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: .3em .7em; text-align: right; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2),
th:nth-child(3), td:nth-child(3), th:nth-child(4), td:nth-child(4) { text-align: left; }
th { background: #f3f3f3; }
img { max-width: 100%; height: auto; display: block; margin: .8em 0; }
code { background: #f5f5f5; padding: 0 .2em; }
.swatch { display: inline-block; width: .9em; height: .9em; margin-right: .4em;
          vertical-align: middle; border-radius: 2px; }
"""


def data_uri(path: Path) -> str:
    """The PNG at ``path`` as a ``data:image/png;base64,…`` URI."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def html_table(rows: list[list[str]], row_colors: list[str] | None = None) -> list[str]:
    """The lines of an HTML table: the first row is the header; ``row_colors`` (one per
    body row) draws a colour swatch before each row's first cell."""
    header, *body = rows
    out = ["<table>", "<tr>" + "".join(f"<th>{escape(str(h))}</th>" for h in header) + "</tr>"]
    for i, row in enumerate(body):
        cells = [escape(str(c)) for c in row]
        if row_colors and cells:
            cells[0] = f'<span class="swatch" style="background:{escape(row_colors[i])}">' \
                       f"</span>{cells[0]}"
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return out


def render_html(content: Content, row_colors: list[str] | None = None) -> str:
    """A self-contained HTML page for ``content``; ``row_colors`` (one per table row) draws a
    colour swatch before each run's name, matching its curves."""
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{escape(content.title)}</title>", f"<style>{STYLE}</style>", "</head>",
           "<body>", f"<h1>{escape(content.title)}</h1>"]
    out += [f"<p>{escape(line)}</p>" for line in content.intro]
    out += ["<h2>Summary</h2>"]
    out += html_table([content.table_header, *content.table_rows], row_colors)
    for section in content.sections:
        out += [f"<h2>{escape(section.title)}</h2>", f"<p>{escape(section.text)}</p>"]
        for table in section.tables:
            out += html_table(table)
        out += [f'<img src="{data_uri(image)}" alt="{escape(section.title)}">'
                for image in section.images]
    if content.notes:
        out += ["<h2>Notes</h2>", "<ul>"] + [f"<li>{escape(n)}</li>" for n in content.notes] \
            + ["</ul>"]
    out += ["</body>", "</html>", ""]
    return "\n".join(out)
