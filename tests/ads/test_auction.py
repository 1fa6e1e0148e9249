"""The sponsored auction: ranking, the generalized second price, reserve, one ad per product,
max_ads, the relevance floor, placement among organic results and the slots' validation."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.ads.auction import Candidate, SponsoredSlots, auction, eligible, place
from recsys.fusion import FusionConfig
from recsys.fusion.presets import validated

SLOTS = SponsoredSlots.from_dict({"positions": [1, 4, 7], "reserve_price": 0.05})


def won(candidates, slots=SLOTS):
    return [(p.campaign_id, p.product_id, p.position) for p in auction(candidates, slots)]


def test_ranks_by_bid_times_ctr_times_relevance_and_fills_positions_in_order():
    candidates = [Candidate(1, "a", bid=1.0, relevance=1.0, ctr=0.02),   # 0.020
                  Candidate(2, "b", bid=3.0, relevance=0.5, ctr=0.02),   # 0.030
                  Candidate(3, "c", bid=0.5, relevance=0.9, ctr=0.1),    # 0.045
                  Candidate(4, "d", bid=2.0, relevance=0.2, ctr=0.02)]   # 0.008
    assert won(candidates) == [(3, "c", 1), (2, "b", 4), (1, "a", 7)]
    assert won(list(reversed(candidates))) == won(candidates)


def test_the_price_is_the_least_bid_that_keeps_the_rank():
    candidates = [Candidate(1, "a", bid=2.0, relevance=0.9, ctr=0.05),
                  Candidate(2, "b", bid=1.0, relevance=0.8, ctr=0.05),
                  Candidate(3, "c", bid=1.0, relevance=0.5, ctr=0.04)]
    first, second, third = auction(candidates, SLOTS)
    assert first.price == pytest.approx(1.0 * 0.05 * 0.8 / (0.05 * 0.9))
    assert second.price == pytest.approx(1.0 * 0.04 * 0.5 / (0.05 * 0.8))
    assert third.price == 0.05  # nobody below it: the reserve
    for placement in (first, second):
        def bidding(factor):
            return [replace(c, bid=placement.price * factor) if c.campaign_id == placement.campaign_id else c
                    for c in candidates]
        at_price, under = bidding(1.0001), bidding(0.9999)
        assert won(at_price) == won(candidates)
        assert won(under) != won(candidates)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.06, 5.0), st.floats(0.01, 1.0), st.floats(0.001, 0.3),
                          st.integers(0, 5)), min_size=1, max_size=12))
def test_prices_never_exceed_the_bid_nor_fall_under_the_reserve(rows):
    candidates = [Candidate(i, f"p{product}", bid=bid, relevance=relevance, ctr=ctr)
                  for i, (bid, relevance, ctr, product) in enumerate(rows)]
    placements = auction(candidates, SLOTS)
    bids = {c.campaign_id: c.bid for c in candidates}
    assert len({p.product_id for p in placements}) == len(placements) <= SLOTS.max_ads
    scores = [p.rank_score for p in placements]
    assert scores == sorted(scores, reverse=True)
    for placement in placements:
        assert SLOTS.reserve_price - 1e-12 <= placement.price <= bids[placement.campaign_id] + 1e-12


def test_one_ad_per_product_and_a_rival_campaign_on_it_sets_the_price():
    candidates = [Candidate(1, "a", bid=2.0, relevance=0.5, ctr=0.1),
                  Candidate(2, "a", bid=1.5, relevance=0.5, ctr=0.1),
                  Candidate(3, "b", bid=0.2, relevance=0.5, ctr=0.1)]
    placements = auction(candidates, SLOTS)
    assert [(p.campaign_id, p.product_id) for p in placements] == [(1, "a"), (3, "b")]
    assert placements[0].price == pytest.approx(1.5)  # what campaign 2 bid on the same product


def test_reserve_max_ads_ties_and_zero_scores():
    slots = SponsoredSlots.from_dict({"positions": [2, 5], "max_ads": 1, "reserve_price": 0.5})
    candidates = [Candidate(7, "a", bid=1.0, relevance=0.5, ctr=0.1),
                  Candidate(3, "b", bid=1.0, relevance=0.5, ctr=0.1),
                  Candidate(1, "c", bid=0.4, relevance=1.0, ctr=0.9),   # under the reserve
                  Candidate(2, "d", bid=9.0, relevance=0.0, ctr=0.9)]   # no relevance
    placements = auction(candidates, slots)
    assert [(p.campaign_id, p.position) for p in placements] == [(3, 2)]  # the tie: smaller id
    assert placements[0].price == pytest.approx(1.0)
    assert auction([], slots) == []
    assert auction(candidates[2:], slots) == []


def test_the_floor_and_the_products_already_on_the_page():
    candidates = [Candidate(1, "a", bid=1.0, relevance=0.3, ctr=0.1),
                  Candidate(2, "b", bid=1.0, relevance=0.7, ctr=0.1),
                  Candidate(3, "c", bid=1.0, relevance=0.5, ctr=0.1)]
    assert [c.campaign_id for c in eligible(candidates, 0.5)] == [2, 3]
    assert [c.campaign_id for c in eligible(candidates, 0.0, exclude={"b"})] == [1, 3]
    assert eligible(candidates, 0.71) == []
    with pytest.raises(ValueError, match="relevance floor must be a number from 0 to 1"):
        eligible(candidates, 1.5)


def test_bad_candidates_are_refused():
    with pytest.raises(ValueError, match="campaign 4: a bid must be a number above 0"):
        Candidate(4, "a", bid=0, relevance=0.5, ctr=0.1)
    with pytest.raises(ValueError, match="relevance must be a number from 0 to 1"):
        Candidate(4, "a", bid=1, relevance=1.2, ctr=0.1)
    with pytest.raises(ValueError, match="click-through must be a number from 0 to 1"):
        Candidate(4, "a", bid=1, relevance=0.2, ctr=-0.1)


def organic(n):
    return [{"product_id": f"o{i}", "score": 1.0 - i / 10} for i in range(n)]


def test_placement_moves_organic_items_down_and_never_drops_them():
    placements = auction([Candidate(1, "a", bid=1.0, relevance=1.0, ctr=0.2),
                          Candidate(2, "b", bid=1.0, relevance=1.0, ctr=0.1)], SLOTS)
    page = place(organic(5), placements)
    assert [item["product_id"] for item in page] == ["a", "o0", "o1", "b", "o2", "o3", "o4"]
    assert page[0] == {"product_id": "a", "sponsored": True, "campaign_id": 1}
    assert page[3]["sponsored"] is True and page[3]["campaign_id"] == 2
    assert [item for item in page if not item.get("sponsored")] == organic(5)


def test_an_ad_past_the_end_of_a_short_page_goes_last():
    placements = auction([Candidate(1, "a", bid=1.0, relevance=1.0, ctr=0.2),
                          Candidate(2, "b", bid=1.0, relevance=1.0, ctr=0.1)], SLOTS)
    assert [item["product_id"] for item in place(organic(1), placements)] == ["a", "o0", "b"]
    assert [item["product_id"] for item in place([], placements)] == ["a", "b"]
    assert place(organic(3), []) == organic(3)


def test_slots_from_a_preset():
    config = FusionConfig(sponsored={"positions": [4, 1], "max_ads": 2, "relevance_floor": 0.5,
                                     "reserve_price": 0.05, "frequency_cap": 3})
    slots = SponsoredSlots.from_preset(config)
    assert slots.positions == (1, 4) and slots.frequency_cap == 3
    assert SponsoredSlots.from_dict(slots.to_dict()) == slots
    assert SponsoredSlots.from_preset(FusionConfig()) is None
    assert SponsoredSlots.from_preset({"sponsored": {"positions": [3]}}).max_ads == 1
    assert SponsoredSlots.from_dict({"positions": [1, 4, 7], "max_ads": 2}).slot_positions == (1, 4)


@pytest.mark.parametrize("entry, message", [
    ({"positions": [0, 3]}, "positions count from 1"),
    ({"positions": [2, 2]}, "positions must be distinct"),
    ({"positions": []}, "positions is empty"),
    ({"positions": "1,4"}, "positions must be a list of whole numbers"),
    ({"max_ads": 1}, "needs positions"),
    ({"positions": [1, 4], "max_ads": 3}, "max_ads must be a whole number from 1 to the number of positions"),
    ({"positions": [1], "relevance_floor": 1.5}, "relevance_floor must be a number from 0 to 1"),
    ({"positions": [1], "reserve_price": -0.01}, "reserve_price must be a number of 0 or more"),
    ({"positions": [1], "frequency_cap": 0}, "frequency_cap must be a whole number of 1 or more"),
    ({"positions": [1], "budget": 3}, r"sponsored has no key\(s\) \['budget'\]"),
    ([1, 4], "sponsored must be a dict"),
])
def test_bad_slots_are_refused_by_preset_validation(entry, message):
    with pytest.raises(ValueError, match=message):
        validated({"weights": {"bm25": 1.0}, "sponsored": entry})


def test_preset_validation_keeps_good_slots():
    config = validated({"sponsored": {"positions": [1, 4], "max_ads": 2}})
    assert config.sponsored == {"positions": [1, 4], "max_ads": 2}
    assert FusionConfig.from_dict(config.to_dict()) == config
