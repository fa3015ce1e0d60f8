"""Render rows of data as a rich table, Markdown, CSV or JSON on stdout.

>>> render_rows([{"id": "a", "map": 1.5}], [("id", "Model"), ("map", "mAP")], "csv")
id,map
a,1.5
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from typing import Any

FORMATS = ("table", "md", "csv", "json")
Column = tuple[str, str]


def cell(value: Any) -> str:
    """Human text for one value: '-' for missing, compact floats."""
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    return str(value)


def render_rows(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[Column],
    fmt: str,
    *,
    title: str | None = None,
    stream: Any = None,
) -> None:
    """Write ``rows`` (dicts) to ``stream`` (stdout) in ``fmt``; ``columns`` = (key, header)."""
    out = stream or sys.stdout
    if fmt == "json":
        json.dump(list(rows), out, indent=2, default=str)
        out.write("\n")
    elif fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow([k for k, _ in columns])
        for r in rows:
            w.writerow(["" if r.get(k) is None else r.get(k) for k, _ in columns])
    elif fmt == "md":
        out.write(
            markdown_table(
                [h for _, h in columns], [[cell(r.get(k)) for k, _ in columns] for r in rows]
            )
        )
    elif fmt == "table":
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, header_style="bold")
        for _, header in columns:
            table.add_column(header, overflow="fold")
        for r in rows:
            table.add_row(*[cell(r.get(k)) for k, _ in columns])
        width = None if getattr(out, "isatty", lambda: False)() else 200
        Console(file=out, width=width).print(table)
    else:
        raise ValueError(f"unknown format {fmt!r}")


def markdown_table(headers: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table; the first column left-aligned, the rest centred."""
    align = [":---"] + [":---:"] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    return "\n".join(lines) + "\n"
