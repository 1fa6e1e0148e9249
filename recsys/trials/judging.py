"""Pooled, blind judging: what a grader is shown, and what the graders' grades add up to.

`pooled` merges every configuration's top N of a query into one list without repeats, in an order
drawn from the trial, the query and the product alone (`blind_order`): a grader cannot tell which
configuration found what, or how high. `to_grade` leaves out what the grader has already judged,
so a pair is never asked twice of one grader (several graders may judge the same pairs).

`consensus` is each pair's grade across graders: the mean of their grades ("mean") or the
grade most of them gave ("majority", ties to the lower grade); skips and "can't tell" count
for nothing. `agreement` is Krippendorff's alpha (ordinal; the `krippendorff` package) over the
pairs two or more graders graded, overall and for each grader against the others, and
`disagreements` lists the pairs whose grades lie furthest apart, for a second look.

>>> scale = Scale()
>>> scale.check(2), scale.relevant
(2.0, 2.0)
>>> pooled({"a": {"mug": ["p1", "p2"]}, "b": {"mug": ["p2", "p3"]}}, 2, trial_id=1)["mug"]
['p3', 'p2', 'p1']
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import krippendorff
import numpy as np
import pandas as pd

from db.models import TRIAL_VERDICTS
from recsys.config import JsonConfig

CONSENSUS = ("mean", "majority")
GUIDELINES = ("Grade how well the product answers the query, as a customer who typed it would see it. "
              "3: exactly what was asked for. 2: relevant, a reasonable answer. 1: related, but not "
              "what was asked for (another type, size or use). 0: irrelevant. When the product's text "
              "does not let you tell, choose \"can't tell\" rather than guessing.")


@dataclass
class Scale(JsonConfig):
    """The grades of a trial: whole numbers from `lowest` to `highest`; `relevant` is the lowest
    grade that counts as relevant (precision@10); `labels` name each grade."""

    lowest: int = 0
    highest: int = 3
    relevant: float = 2.0
    labels: dict[str, str] = field(default_factory=lambda: {
        "0": "irrelevant", "1": "related", "2": "relevant", "3": "perfect"})
    guidelines: str = GUIDELINES

    def __post_init__(self) -> None:
        if not self.lowest < self.highest or self.highest - self.lowest > 9:
            raise ValueError(f"a scale runs from a lower to a higher grade, at most ten grades (0-9): not "
                             f"{self.lowest}-{self.highest}")
        if not self.lowest < self.relevant <= self.highest:
            raise ValueError(f"the lowest relevant grade must lie above {self.lowest} and at most "
                             f"{self.highest}, not {self.relevant}")

    @classmethod
    def spanning(cls, lowest: int, highest: int) -> Scale:
        """The default scale (0-3, with its labels), or whole grades `lowest`-`highest` named by their
        numbers, relevant from the top third up."""
        if (lowest, highest) == (0, 3):
            return cls()
        return cls(lowest=lowest, highest=highest, relevant=round(lowest + (highest - lowest) * 2 / 3, 2),
                   labels={str(grade): str(grade) for grade in range(lowest, highest + 1)})

    @property
    def grades(self) -> list[int]:
        return list(range(self.lowest, self.highest + 1))

    def label(self, grade: int) -> str:
        return self.labels.get(str(grade), str(grade))

    def check(self, grade, where: str = "") -> float:
        """`grade` as a number of the scale; ValueError naming `where` otherwise."""
        try:
            value = float(grade)
        except (TypeError, ValueError):
            value = float("nan")
        if not (self.lowest <= value <= self.highest):
            raise ValueError(f"{where}grade {grade!r} is outside the trial's scale {self.lowest}-{self.highest}")
        return value


def blind_order(trial_id: int, query: str, product_id: str) -> str:
    """A sort key that reveals nothing of which configuration found the product, or how high."""
    return hashlib.sha256(f"{trial_id}\x00{query}\x00{product_id}".encode()).hexdigest()


def pooled(rankings: dict[str, dict[str, list[str]]], depth: int, trial_id: int) -> dict[str, list[str]]:
    """{query: products to judge}: the union of each configuration's top `depth`, in blind order.

    `rankings` is {configuration: {query: product ids, best first}}.
    """
    pool: dict[str, set[str]] = {}
    for by_query in rankings.values():
        for query, products in by_query.items():
            pool.setdefault(query, set()).update(products[:depth])
    return {query: sorted(products, key=lambda product: blind_order(trial_id, query, product))
            for query, products in pool.items()}


def to_grade(pool: dict[str, list[str]], judged: pd.DataFrame, grader: str | None = None) -> pd.DataFrame:
    """query, product_id of the pool's pairs still to judge, in the pool's order: not yet judged by
    `grader` (skips count as judged: a skipped pair is not asked again), or by anyone (None)."""
    done = judged if grader is None else judged[judged["grader"] == grader]
    seen = set(zip(done["query"], done["product_id"]))
    rows = [(query, product) for query, products in pool.items() for product in products
            if (query, product) not in seen]
    return pd.DataFrame(rows, columns=["query", "product_id"])


def graded(judged: pd.DataFrame) -> pd.DataFrame:
    """The judgments that are grades (not skips or "can't tell")."""
    return judged[(judged["verdict"] == "graded") & judged["grade"].notna()]


def check_verdict(verdict: str) -> str:
    if verdict not in TRIAL_VERDICTS:
        raise ValueError(f"unknown verdict {verdict!r}; choose one of {', '.join(TRIAL_VERDICTS)}")
    return verdict


def consensus(judged: pd.DataFrame, how: str = "mean") -> pd.DataFrame:
    """query, product_id, grade, graders: one row per graded pair."""
    if how not in CONSENSUS:
        raise ValueError(f"unknown consensus {how!r}; choose one of {', '.join(CONSENSUS)}")
    grades = graded(judged)
    if grades.empty:
        return pd.DataFrame(columns=["query", "product_id", "grade", "graders"])
    groups = grades.groupby(["query", "product_id"], sort=False)["grade"]
    if how == "mean":
        value = groups.mean()
    else:  # the most frequent grade; ties go to the lower one
        value = groups.agg(lambda series: float(series.value_counts().sort_index().idxmax()))
    return pd.DataFrame({"grade": value, "graders": groups.size()}).reset_index()


def _alpha(matrix: np.ndarray, scale: Scale) -> float | None:
    """Krippendorff's ordinal alpha of a graders x pairs matrix (NaN: not graded); None when it is
    undefined (fewer than two graders on any pair, or a single grade used throughout)."""
    shared = np.sum(~np.isnan(matrix), axis=0) >= 2
    if matrix.shape[0] < 2 or not shared.any():
        return None
    values = matrix[:, shared]
    if len(np.unique(values[~np.isnan(values)])) < 2:
        return None
    return float(krippendorff.alpha(reliability_data=values, level_of_measurement="ordinal",
                                    value_domain=scale.grades))


def agreement(judged: pd.DataFrame, scale: Scale) -> dict:
    """{"alpha": overall, "pairs": pairs graded by two or more, "graders": [{grader, graded,
    shared, exact, alpha}]}: per grader, the pairs they share with another grader, the share of
    those on which they gave the grade the others' majority gave, and alpha of the graders over
    the pairs that grader graded."""
    grades = graded(judged)
    table = grades.pivot_table(index="grader", columns=["query", "product_id"], values="grade", aggfunc="last")
    overall = _alpha(table.to_numpy(dtype=float), scale) if not table.empty else None
    shared_pairs = int((table.notna().sum(axis=0) >= 2).sum()) if not table.empty else 0
    rows = []
    for grader in table.index:
        mine = table.loc[grader]
        columns = mine.notna() & (table.notna().sum(axis=0) >= 2)
        others = table.drop(index=grader).loc[:, columns]
        majority = others.apply(lambda column: column.dropna().value_counts().sort_index().idxmax()
                                if column.notna().any() else np.nan)
        exact = float((mine[columns] == majority).mean()) if columns.any() else None
        rows.append({"grader": grader, "graded": int(mine.notna().sum()), "shared": int(columns.sum()),
                     "exact": None if exact is None else round(exact, 4),
                     "alpha": _alpha(table.loc[:, mine.notna()].to_numpy(dtype=float), scale)})
    return {"alpha": overall, "pairs": shared_pairs, "graders": rows}


def disagreements(judged: pd.DataFrame, limit: int = 50) -> pd.DataFrame:
    """query, product_id, grades (grader: grade), spread of the pairs graders disagree on, widest first."""
    grades = graded(judged)
    spread = grades.groupby(["query", "product_id"], sort=False)["grade"].agg(["min", "max", "size"])
    spread = spread[(spread["size"] >= 2) & (spread["max"] > spread["min"])]
    if spread.empty:
        return pd.DataFrame(columns=["query", "product_id", "grades", "spread"])
    spread = spread.assign(spread=spread["max"] - spread["min"]).sort_values("spread", ascending=False,
                                                                            kind="stable").head(limit)
    by_pair = grades.groupby(["query", "product_id"], sort=False)
    rows = [{"query": query, "product_id": product,
             "grades": ", ".join(f"{g}: {v:g}" for g, v in zip(*by_pair.get_group((query, product))[
                 ["grader", "grade"]].to_numpy().T)),
             "spread": float(row["spread"])} for (query, product), row in spread.iterrows()]
    return pd.DataFrame(rows)
