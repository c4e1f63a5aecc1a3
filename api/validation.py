"""Names and codes, validated in one place.

The pydantic types are what every request body uses; the plain ``check_*`` functions behind
them are what the file imports (districts, kommun lists, assignment CSVs) call per row, so a
name refused in a form is refused in a file for the same reason and with the same words.
Each check returns the cleaned value or raises ``ValueError`` with a message that reads after
the field's name ("name: holds a control character U+000A").
"""

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

__all__ = [
    "MAX_CODE_LENGTH",
    "MAX_NAME_LENGTH",
    "DistrictCode",
    "KommunCode",
    "LanCode",
    "Label",
    "Name",
    "check_district_code",
    "check_kommun_code",
    "check_label",
    "check_lan_code",
    "check_name",
    "control_character",
]

MAX_NAME_LENGTH = 200  # the database's column widths
MAX_LABEL_LENGTH = 100
MAX_CODE_LENGTH = 40

# Control and format characters (Cc, Cf), lone surrogates (Cs) and the Unicode line and
# paragraph separators: a name travels into email headers, CSV exports and PDF files, where
# each of these breaks a line, is cut off (NUL) or hides text.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def control_character(value: str) -> str | None:
    """The first character of ``value`` that no name or code may hold, as ``U+XXXX``."""
    if value.isprintable():  # fast path, in C: no Cc, Cf, Cs, Zl or Zp character in it
        return None
    for char in value:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            return f"U+{ord(char):04X}"
    return None


def _text(value: str, *, max_length: int) -> str:
    if not isinstance(value, str):
        raise ValueError("must be text")
    cleaned = value.strip()
    if not cleaned:
        raise ValueError("is empty")
    if len(cleaned) > max_length:
        raise ValueError(f"is longer than {max_length} characters")
    bad = control_character(cleaned)
    if bad:
        raise ValueError(f"holds a control character {bad}")
    return cleaned


def check_name(value: str) -> str:
    """A display name: stripped, 1 to 200 characters, no control characters."""
    return _text(value, max_length=MAX_NAME_LENGTH)


def check_label(value: str) -> str:
    """A short label (a topic's): stripped, 1 to 100 characters, no control characters."""
    return _text(value, max_length=MAX_LABEL_LENGTH)


def _digits(value: str, count: int, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError("must be text")
    # str.isdigit() and regex \d accept other scripts' digits ("٢٣٨٠"); codes are ASCII.
    if len(value) != count or not all("0" <= c <= "9" for c in value):
        raise ValueError(f"{what} must be exactly {count} ASCII digits (0-9), got {value!r}")
    return value


def check_kommun_code(value: str) -> str:
    """A kommun code as SCB writes it: exactly four ASCII digits, e.g. ``2380``."""
    return _digits(value, 4, "a kommun code")


def check_lan_code(value: str) -> str:
    """A län (partidistrikt) code: exactly two ASCII digits, e.g. ``23``."""
    return _digits(value, 2, "a län code")


def check_district_code(value: str) -> str:
    """A district code: stripped, 1 to 40 printable ASCII characters (``23800101``)."""
    if not isinstance(value, str):
        raise ValueError("must be text")
    cleaned = value.strip()
    if not cleaned:
        raise ValueError("is empty")
    if len(cleaned) > MAX_CODE_LENGTH:
        raise ValueError(f"is longer than {MAX_CODE_LENGTH} characters")
    bad = next((c for c in cleaned if not " " <= c <= "~"), None)
    if bad is not None:
        raise ValueError(
            f"holds U+{ord(bad):04X}; a district code is printable ASCII (letters, digits, "
            "punctuation)"
        )
    return cleaned


Name = Annotated[
    str,
    AfterValidator(check_name),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH}),
]
Label = Annotated[
    str,
    AfterValidator(check_label),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_LABEL_LENGTH}),
]
KommunCode = Annotated[
    str,
    AfterValidator(check_kommun_code),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]{4}$", "examples": ["2380"]}),
]
LanCode = Annotated[
    str,
    AfterValidator(check_lan_code),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]{2}$", "examples": ["23"]}),
]
DistrictCode = Annotated[
    str,
    AfterValidator(check_district_code),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_CODE_LENGTH,
            "pattern": "^[ -~]+$",
            "examples": ["23800101"],
        }
    ),
]
