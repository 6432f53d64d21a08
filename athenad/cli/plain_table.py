"""Aligned text tables for listings that must print fast (no rich import, no layout pass).

Columns are padded to their widest cell; only the last column may be cut to fit a
terminal. Colour is added on a terminal only, so piped output stays plain for grep.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence

import click

GAP = "  "


def render(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    colours: Sequence[str | None] | None = None,
    colour_column: int | None = None,
    width: int | None = None,
) -> list[str]:
    """The table's lines: a header, then one line per row.

    ``colours[i]`` (a click colour name or None) styles cell ``colour_column`` of row i;
    ``width`` caps the line length by shortening the last column.
    """
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lead = sum(widths[:-1]) + len(GAP) * (len(headers) - 1)
    last = widths[-1] if width is None else max(10, min(widths[-1], width - lead))

    def line(cells: Sequence[str], colour: str | None = None) -> str:
        parts = []
        for i, cell in enumerate(cells[:-1]):
            padded = cell.ljust(widths[i])
            if colour and i == colour_column:
                padded = click.style(cell, fg=colour) + " " * (widths[i] - len(cell))
            parts.append(padded)
        tail = cells[-1] if len(cells[-1]) <= last else cells[-1][: last - 1] + "…"
        return (GAP.join(parts) + GAP + tail).rstrip()

    out = [line(headers)]
    for index, row in enumerate(rows):
        out.append(line(row, colours[index] if colours else None))
    return out


def echo_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    colours: Sequence[str | None] | None = None,
    colour_column: int | None = None,
) -> None:
    """Print the table; on a terminal with colour and cut to its width."""
    tty = sys.stdout.isatty()
    width = shutil.get_terminal_size().columns if tty else None
    lines = render(
        headers,
        rows,
        colours=colours if tty else None,
        colour_column=colour_column,
        width=width,
    )
    click.echo("\n".join(lines))
