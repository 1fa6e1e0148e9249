"""recsys.fusion.compare: rank moves between two rankings."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from recsys.fusion.compare import RankMove, dropped_out, rank_moves

product_lists = st.lists(st.sampled_from("abcdefgh"), max_size=8, unique=True)


def test_moves_up_down_same_and_new():
    moves = {move.product_id: move for move in rank_moves(["a", "b", "c", "d"], ["b", "a", "c", "e"])}
    assert moves["b"].label == "↑1" and moves["b"].change == 1
    assert moves["a"].label == "↓1" and moves["a"].change == -1
    assert moves["c"].label == "=" and moves["c"].change == 0
    assert moves["e"].label == "new" and moves["e"].change is None
    assert dropped_out(["a", "b", "c", "d"], ["b", "a", "c", "e"]) == [RankMove("d", 4, None)]


def test_empty_lists():
    assert rank_moves([], []) == [] and dropped_out([], ["a"]) == []
    assert [move.label for move in dropped_out(["a"], [])] == ["out"]


def test_a_repeated_product_keeps_its_best_rank():
    assert rank_moves(["a", "a", "b"], ["b", "a"]) == [RankMove("b", 3, 1), RankMove("a", 1, 2)]


@given(product_lists, product_lists)
def test_every_product_is_accounted_for_once(before, after):
    moves = rank_moves(before, after)
    gone = dropped_out(before, after)
    assert [move.product_id for move in moves] == after
    assert {move.product_id for move in gone} == set(before) - set(after)
    for move in moves:
        assert move.after == after.index(move.product_id) + 1
        assert move.before == (before.index(move.product_id) + 1 if move.product_id in before else None)


@given(product_lists)
def test_the_same_list_moves_nothing(ranking):
    assert all(move.label == "=" for move in rank_moves(ranking, ranking))
    assert dropped_out(ranking, ranking) == []
