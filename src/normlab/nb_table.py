"""``nb.table``: a printed table that renders as a real HTML table on the site.

A chapter that printed a table line by line showed it as fixed-width text (one grey box
per line when other outputs came in between). ``table(rows, headers)`` returns an object
whose ``_repr_html_`` is a ``<table>`` (the site, JupyterLab, Colab) and whose ``repr`` is
the same table as aligned plain text (terminals, nbval's ``text/plain`` comparison).
Numbers (and strings that read as numbers) are right-aligned; a float is written with
``float_format`` unless the caller passes an already formatted string.
"""

import html
import numbers

FLOAT_FORMAT = ".4g"


class Table:
    """Rows of cells under a header row, shown as HTML or as aligned text."""

    def __init__(self, rows, headers, *, float_format=FLOAT_FORMAT, caption=None):
        headers = [str(h) for h in headers]
        if not headers:
            raise ValueError("a table needs at least one header")
        rows = [list(row) for row in rows]
        for i, row in enumerate(rows):
            if len(row) != len(headers):
                raise ValueError(f"row {i} has {len(row)} cells, the header has {len(headers)}: "
                                 f"{row!r}")
        self.headers, self.caption = headers, caption
        self.cells = [[_text(v, float_format) for v in row] for row in rows]
        # A column is numeric (right-aligned) when every one of its cells is a number.
        self.numeric = [bool(rows) and all(_is_number(row[j]) for row in rows)
                        for j in range(len(headers))]

    def __repr__(self):
        widths = [max(len(c) for c in col)
                  for col in zip(self.headers, *self.cells, strict=True)]

        def line(cells):
            columns = zip(cells, widths, self.numeric, strict=True)
            return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in columns).rstrip()

        lines = [line(self.headers), *(line(row) for row in self.cells)]
        return "\n".join(([self.caption] if self.caption else []) + lines)

    def _repr_html_(self):
        def cell(tag, text, num):
            align = ' style="text-align: right"' if num else ""
            return f"<{tag}{align}>{html.escape(text)}</{tag}>"

        def row_html(tag, cells):
            columns = zip(cells, self.numeric, strict=True)
            return "<tr>" + "".join(cell(tag, c, n) for c, n in columns) + "</tr>"

        head = row_html("th", self.headers)
        body = "".join(row_html("td", row) for row in self.cells)
        caption = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        return (f'<table class="normlab-table">{caption}<thead>{head}</thead>'
                f"<tbody>{body}</tbody></table>")


def table(rows, headers, *, float_format=FLOAT_FORMAT, caption=None):
    """A :class:`Table` of ``rows`` (sequences of cells) under ``headers``; display it as the
    last expression of a cell (or with ``IPython.display.display``)."""
    return Table(rows, headers, float_format=float_format, caption=caption)


def _is_number(value):
    """A number, or a string that reads as one (an already formatted number: "1e-04")."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _text(value, float_format):
    if isinstance(value, float):
        return format(value, float_format)
    return str(value)
