"""One self-contained HTML page of every table and its figures (PNG inlined as base64): no W&B, no network."""

from __future__ import annotations

import base64
import html

import pandas as pd

from prunesweep.reporting.tables import Grid, display

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; }
tr.theirs td { color: #555; font-style: italic; }
img { max-width: 100%; margin: 0.5em 0; display: block; }
div.scroll { overflow-x: auto; max-width: 100%; }
"""


def inline(text: str) -> str:
    """A line of notes as HTML: escaped, its Markdown code spans (`x`) as <code> (a stray backquote stays one)."""
    parts = html.escape(text).split("`")
    if len(parts) % 2 == 0:
        return html.escape(text)
    return "".join(f"<code>{part}</code>" if index % 2 else part for index, part in enumerate(parts))


def _table(grid: Grid) -> str:
    """The displayed grid as an HTML table; reference rows (not ours) are set in italics."""
    shown = display(grid)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    rows = []
    for values, source in zip(shown.itertuples(index=False), shown["Source"], strict=True):
        kind = "ours" if source == "ours" else "theirs"
        rows.append(f'<tr class="{kind}">' + "".join(f"<td>{html.escape(str(v))}</td>" for v in values) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _section(name: str, title: str, table: str, notes: list[str], figures: str = "") -> str:
    items = "".join(f"<li>{inline(note)}</li>" for note in notes)
    return (
        f'<section id="{html.escape(name)}"><h2>{html.escape(title)}</h2><div class="scroll">{table}</div>'
        f"<ul>{items}</ul>{figures}</section>"
    )


def section(name: str, grid: Grid, images: dict[str, bytes]) -> str:
    """One table with its notes and figures, anchored at `#name`."""
    figures = "".join(
        f'<img alt="{html.escape(f"{name}: {stem}")}" src="data:image/png;base64,{base64.b64encode(image).decode()}">'
        for stem, image in images.items()
    )
    return _section(name, grid.spec.title, _table(grid), grid.notes, figures)


def frame_section(name: str, title: str, shown: pd.DataFrame, notes: list[str]) -> str:
    """A table of printed cells (e.g. a rate search's trials) with its notes, anchored at `#name`."""
    return _section(name, title, shown.to_html(index=False, border=0), notes)


def page(title: str, sections: dict[str, str], footer: list[str]) -> str:
    """The whole page: a contents list (in-page links), the sections in order, then the `footer` lines."""
    contents = "".join(f'<li><a href="#{html.escape(name)}">{html.escape(name)}</a></li>' for name in sections)
    lines = "".join(f"<p>{inline(line)}</p>" for line in footer)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1><ul>{contents}</ul>"
        f"{''.join(sections.values())}{lines}</body></html>\n"
    )
