"""CSV and XLSX files of rows, safe to open in a spreadsheet program.

Names come from users (a förening may be called ``=HYPERLINK(...)``); a spreadsheet runs a
text cell that starts with ``= + - @`` (or a tab or carriage return, which some programs
skip first) as a formula. Such text gets a leading single quote, as OWASP advises; numbers
stay numbers."""

import csv
import io
from collections.abc import Iterable, Sequence

__all__ = ["CSV_MEDIA_TYPE", "XLSX_MEDIA_TYPE", "neutralise", "to_csv", "to_xlsx"]

CSV_MEDIA_TYPE = "text/csv"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> object:
    """A cell's value that no spreadsheet program runs as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _cells(rows: Iterable[Sequence[object]]) -> Iterable[list[object]]:
    for row in rows:
        yield [neutralise(v) for v in row]


def to_csv(rows: Iterable[Sequence[object]]) -> str:
    """CSV text (UTF-8, comma-separated) of rows; None is an empty cell."""
    out = io.StringIO()
    csv.writer(out).writerows(["" if v is None else v for v in row] for row in _cells(rows))
    return out.getvalue()


def to_xlsx(rows: Iterable[Sequence[object]], *, title: str = "Progress") -> bytes:
    """An XLSX workbook with one sheet of rows; text is stored as text, never as a formula."""
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    book = Workbook()
    sheet = book.active
    sheet.title = title
    # openpyxl stores text starting with "=" as a formula; after neutralise() none does. XML
    # cannot carry most control characters, which a name may hold: they become U+FFFD.
    for row in _cells(rows):
        sheet.append(
            [ILLEGAL_CHARACTERS_RE.sub("\ufffd", v) if isinstance(v, str) else v for v in row]
        )
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
