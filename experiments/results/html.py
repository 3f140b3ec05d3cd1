"""A report as one self-contained HTML page, beside its Markdown: report.md -> report.html.

The page carries its pictures inside it (PNG as data: URLs), so it can be mailed, put on a
course's page or opened from a USB stick with nothing else. It converts the Markdown that this
project's reports are written in, and only that: headings (#), paragraphs, tables (| a | b |),
pictures (![alt](file.png)), links ([text](file)), **bold** and `code`. A link to another
report.md points at its report.html.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

STYLE = """body { font-family: system-ui, sans-serif; max-width: 72em; margin: 2em auto; padding: 0 1em;
 color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #ccc; padding: .25em .6em; }
th { background: #f0f0f0; } img { max-width: 100%; } code { background: #f4f4f4; padding: 0 .2em; }"""
IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
BOLD = re.compile(r"\*\*(.+?)\*\*")
CODE = re.compile(r"`([^`]+)`")


def write_html(markdown_path: Path) -> Path:
    """Write the HTML page of `markdown_path` beside it (same name, .html); returns its path."""
    markdown_path = Path(markdown_path)
    page = markdown_to_html(markdown_path.read_text(), markdown_path.parent)
    path = markdown_path.with_suffix(".html")
    path.write_text(page)
    return path


def markdown_to_html(text: str, folder: Path) -> str:
    """The page of a report's Markdown; its pictures are read from `folder` and put inside it."""
    lines = text.splitlines()
    title = next((line.lstrip("# ").strip() for line in lines if line.startswith("# ")), "Report")
    body: list[str] = []
    paragraph: list[str] = []
    table: list[str] = []

    def flush() -> None:
        if paragraph:
            body.append(f"<p>{_inline(' '.join(paragraph), folder)}</p>")
            paragraph.clear()
        if table:
            body.append(_table(table, folder))
            table.clear()

    for line in lines:
        stripped = line.strip()
        if stripped.startswith("|"):
            if paragraph:
                flush()
            table.append(stripped)
            continue
        if table:
            flush()
        heading = re.match(r"^(#{1,6}) (.*)$", stripped)
        if heading:
            flush()
            level = len(heading.group(1))
            body.append(f"<h{level}>{_inline(heading.group(2), folder)}</h{level}>")
        elif not stripped:
            flush()
        else:
            paragraph.append(stripped)
    flush()
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _table(rows: list[str], folder: Path) -> str:
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    cells = [row for row in cells if not all(re.fullmatch(r":?-+:?", cell) for cell in row)]  # the |---| line
    if not cells:
        return ""
    head, *rest = cells
    out = ["<table>", "<tr>" + "".join(f"<th>{_inline(c, folder)}</th>" for c in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{_inline(c, folder)}</td>" for c in row) + "</tr>" for row in rest]
    return "\n".join(out + ["</table>"])


def _inline(text: str, folder: Path) -> str:
    """Escape the text, then turn its pictures, links, bold and code into HTML."""
    text = html.escape(text, quote=False)
    text = IMAGE.sub(lambda m: _image(m.group(1), m.group(2), folder), text)
    text = LINK.sub(lambda m: f'<a href="{html.escape(_linked(m.group(2)))}">{m.group(1)}</a>', text)
    text = BOLD.sub(r"<strong>\1</strong>", text)
    return CODE.sub(r"<code>\1</code>", text)


def _image(alt: str, name: str, folder: Path) -> str:
    path = folder / name
    if path.suffix.lower() != ".png" or not path.is_file():
        return f"<em>(picture {html.escape(name)} is missing)</em>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{alt}" src="data:image/png;base64,{data}">'


def _linked(target: str) -> str:
    """A link to another report's Markdown goes to its HTML page."""
    return target[:-3] + ".html" if target.endswith(".md") else target
