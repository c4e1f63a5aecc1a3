"""SCB's list of kommuner and län: the copy shipped with Knacka, and the per-row checks that
any kommun list (shipped or a user's CSV) passes before it is imported."""

from importlib import resources
from typing import Any

from api.validation import check_kommun_code, check_lan_code, check_name

__all__ = ["SHIPPED_KOMMUNER", "check_kommun_rows", "shipped_kommun_csv"]

# SCB's codes as of 2024/2025: 290 kommuner in 21 län. Columns as in SCB's own code list.
SHIPPED_KOMMUNER = "data/kommuner.csv"


def shipped_kommun_csv() -> str:
    """The shipped kommun list as CSV text (municipality_code, municipality_name_short,
    county_code, county_name)."""
    return resources.files("api").joinpath(SHIPPED_KOMMUNER).read_text(encoding="utf-8")


def check_kommun_rows(
    rows: list[dict[str, str]], *, code: str, name: str, lan_code: str, lan_name: str
) -> list[dict[str, Any]]:
    """Clean every row's codes and names in place; return one error per bad cell, with its
    CSV line (the header is line 1)."""
    errors: list[dict[str, Any]] = []
    checks = (
        (code, check_kommun_code),
        (lan_code, check_lan_code),
        (name, check_name),
        (lan_name, check_name),
    )
    for line, row in enumerate(rows, start=2):
        lan = row.get(lan_code) or ""
        if len(lan) == 1:  # spreadsheets drop the leading zero of "01"
            row[lan_code] = "0" + lan
        ok = True
        for column, check in checks:
            try:
                row[column] = check(row.get(column) or "")
            except ValueError as exc:
                errors.append({"line": line, "field": column, "message": str(exc)})
                ok = False
        if ok and not row[code].startswith(row[lan_code]):
            errors.append(
                {
                    "line": line,
                    "field": code,
                    "message": f"kommun {row[code]} does not lie in län {row[lan_code]}: "
                    "a kommun code starts with its län code",
                }
            )
    return errors
