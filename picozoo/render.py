"""Render rows of data as a rich table, Markdown, CSV or JSON on stdout.

>>> render_rows([{"id": "a", "map": 1.5}], [("id", "Model"), ("map", "mAP")], "csv")
id,map
a,1.5

Text in a report comes from files anyone can write (a result JSON's device name, a model name):
it is escaped on one path per format, whatever the column or table. HTML goes through
:func:`escape_text` (HTML-escaped, ``|`` as ``&#124;``, line breaks and control characters as
spaces), Markdown through :func:`markdown_text` (what CommonMark would read as HTML or an
entity, a ``|``, a line break); only :class:`Markup`, picozoo's own header templates with their
fields escaped by :func:`markup`, passes as it is. CSV cells go through :func:`csv_cell`
(formula cells neutralised, OWASP), terminal tables through :func:`terminal_text` (no rich
markup, no control characters).

>>> escape_text('<script>x|y</script>')
'&lt;script&gt;x&#124;y&lt;/script&gt;'
>>> markdown_text('<script>x|y (< 10)')
'&lt;script>x\\\\|y (< 10)'
>>> markup("Latency<sup>{device}</sup>", device="<b>pc</b>")
'Latency<sup>&lt;b&gt;pc&lt;/b&gt;</sup>'
>>> [csv_cell(v) for v in ("=HYPERLINK(1)", "-2+3", "-3.5", -3.5, "PicoDet")]
["'=HYPERLINK(1)", "'-2+3", '-3.5', -3.5, 'PicoDet']
"""

from __future__ import annotations

import csv
import html
import json
import re
import sys
from collections.abc import Sequence
from typing import Any

FORMATS = ("table", "md", "csv", "json")
Column = tuple[str, str]

#: C0/C1 control characters (line breaks included) and DEL: never kept in rendered text
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: where CommonMark reads raw HTML (``<tag``, ``</``, ``<!``, ``<?``) or an entity (``&x;``)
_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")
_ENTITY = re.compile(r"&(?=#|[A-Za-z0-9]+;)")
#: a CSV cell starting with one of these is a formula (or DDE) in a spreadsheet (OWASP)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: a plain decimal number (a spreadsheet reads it as a number, never as a formula)
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class Markup(str):
    """Text that is already HTML: picozoo's own header templates (``<sup>``, ``<br>``), with
    every field filled in through :func:`markup`. Everything else is escaped."""


def escape_text(value: Any) -> str:
    """``value`` as text safe inside HTML and inside a Markdown table or list: HTML-escaped
    (quotes too), ``|`` as ``&#124;``, line breaks and other control characters as spaces.
    :class:`Markup` is returned as it is."""
    if isinstance(value, Markup):
        return value
    text = html.escape(_CONTROL.sub(" ", str(value)), quote=True)
    return text.replace("|", "&#124;")


def markdown_text(value: Any) -> str:
    """``value`` as text inside a Markdown table cell or list item: a ``<`` that would open
    HTML (a tag, comment or autolink) and an ``&`` that would start an entity are escaped, a
    ``|`` (and the backslash) too, line breaks and control characters become spaces; other text
    is kept readable (``(< 10)`` stays). :class:`Markup` is returned as it is."""
    if isinstance(value, Markup):
        return value
    text = _CONTROL.sub(" ", str(value))
    text = _TAG_OPEN.sub("&lt;", _ENTITY.sub("&amp;", text))
    return text.replace("\\", "\\\\").replace("|", "\\|")


def markup(template: str, **fields: Any) -> Markup:
    """``template`` (picozoo's own HTML) with ``fields`` escaped by :func:`escape_text`."""
    return Markup(template.format(**{k: escape_text(v) for k, v in fields.items()}))


def csv_cell(value: Any) -> Any:
    """A CSV cell that no spreadsheet runs: text starting with ``= + - @``, a tab or a carriage
    return gets a leading ``'`` (OWASP's CSV injection advice). Numbers stay numbers: a value
    that is an ``int``/``float``, or text that is only a plain decimal number (``-3.5``), is not
    a formula, and prefixing it would turn a measured value into text."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    if _PLAIN_NUMBER.fullmatch(value):
        return value
    return "'" + value


def strip_controls(text: str) -> str:
    """``text`` with control characters (terminal escape sequences, line breaks) as spaces.

    >>> strip_controls("a\\x1b[2Jb")
    'a [2Jb'
    """
    return _CONTROL.sub(" ", text)


def terminal_text(value: Any) -> Any:
    """Text for a rich table: :func:`strip_controls`, and a :class:`rich.text.Text`, so that
    ``[...]`` is shown, not read as rich markup."""
    from rich.text import Text

    return Text(strip_controls(str(value)))


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
        w.writerow([csv_cell(k) for k, _ in columns])
        for r in rows:
            w.writerow(["" if r.get(k) is None else csv_cell(r.get(k)) for k, _ in columns])
    elif fmt == "md":
        out.write(
            markdown_table(
                [h for _, h in columns], [[cell(r.get(k)) for k, _ in columns] for r in rows]
            )
        )
    elif fmt == "table":
        from rich.console import Console
        from rich.table import Table

        table = Table(title=terminal_text(title) if title else None, header_style="bold")
        for _, header in columns:
            table.add_column(terminal_text(header), overflow="fold")
        for r in rows:
            table.add_row(*[terminal_text(cell(r.get(k))) for k, _ in columns])
        width = None if getattr(out, "isatty", lambda: False)() else 200
        Console(file=out, width=width).print(table)
    else:
        raise ValueError(f"unknown format {fmt!r}")


def markdown_table(headers: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table; the first column left-aligned, the rest centred.
    Every header and cell goes through :func:`markdown_text` (a ``|`` or a line break in a name
    cannot break the table, nor HTML in it run).

    >>> print(markdown_table(["Model"], [["a|b\\n<i>c</i>"]]), end="")
    | Model |
    | :--- |
    | a\\|b &lt;i>c&lt;/i> |
    """
    align = [":---"] + [":---:"] * (len(headers) - 1)
    head = [markdown_text(h) for h in headers]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(markdown_text(c) for c in row) + " |" for row in body]
    return "\n".join(lines) + "\n"
