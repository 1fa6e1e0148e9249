"""Tables written for people to open: CSV that a spreadsheet cannot run.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to
Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)``, ``=cmd|' /C calc'!A0``). Uploads are
stored as given; what the workbench hands back for a spreadsheet (`csv_text`) has such text cells
prefixed with an apostrophe, which spreadsheets show as text (OWASP's "CSV injection"
advice). Numbers stay numbers: "-3.5" is left alone. A spreadsheet set to split on semicolons
(as in much of Europe) opens "mug;=HYPERLINK(...)" as two cells, the second a formula, so a
formula character right after a semicolon gets the apostrophe too ("mug;'=HYPERLINK(...)").

>>> import pandas as pd
>>> frame = pd.DataFrame({"query": ["=HYPERLINK(\\"http://x\\")", "mug"], "grade": [-1.0, 2.0]})
>>> print(csv_text(frame), end="")
query,grade
"'=HYPERLINK(""http://x"")",-1.0
mug,2.0
"""

from __future__ import annotations

import re

import pandas as pd

FORMULA = re.compile(r"^[=+\-@\t\r]")
AFTER_SEMICOLON = re.compile(r";(?=[=+\-@\t\r])")
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def neutralised(value):
    """`value` with an apostrophe before it when a spreadsheet would read it as a formula."""
    if not isinstance(value, str):
        return value
    value = AFTER_SEMICOLON.sub(";'", value)
    return "'" + value if FORMULA.match(value) and not NUMBER.match(value.strip()) else value


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells cannot run as formulas (column names too)."""
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(neutralised)
    safe.columns = [neutralised(str(column)) for column in safe.columns]
    return safe


def csv_text(frame: pd.DataFrame) -> str:
    """`frame` as CSV text for a person to download and open."""
    return spreadsheet_safe(frame).to_csv(index=False)
