"""Customer ids replaced by a keyed hash before they are stored, logged, fitted or answered.

A pseudonym is ``c-`` and the first 20 hex digits (80 bits) of HMAC-SHA-256 of the id under the
pseudonymisation key (`recsys.privacy.keys`): the same id always gets the same pseudonym, so
behaviour links up across uploads and live requests, but nobody without the key can tell whose
it is or test a guess. Spaces around and inside an id do not count (" 17850 " is "17850").

>>> pseudonymise = Pseudonymiser(b"k" * 32)
>>> pseudonymise("17850")
'c-437d716ac40e553b6da0'
>>> pseudonymise(" 17850 ") == pseudonymise("17850"), Pseudonymiser.is_pseudonym(pseudonymise("x"))
(True, True)
>>> pseudonymise.series(pd.Series(["17850", pseudonymise("17850")])).tolist()
['c-437d716ac40e553b6da0', 'c-437d716ac40e553b6da0']
"""

from __future__ import annotations

import hashlib
import hmac
import re

import pandas as pd

from recsys.privacy.keys import current_pseudonym_key, fingerprint

PREFIX = "c-"
HEX_DIGITS = 20
_PSEUDONYM = re.compile(rf"^{PREFIX}[0-9a-f]{{{HEX_DIGITS}}}$")


def canonical_id(value: object) -> str:
    """An id as it is hashed: trimmed, inner runs of spaces made one."""
    return " ".join(str(value).split())


class Pseudonymiser:
    def __init__(self, key: bytes):
        self._key = key
        self.fingerprint = fingerprint(key)

    def __call__(self, customer_id: object) -> str:
        digest = hmac.new(self._key, canonical_id(customer_id).encode(), hashlib.sha256).hexdigest()
        return PREFIX + digest[:HEX_DIGITS]

    @staticmethod
    def is_pseudonym(value: object) -> bool:
        return isinstance(value, str) and bool(_PSEUDONYM.match(value))

    def resolve(self, value: str) -> str:
        """A pseudonym as it is, anything else pseudonymised: for operators, who see pseudonyms
        in the workbench and raw ids in the shop (never for the REST service's callers)."""
        value = value.strip()
        return value if self.is_pseudonym(value) else self(value)

    def series(self, values: pd.Series) -> pd.Series:
        """Each value pseudonymised (hashed once per distinct value); missing values stay missing,
        and so do pseudonyms: data the workbench stored and exports (the search log that live
        clicks are added to) is uploaded again without hashing its ids twice."""
        present = values.notna()
        distinct = pd.unique(values[present])
        table = {value: value if self.is_pseudonym(value) else self(value) for value in distinct}
        out = values.astype(object).copy()
        out[present] = values[present].map(table)
        return out.astype(values.dtype) if isinstance(values.dtype, pd.StringDtype) else out


def pseudonymiser() -> Pseudonymiser:
    """The pseudonymiser of this workbench's key (created at the first start when missing)."""
    return Pseudonymiser(current_pseudonym_key().secret)


def pseudonymise(customer_id: str | None) -> str | None:
    """`customer_id`'s pseudonym under this workbench's key; None for None or blank."""
    if customer_id is None or not canonical_id(customer_id):
        return None
    return pseudonymiser()(customer_id)
