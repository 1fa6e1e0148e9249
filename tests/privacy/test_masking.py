"""Personal data in typed text is masked; ordinary shop queries are left as they are."""

from __future__ import annotations

import pandas as pd
import pytest

from recsys.privacy.masking import mask_series, mask_text


@pytest.mark.parametrize("text, masked, kind", [
    ("where is my order, jo.bloggs+shop@example.co.uk", "where is my order, [email]", "email"),
    ("call me 020 7946 0958", "call me [phone]", "phone"),
    ("my mobile +44 7700 900123 thanks", "my mobile [phone] thanks", "phone"),
    ("(212) 555-0199 store hours", "[phone] store hours", "phone"),
    ("pay with 4111-1111-1111-1111", "pay with [card]", "card"),
    ("refund to GB82 WEST 1234 5698 7654 32", "refund to [iban]", "iban"),
    ("ssn 123-45-6789", "ssn [national-id]", "national-id"),
    ("deliver to SW1A 1AA", "deliver to [postcode]", "postcode"),
])
def test_personal_data_is_masked_by_kind(text, masked, kind):
    result, counts = mask_text(text)
    assert result == masked and counts == {kind: 1}


@pytest.mark.parametrize("query", [
    "18650 battery", "samsung 55 inch tv 2023", "1/2 in. x 10 ft. pipe", "2x4x8 lumber 10 pack",
    "LED bulb 60W 4-pack", "part 85123A 22423", "white hanging heart t-light holder", "order 536365",
    "black & decker 20v max", "a4 paper", "4111 1111 1111 1112",  # a 16-digit number that is no card
])
def test_shop_queries_are_left_alone(query):
    assert mask_text(query) == (query, {})


def test_a_column_is_masked_once_per_distinct_text_with_counts_per_row():
    column = pd.Series(["drill", "mail jo@example.com", "mail jo@example.com", None, "call 07700 900123"])
    masked, counts, rows, examples = mask_series(column)
    assert masked.tolist()[:3] == ["drill", "mail [email]", "mail [email]"] and pd.isna(masked[3])
    assert counts == {"email": 2, "phone": 1} and rows == 3
    assert sorted(examples) == ["call [phone]", "mail [email]"]
