"""Personal data in free text masked before it is stored: search queries, search-log text and
judgment queries, from uploads and from live traffic.

What is masked, in this order, each replaced by its kind in brackets:

- ``[email]``: e-mail addresses
- ``[iban]``: bank account numbers (valid IBANs: python-stdnum)
- ``[card]``: payment card numbers (13 to 19 digits, spaces or dashes allowed, Luhn-valid:
  python-stdnum)
- ``[national-id]``: US social security numbers (123-45-6789) and UK National Insurance numbers
- ``[phone]``: phone numbers (Google's libphonenumber, `phonenumbers`, in the region of
  `WORKBENCH_PHONE_REGION`, GB by default) with at least 10 digits, so that sizes, years and
  most part numbers stay; a 10-digit model number can be masked as a phone number
- ``[postcode]``: UK postcodes (SW1A 1AA; in lower case only with the space, sw1a 1aa)

Of Home Depot's 8,241 distinct real search queries (none holds personal data), 4 are masked,
each a 10-digit model or item number taken for a phone number (`bench/masking.py`).

Product text (titles, descriptions) is the shop's own and is not masked.

>>> text, counts = mask_text("call 020 7946 0958 or mail jo@example.com, card 4111 1111 1111 1111")
>>> text
'call [phone] or mail [email], card [card]'
>>> dict(counts)
{'email': 1, 'card': 1, 'phone': 1}
>>> mask_text("18650 battery 2 pack")[0]
'18650 battery 2 pack'
"""

from __future__ import annotations

import os
import re
from collections import Counter

import pandas as pd
import phonenumbers
from stdnum import iban, luhn

KINDS = ("email", "iban", "card", "national-id", "phone", "postcode")
MIN_PHONE_DIGITS = 10
MAX_EXAMPLES = 5
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IBAN = re.compile(r"\b[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}\b")
_NATIONAL_ID = re.compile(r"\b\d{3}-\d{2}-\d{4}\b"  # US social security number
                          r"|\b[A-CEGHJ-PR-TW-Za-ceghj-pr-tw-z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-Da-d]\b")  # UK NI
# A postcode in capitals, or in any case with its space (so that sizes such as "x12in" and part
# numbers such as "al70mh" stay).
_POSTCODE = re.compile(r"\b(?:GIR ?0AA|[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}"
                       r"|[A-Za-z]{1,2}\d[A-Za-z\d]? \d[A-Za-z]{2})\b")
_DIGIT_RUN = re.compile(r"\d[\d ()+.-]{7,}\d")


def _region() -> str:
    return os.environ.get("WORKBENCH_PHONE_REGION", "GB").strip().upper() or "GB"


def _replace_valid(pattern: re.Pattern, text: str, kind: str, counts: Counter, valid) -> str:
    def substitute(match: re.Match) -> str:
        if not valid(match.group(0)):
            return match.group(0)
        counts[kind] += 1
        return f"[{kind}]"
    return pattern.sub(substitute, text)


def _iban_prefix(candidate: str, counts: Counter) -> str:
    """The longest run of `candidate`'s space-separated groups that is a valid IBAN, masked (the
    pattern also takes the words after it: "GB82 WEST ... 32 about my order")."""
    groups = candidate.split(" ")
    for end in range(len(groups), 0, -1):
        if iban.is_valid("".join(groups[:end]).upper()):
            counts["iban"] += 1
            return " ".join(["[iban]", *groups[end:]])
    return candidate


def _mask_phones(text: str, counts: Counter) -> str:
    if not _DIGIT_RUN.search(text):
        return text
    pieces, last = [], 0
    for match in phonenumbers.PhoneNumberMatcher(text, _region(), leniency=phonenumbers.Leniency.POSSIBLE):
        if sum(char.isdigit() for char in match.raw_string) < MIN_PHONE_DIGITS:
            continue
        pieces += [text[last:match.start], "[phone]"]
        last = match.end
        counts["phone"] += 1
    return "".join(pieces) + text[last:] if pieces else text


def mask_text(text: str) -> tuple[str, Counter]:
    """`text` with its personal data masked, and how many of each kind."""
    counts: Counter = Counter()
    if "@" in text:
        text = _replace_valid(_EMAIL, text, "email", counts, lambda _: True)
    if any(char.isdigit() for char in text):
        # IBANs first: the digits of a spaced one can pass for a card number.
        text = _IBAN.sub(lambda match: _iban_prefix(match.group(0), counts), text)
        text = _replace_valid(_CARD, text, "card", counts,
                              lambda value: luhn.is_valid(re.sub(r"\D", "", value)))
        text = _replace_valid(_NATIONAL_ID, text, "national-id", counts, lambda _: True)
        text = _mask_phones(text, counts)
        text = _replace_valid(_POSTCODE, text, "postcode", counts, lambda _: True)
    return text, counts


def mask_query(text: str | None) -> str | None:
    """`text` masked (for one value from live traffic)."""
    return None if text is None else mask_text(text)[0]


def mask_series(values: pd.Series) -> tuple[pd.Series, Counter, int, list[str]]:
    """Each text masked (once per distinct value): (masked, counts per kind, rows changed,
    up to five masked examples)."""
    present = values.notna()
    counts: Counter = Counter()
    table, examples = {}, []
    tally = values[present].value_counts()
    for value, rows in tally.items():
        masked, found = mask_text(str(value))
        if found:
            table[value] = masked
            counts.update({kind: n * int(rows) for kind, n in found.items()})
            if len(examples) < MAX_EXAMPLES:
                examples.append(masked)
    if not table:
        return values, counts, 0, examples
    changed = values.isin(table.keys()) & present
    out = values.copy()
    out[changed] = values[changed].map(table)
    return out, counts, int(changed.sum()), examples
