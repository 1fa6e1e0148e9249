"""Search trials by database URL: what the Search trials page and the CLI call.

A trial runs each configuration (a stored search preset, or a config being edited on Fusion &
rules) over its query set with the active search engine (`recsys.engines`, as served: the active
catalog and embedding model) and stores each configuration's top `depth` per query, so the pool
graders judge does not move when the engines do; running a configuration again adds a try.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pandas as pd

from db import queries
from db import trials as store
from db.engine import session_scope
from db.models import QuerySet, Trial
from recsys import active as active_state
from recsys import engines
from recsys.data.ingest import IngestOptions, IngestResult, ingest_file
from recsys.fusion import FusionConfig
from recsys.fusion import presets as preset_store
from recsys.trials import querysets
from recsys.trials import preference
from recsys.trials.judging import Scale, check_verdict, consensus, pooled, to_grade
from recsys.trials.scorecard import ConfigScore, compare, score

MIN_CONFIGS = 2
MAX_DEPTH = 50


@dataclass(frozen=True)
class QuerySetInfo:
    id: int
    name: str
    version: int
    source: str
    queries: list[str]
    traffic_share: float | None

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    @classmethod
    def of(cls, row: QuerySet) -> QuerySetInfo:
        return cls(row.id, row.name, row.version, row.source, list(row.queries), row.traffic_share)


@dataclass(frozen=True)
class Configuration:
    """A search configuration to try: a preset version, or a config with a name of its own."""

    name: str
    config: FusionConfig
    preset_id: int | None = None


@dataclass(frozen=True)
class TrialRun:
    """One stored run of a configuration: its try number and its top `depth` per query."""

    id: int
    name: str
    try_number: int
    config: dict
    rankings: dict[str, list[str]]
    embedding_model: str

    @property
    def label(self) -> str:
        return self.name if self.try_number == 1 else f"{self.name} (try {self.try_number})"


@dataclass(frozen=True)
class TrialInfo:
    id: int
    name: str
    query_set: QuerySetInfo
    depth: int
    scale: Scale
    runs: list[TrialRun]  # every try, oldest first

    @property
    def latest(self) -> list[TrialRun]:
        """The latest try of each configuration, in the order the configurations were added."""
        latest: dict[str, TrialRun] = {}
        for run in self.runs:
            latest[run.name] = run
        return list(latest.values())

    def pool(self) -> dict[str, list[str]]:
        """{query: products to judge} over every try (a new try only adds pairs)."""
        return pooled({run.id: run.rankings for run in self.runs}, self.depth, self.id)


def _search_log(url: str) -> pd.DataFrame:
    with session_scope(url) as session:
        version = queries.active_version(session, "search_log")
        return pd.DataFrame(columns=["query"]) if version is None else queries.search_log_frame(session, version.id)


def _catalog(url: str) -> pd.DataFrame:
    with session_scope(url) as session:
        version = queries.active_version(session, "catalog")
        if version is None:
            raise LookupError("no catalog is active: upload one on the Data page first")
        return queries.products_frame(session, version.id)


def save_query_set(url: str, name: str, queries_: list[str], source: str, actor: str,
                   note: str = "") -> QuerySetInfo:
    """Store `queries_` (checked: no blanks, no repeats) as the next version of `name`, with the
    share of the active search log's searches they account for."""
    if not name.strip():
        raise ValueError("a query set needs a name")
    kept = querysets.checked(queries_)
    share = querysets.traffic_share(kept, _search_log(url))
    with session_scope(url) as session:
        return QuerySetInfo.of(store.add_query_set(session, name.strip(), kept, source, actor, share, note))


def sample_queries(url: str, how: str, n: int, seed: int = 0) -> list[str]:
    """`n` queries sampled from the active data: the search log's most frequent ("frequent"), a
    random draw of its distinct queries ("random"), those of its most frequent queries the active
    search finds nothing for ("zero_result"), or the catalog's vocabulary ("vocabulary")."""
    if how == "vocabulary":
        return querysets.vocabulary_queries(_catalog(url)["title"], n)
    log = _search_log(url)
    if how in querysets.SAMPLES:
        return querysets.sample_search_log(log, how, n, seed)
    if how != "zero_result":
        raise ValueError(f"unknown sample {how!r}; choose one of frequent, random, zero_result, vocabulary")
    candidates = querysets.sample_search_log(log, "frequent", max(n * 20, 200))
    engine, _ = search_engine(url)
    found = engine.search_many(candidates, 1, matched_only=True, explain=False)
    empty = [query for query, hits in zip(candidates, found) if not hits][:n]
    if not empty:
        raise ValueError(f"the active search finds something for each of the search log's {len(candidates):,} "
                         "most frequent queries: there are no zero-result queries to sample")
    return empty


def get_query_set(url: str, name: str, version: int | None = None) -> QuerySetInfo:
    with session_scope(url) as session:
        row = store.find_query_set(session, name, version)
        if row is None:
            known = sorted(set(store.list_query_sets(session)["name"]))
            raise LookupError(f"there is no query set {name!r}" + (f" v{version}" if version else "")
                              + f"; there are: {', '.join(known) or 'none yet'}")
        return QuerySetInfo.of(row)


def list_query_sets(url: str) -> pd.DataFrame:
    with session_scope(url) as session:
        return store.list_query_sets(session)


def preset_configuration(url: str, name: str, version: int | None = None) -> Configuration:
    """The stored search preset `name` (version: default the latest); LookupError naming the presets."""
    with session_scope(url) as session:
        preset = preset_store.get_preset(session, "search", name, version)
    return Configuration(f"{preset.name} v{preset.version}", preset.config, preset.id)


def search_engine(url: str):
    """(the active search engine, fitted, and the active state it serves)."""
    state = active_state.read(url)
    spec = engines.specs_of(state).get("search")
    if spec is None:
        raise LookupError("no catalog is active: upload one on the Data page first")
    return engines.load_or_fit(spec, url), state


def _rankings(engine, state: active_state.Active, configuration: Configuration, query_list: list[str],
              depth: int) -> dict[str, list[str]]:
    hits = engine.with_fusion(state.resolve(configuration.config)).search_many(
        query_list, depth, matched_only=True, explain=False)
    return {query: [hit.product_id for hit in found] for query, found in zip(query_list, hits)}


def create_trial(url: str, name: str, query_set: QuerySetInfo, configurations: list[Configuration],
                 actor: str, depth: int = 10, scale: Scale | None = None) -> TrialInfo:
    """Run each configuration over the query set and store the trial, ready to judge."""
    if not name.strip():
        raise ValueError("a trial needs a name")
    names = [configuration.name for configuration in configurations]
    if len(set(names)) < MIN_CONFIGS:
        raise ValueError(f"a trial compares at least {MIN_CONFIGS} configurations with different names, "
                         f"not {', '.join(names) or 'none'}")
    if not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"the depth judged is 1 to {MAX_DEPTH} results per configuration, not {depth}")
    scale = scale or Scale()
    engine, state = search_engine(url)
    runs = [(configuration, _rankings(engine, state, configuration, query_set.queries, depth))
            for configuration in configurations]
    with session_scope(url) as session:
        if session.query(Trial).filter(Trial.name == name.strip()).first() is not None:
            raise ValueError(f"a trial named {name.strip()!r} exists already: choose another name")
        catalog = queries.active_version(session, "catalog")
        trial = store.add_trial(session, name.strip(), query_set.id, depth, scale.to_dict(),
                                None if catalog is None else catalog.id, actor)
        for configuration, rankings in runs:
            store.add_trial_config(session, trial.id, configuration.name, configuration.config.to_dict(), rankings,
                                   state.embedding.label, actor, configuration.preset_id)
        trial_id = trial.id
    return get_trial(url, trial_id)


def rerun(url: str, trial_id: int, configuration: Configuration, actor: str) -> TrialRun:
    """Run `configuration` over the trial's queries again (or for the first time): a new try."""
    trial = get_trial(url, trial_id)
    engine, state = search_engine(url)
    rankings = _rankings(engine, state, configuration, trial.query_set.queries, trial.depth)
    with session_scope(url) as session:
        row = store.add_trial_config(session, trial_id, configuration.name, configuration.config.to_dict(),
                                     rankings, state.embedding.label, actor, configuration.preset_id)
        return TrialRun(row.id, row.name, row.try_number, row.config, row.rankings, row.embedding_model)


def get_trial(url: str, trial_id: int) -> TrialInfo:
    with session_scope(url) as session:
        trial = session.get(Trial, trial_id)
        if trial is None:
            raise LookupError(f"there is no trial {trial_id}")
        runs = [TrialRun(row.id, row.name, row.try_number, row.config, row.rankings, row.embedding_model)
                for row in store.trial_configs(session, trial_id)]
        return TrialInfo(trial.id, trial.name, QuerySetInfo.of(session.get(QuerySet, trial.query_set_id)),
                         trial.depth, Scale.from_dict(trial.scale), runs)


def list_trials(url: str) -> pd.DataFrame:
    with session_scope(url) as session:
        return store.list_trials(session)


def judgments(url: str, trial_id: int) -> pd.DataFrame:
    with session_scope(url) as session:
        return store.judgments(session, trial_id)


def pairs_to_grade(url: str, trial_id: int, grader: str | None = None) -> pd.DataFrame:
    """query, product_id still to judge: by `grader` (their queue), or by anyone (None)."""
    return to_grade(get_trial(url, trial_id).pool(), judgments(url, trial_id), grader)


def progress(url: str, trial_id: int) -> pd.DataFrame:
    """grader, judged (grades, skips and "can't tell"), graded, of the pool's pairs."""
    pool = get_trial(url, trial_id).pool()
    pairs = {(query, product) for query, products in pool.items() for product in products}
    judged = judgments(url, trial_id)
    judged = judged.loc[[pair in pairs for pair in zip(judged["query"], judged["product_id"])]]
    rows = [{"grader": grader, "judged": len(frame), "graded": int((frame["verdict"] == "graded").sum()),
             "pool": len(pairs)} for grader, frame in judged.groupby("grader", sort=True)]
    return pd.DataFrame(rows, columns=["grader", "judged", "graded", "pool"])


def judge(url: str, trial_id: int, query: str, product_id: str, grader: str, grade: float | None = None,
          verdict: str = "graded") -> None:
    """Record `grader`'s grade of the pair (or a skip, or "can't tell"); a later word replaces an earlier."""
    check_verdict(verdict)
    trial = get_trial(url, trial_id)
    value = trial.scale.check(grade) if verdict == "graded" else None
    with session_scope(url) as session:
        store.save_judgment(session, trial_id, query, str(product_id), grader, value, verdict)


def import_judgments(url: str, trial_id: int, frame: pd.DataFrame, grader: str, file: str = "the file") -> int:
    """Store a table's (query, product_id, grade[, grader]) as judgments of the trial; returns how
    many. Every row is checked first (grade on the scale, a query of the trial's query set), and
    the first bad row is named with nothing stored."""
    missing = [column for column in ("query", "product_id", "grade") if column not in frame.columns]
    if missing:
        raise ValueError(f"{file} has no column(s) {', '.join(missing)}; it needs query, product_id, "
                         f"grade and, optionally, grader (it has {', '.join(map(str, frame.columns))})")
    trial = get_trial(url, trial_id)
    known = {querysets.normalise(query): query for query in trial.query_set.queries}
    rows = []
    for number, row in enumerate(frame.itertuples(index=False), start=2):  # line 1 is the header
        where = f"{file}, row {number}, column grade: "
        query = known.get(querysets.normalise(row.query))
        if query is None:
            raise ValueError(f"{file}, row {number}, column query: {row.query!r} is not a query of the trial's "
                             f"query set {trial.query_set.label}")
        if pd.isna(row.product_id) or not str(row.product_id).strip():
            raise ValueError(f"{file}, row {number}, column product_id: the product id is blank")
        who = str(getattr(row, "grader", "") or "").strip() or grader
        rows.append((query, str(row.product_id).strip(), who, trial.scale.check(row.grade, where)))
    with session_scope(url) as session:
        for query, product, who, grade in rows:
            store.save_judgment(session, trial_id, query, product, who, grade, "graded")
        queries.audit(session, grader, "trial_import_judgments", f"trial {trial_id}", rows=len(rows))
    return len(rows)


def consensus_grades(url: str, trial_id: int, how: str = "mean") -> pd.DataFrame:
    """query, product_id, grade (the graders' consensus), graders."""
    return consensus(judgments(url, trial_id), how)


def export_judgments(url: str, trial_id: int, how: str = "mean") -> pd.DataFrame:
    """query, product_id, grade: what `ingest --kind judgments` and `evaluate-search` read."""
    return consensus_grades(url, trial_id, how)[["query", "product_id", "grade"]]


def activate_judgments(url: str, trial_id: int, actor: str, how: str = "mean") -> IngestResult:
    """Store the trial's consensus grades as a new judgment list and make it the active one."""
    frame = export_judgments(url, trial_id, how)
    if frame.empty:
        raise ValueError(f"trial {trial_id} has no grades yet: judge some of its pairs first")
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return ingest_file(buffer.getvalue().encode(), IngestOptions("judgments"), actor=actor,
                       filename=f"trial-{trial_id}-judgments.csv", url=url)


@dataclass(frozen=True)
class Scorecard:
    trial: TrialInfo
    configs: list[ConfigScore]
    comparison: dict | None  # the last configuration against the first (the first is the baseline)
    graded_pairs: int
    side_by_side: dict | None = None  # `preference_result`

    def to_dict(self) -> dict:
        return {"trial_id": self.trial.id, "name": self.trial.name, "graded_pairs": self.graded_pairs,
                "configs": [config.to_dict() for config in self.configs], "comparison": self.comparison,
                "side_by_side": self.side_by_side}


def scorecard(url: str, trial_id: int, how: str = "mean", runs: list[TrialRun] | None = None) -> Scorecard:
    """Scores of the latest try of each configuration (or of `runs`) on the consensus grades."""
    trial = get_trial(url, trial_id)
    grades = consensus_grades(url, trial_id, how)
    chosen = runs or trial.latest
    scores = [score(run.label, run.rankings, grades, trial.scale) for run in chosen]
    comparison = compare(scores[0], scores[-1]) if len(scores) >= 2 else None
    return Scorecard(trial, scores, comparison, len(grades), preference_result(url, trial_id))


def history(url: str, trial_id: int, how: str = "mean") -> pd.DataFrame:
    """name, try, created_at, ndcg@10, precision@10, judged@10 of every try, on today's grades."""
    trial = get_trial(url, trial_id)
    grades = consensus_grades(url, trial_id, how)
    with session_scope(url) as session:
        created = {row.id: row.created_at for row in store.trial_configs(session, trial_id)}
    rows = []
    for run in trial.runs:
        result = score(run.label, run.rankings, grades, trial.scale).to_dict()
        rows.append({"name": run.name, "try": run.try_number, "created_at": created[run.id],
                     **{key: result[key] for key in ("ndcg@10", "precision@10", "judged@10")}})
    return pd.DataFrame(rows)


# --- side by side ------------------------------------------------------------------------------

@dataclass(frozen=True)
class SideBySide:
    """What a grader compares for a query: the two runs' lists, on the sides they are shown on."""

    query: str
    first: TrialRun
    second: TrialRun
    first_on_left: bool

    @property
    def left(self) -> TrialRun:
        return self.first if self.first_on_left else self.second

    @property
    def right(self) -> TrialRun:
        return self.second if self.first_on_left else self.first


def compared_runs(trial: TrialInfo) -> tuple[TrialRun, TrialRun]:
    """The runs a side-by-side compares: the latest try of the first configuration and of the last."""
    latest = trial.latest
    return latest[0], latest[-1]


def next_side_by_side(url: str, trial_id: int, grader: str) -> SideBySide | None:
    """The next query `grader` has not compared yet (in the query set's order), or None."""
    trial = get_trial(url, trial_id)
    first, second = compared_runs(trial)
    answers = preferences(url, trial_id)
    done = set(answers[(answers["grader"] == grader) & (answers["first"] == first.label)
                       & (answers["second"] == second.label)]["query"])
    for query in trial.query_set.queries:
        if query not in done:
            return SideBySide(query, first, second, preference.first_on_left(trial_id, query, grader))
    return None


def prefer(url: str, trial_id: int, query: str, grader: str, side: str) -> str:
    """Record that `grader` found the `side` list ("left", "right" or "same") better for `query`;
    returns what that says of the two configurations ("first", "second" or "same")."""
    trial = get_trial(url, trial_id)
    if query not in trial.query_set.queries:
        raise ValueError(f"{query!r} is not a query of trial {trial_id}")
    first, second = compared_runs(trial)
    first_left = preference.first_on_left(trial_id, query, grader)
    winner = preference.winner_of(side, first_left)
    with session_scope(url) as session:
        store.save_preference(session, trial_id, query, grader, first.label, second.label, first_left, winner)
    return winner


def preferences(url: str, trial_id: int) -> pd.DataFrame:
    with session_scope(url) as session:
        return store.preferences(session, trial_id)


def preference_result(url: str, trial_id: int) -> dict | None:
    """The side-by-side win rate of the compared runs (None before any answer)."""
    trial = get_trial(url, trial_id)
    first, second = compared_runs(trial)
    answers = preferences(url, trial_id)
    answers = answers[(answers["first"] == first.label) & (answers["second"] == second.label)]
    if answers.empty:
        return None
    return {"first": first.label, "second": second.label, "queries": int(answers["query"].nunique()),
            **preference.win_rate(answers)}
