"""What the REST service serves: one retriever and one recommender, with the versions they serve.

`ServingEngine.from_active(active)` serves an active state (`recsys.active.read`): the fitted
engines of its data versions and embedding model (`recsys.engines`, loaded from their folders,
fitted first when missing) under its active presets; `from_database(url)` reads the state first;
`from_frames(catalog, interactions)` fits from frames (benchmarks, tests). The REST service
follows the active state while it runs (`recsys.serving.app`): a new data version, preset or
model is served by a new engine built beside the old one.

Every answer carries the items (product id, title, score and, on request, why),
the per-stage times of the request (`recsys.timing.StageTimer`: the library
marks "encode", "retrieve", "fuse", "rules"; time the library does not mark
counts as "retrieve"), the model version (components, embedding model and data
versions, e.g. "hybrid+hybrid:embedding-v2@catalog-v1.events-v2") and the preset version.

>>> import pandas as pd
>>> catalog = pd.DataFrame({"product_id": ["a", "b", "c"],
...                         "title": ["Red mug", "Blue mug", "Garden chair"]})
>>> interactions = pd.DataFrame({"user_id": ["u", "u", "v"], "product_id": ["a", "b", "a"],
...                              "weight": 1.0})
>>> engine = ServingEngine.from_frames(catalog, interactions)  # doctest: +SKIP
>>> engine.search("red mug", k=1).items[0]["product_id"]  # doctest: +SKIP
'a'
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass

import numpy as np
import pandas as pd

from recsys import active, factory, fusion
from recsys import engines as store
from recsys.active import Active, EmbeddingModel, RunningExperiment, ServedPreset
from recsys.experiments import assignment
from recsys.fusion import presets as preset_store
from recsys.fusion.sponsored import SponsoredSlots
from recsys.recommenders.base import Reason
from recsys.timing import StageTimer, stage

SCOPES = ("search", "recommendations")
POPULAR_DEPTH = 1000
PRESET_LABEL = 160  # request_metrics.preset_version
_coin = random.SystemRandom()  # the client's request id must not decide who picks first


@dataclass
class Answer:
    """One response: items best first, per-stage milliseconds and the versions that made it."""

    items: list[dict]
    stages_ms: dict[str, float]
    model_version: str
    preset_version: str
    fallback: str | None = None  # "popular": an unknown user without a usable session history
    searched_query: str | None = None  # a search's query with its misspelled words corrected, if any were
    experiment: dict | None = None  # the experiment that answered: id, name, method, arm
    teams: list[str] | None = None  # interleaved: the arm each item came from
    # With `relevance_of`: how relevant each of those products is to the request, in [0, 1]
    # (`recsys.fusion.relevance`, from the lists the page was made of): what sponsored products need.
    relevance: dict[str, float] | None = None


def _plain(value) -> dict:
    return asdict(value) if is_dataclass(value) else dict(vars(value))


def shipped_presets() -> dict[str, ServedPreset]:
    """The shipped default fusion of each scope, as served when no preset is stored."""
    return {scope: ServedPreset(scope, preset_store.default_config(scope)) for scope in SCOPES}


@dataclass
class ServingEngine:
    """A fitted retriever and recommender plus the versions they were built from."""

    retriever: object
    recommender: object
    titles: dict[str, str]
    model_version: str
    presets: dict[str, ServedPreset] = field(default_factory=shipped_presets)
    data_versions: dict[str, int] = field(default_factory=dict)
    embedding: EmbeddingModel = field(default_factory=EmbeddingModel)
    experiment: RunningExperiment | None = None
    arms: dict[str, object] = field(default_factory=dict)  # the experiment's retriever of each arm

    def __post_init__(self) -> None:
        self.known_users = set(map(str, self.recommender.user_ids))
        self.known_items = set(map(str, self.recommender.item_ids))
        self.known_products = set(self.titles)
        order = np.argsort(-np.asarray(self.recommender.popularity, dtype=np.float64), kind="stable")
        # The all-time most popular (customers per product), what live popularity is blended with.
        self.popular = [(str(self.recommender.item_ids[i]), float(self.recommender.popularity[i]))
                        for i in order[:POPULAR_DEPTH]]

    @staticmethod
    def _model_version(retriever, recommender, embedding: EmbeddingModel, data: dict[str, int]) -> str:
        return (f"{retriever.name}+{recommender.name}:{embedding.label}"
                f"@catalog-v{data.get('catalog', '-')}.events-v{data.get('events', '-')}")

    @classmethod
    def from_frames(cls, catalog: pd.DataFrame, interactions: pd.DataFrame, *,
                    presets: dict[str, ServedPreset] | None = None,
                    data_versions: dict[str, int] | None = None,
                    embedding: EmbeddingModel | None = None) -> ServingEngine:
        """Fit both components: search on `catalog` (product_id, title, optional category,
        price, in_stock), recommendations on `interactions` (user_id, product_id, weight);
        their semantic sources encode with `embedding` (default: the shipped model)."""
        presets = presets or shipped_presets()
        embedding = embedding or EmbeddingModel()
        catalog = catalog.assign(product_id=catalog["product_id"].astype(str))
        retriever = factory.build_retriever(catalog, presets["search"].config, embedding.path)
        recommender = factory.build_recommender(interactions, catalog, presets["recommendations"].config,
                                              embedding.path)
        data = data_versions or {}
        titles = dict(zip(catalog["product_id"], catalog["title"].astype(str)))
        return cls(retriever, recommender, titles, cls._model_version(retriever, recommender, embedding, data),
                   presets, dict(data), embedding)

    @classmethod
    def from_active(cls, active: Active, load: Callable[[store.EngineSpec], object] | None = None) -> ServingEngine:
        """The engine of an active state: its fitted engines under its presets; LookupError without
        an active catalog and events. `load(spec)` gives a fitted engine (default: from its folder,
        fitted here when missing)."""
        specs = store.specs_of(active)
        if "recommendations" not in specs:
            raise LookupError("no active catalog and events: upload them on the Data page first")
        load = load or (lambda spec: store.load_or_fit(spec, active.url))
        fitted = load(specs["search"])
        retriever = fitted.with_fusion(active.presets["search"].config)
        recommender = load(specs["recommendations"]).with_fusion(active.presets["recommendations"].config)
        data = {kind: active.version(kind) for kind in ("catalog", "events")}
        experiment = active.experiment
        arms = {} if experiment is None else {arm: fitted.with_fusion(preset.config)
                                              for arm, preset in experiment.arms.items()}
        return cls(retriever, recommender, dict(recommender.item_titles),
                   cls._model_version(retriever, recommender, active.embedding, data),
                   dict(active.presets), data, active.embedding, experiment, arms)

    @classmethod
    def from_database(cls, url: str | None = None) -> ServingEngine:
        """`from_active` of the database's active state."""
        return cls.from_active(active.read(url))

    def warm_up(self) -> None:
        """Answer one request of each kind, so the first client does not pay for lazy loading
        (the first search took 8.8 s instead of 50 ms on the Home Depot catalog)."""
        self.search("warm up", 1)
        if len(self.recommender.user_ids):
            self.recommend(str(self.recommender.user_ids[0]), 1)
        if self.known_items:
            self.similar(next(iter(self.known_items)), 1)

    # --- answers ---------------------------------------------------------------

    def _item(self, product_id: str, score: float, explanation: dict | None) -> dict:
        item = {"product_id": product_id, "title": self.titles.get(product_id, ""),
                "score": float(score)}
        if explanation is not None:
            item["explanation"] = explanation
        return item

    def sponsored(self, scope: str) -> SponsoredSlots | None:
        """The sponsored slots the active preset of `scope` names; None: its pages carry no ads."""
        return SponsoredSlots.from_preset(self.presets[scope].config)

    @property
    def attributes(self) -> dict[str, dict]:
        """Each product's catalog attributes (category, in_stock, ...), as the search's rules read them."""
        return getattr(self.retriever, "attributes", {})

    def search(self, query: str, k: int = 10, *, category: str | None = None,
               explain: bool = False, unit: str | None = None, relevance_of: Sequence[str] = ()) -> Answer:
        """The top-k products for `query` (ValueError for a blank query).

        `category`, the shopper's current category, is what category-scoped rules test. `unit`
        ("session:S" or "user:U") is who searches: under a running experiment that takes the unit,
        the answer is one arm's list (A/B) or both arms' lists interleaved (each item with its
        `team`), the coin tosses of the interleaving drawn afresh for each request. `relevance_of`:
        products whose relevance to the query the answer carries (read from the same candidate lists).
        """
        scoped = {} if category is None else {"category": category}
        experiment = self.experiment
        taken = experiment is not None and assignment.in_experiment(experiment.id, unit, experiment.traffic)
        arm = None
        with StageTimer() as timer, stage("retrieve"):
            # Only what the sources found: a query nothing matches gets no items, not the catalog's first k.
            relevance = None
            if not taken and relevance_of:
                hits, found = self.retriever.search_relevance(query, k, relevance_of, matched_only=True,
                                                              explain=explain, **scoped)
                relevance = dict(zip(relevance_of, found.tolist()))
            elif not taken:
                hits = self.retriever.search(query, k, matched_only=True, explain=explain, **scoped)
            elif experiment.method == "ab":
                arm = assignment.ab_arm(experiment.id, unit)
                hits = self.arms[arm].search(query, k, matched_only=True, explain=explain, **scoped)
            else:
                arm = assignment.INTERLEAVED
                lists = {name: self.arms[name].search(query, k, matched_only=True, explain=explain, **scoped)
                         for name in assignment.ARMS}
            if taken and relevance_of:  # the arms' pages; relevance by the served preset, one retrieval more
                read = self.retriever.candidates([query])[0]
                relevance = dict(zip(relevance_of, self.retriever.relevance(read, relevance_of).tolist()))
        teams = None
        if arm == assignment.INTERLEAVED:
            by_id = {name: {hit.product_id: hit for hit in found} for name, found in lists.items()}
            products, teams = assignment.team_draft(*([hit.product_id for hit in lists[name]]
                                                      for name in assignment.ARMS), k, _coin)
            hits = [by_id[team][product] for product, team in zip(products, teams)]
        items = [self._item(hit.product_id, hit.score, self._search_explanation(hit) if explain else None)
                 for hit in hits]
        for item, team in zip(items, teams or ()):
            item["team"] = team
        correction = self.retriever.correct(query)
        preset = self.presets["search"].label
        answered_by = None
        if arm is not None:
            answered_by = {"id": experiment.id, "name": experiment.name, "method": experiment.method,
                           "arm": arm}
            preset = (experiment.arms[arm].label if arm in experiment.arms else
                      " + ".join(experiment.arms[name].label for name in assignment.ARMS))[:PRESET_LABEL]
        return Answer(items, timer.ms, self.model_version, preset,
                      searched_query=correction.query if correction.changed else None,
                      experiment=answered_by, teams=teams, relevance=relevance)

    @staticmethod
    def _search_explanation(hit) -> dict:
        return {"reasons": [_plain(reason) for reason in hit.reasons],
                "sources": {name: _plain(part) for name, part in getattr(hit, "sources", {}).items()},
                "effects": [_plain(effect) for effect in getattr(hit, "effects", [])]}

    def recommend(self, user_id: str, k: int = 10, history: list[str] | None = None, *,
                  explain: bool = False, trending: Callable[[], dict[str, float]] | None = None,
                  relevance_of: Sequence[str] = ()) -> Answer:
        """The top-k products for a user, scored with the current session's `history` too.

        A user the model does not know is scored from `history`; without a usable
        history (no product the model knows) the answer is the most popular
        products, marked ``fallback="popular"``: with `trending` (a function giving product -> recent
        activity, `recsys.experiments.live.LiveView.trending`, called only then), all-time and recent
        popularity blended. `relevance_of`: products whose relevance to the user the answer carries
        (from the recommender's candidate lists; none on a page of popular products).
        """
        history = [str(p) for p in history or []]
        usable = [p for p in history if p in self.known_items] or None
        fallback = "popular" if self.recommender.falls_back(user_id, usable) else None
        recent = trending() if fallback and trending is not None else None  # asked for only when needed
        if recent:
            return self._trending(k, set(history), recent, explain)
        with StageTimer() as timer, stage("retrieve"):
            lists = self.recommender.candidates([user_id], [usable],
                                                depth=max(self.recommender.fusion.candidates, k))[0]
            fused = self.recommender.fuse_candidates(lists, k)
            relevance = (dict(zip(relevance_of, fusion.relevance(lists, self.recommender.fusion,
                                                                 relevance_of).tolist()))
                         if relevance_of else None)
        items = []
        for item in fused:
            explanation = None
            if explain:  # the reasons of the sources that put the product in the list, as its parts show
                reasons = self.recommender.explain(user_id, item.product_id, history=usable,
                                                   sources=list(item.sources))
                explanation = {"reasons": [_plain(reason) for reason in reasons],
                               "sources": {name: _plain(part) for name, part in item.sources.items()},
                               "effects": [_plain(effect) for effect in item.effects]}
            items.append(self._item(item.product_id, item.score, explanation))
        return Answer(items, timer.ms, self.model_version, self.presets["recommendations"].label,
                      fallback, relevance=relevance)

    def _trending(self, k: int, seen: set[str], trending: dict[str, float], explain: bool) -> Answer:
        """The most popular products, all-time (customers) and recent (live events) each scaled
        to 0..1 and added: a product the shop's visitors are busy with now rises within a minute."""
        with StageTimer() as timer, stage("retrieve"):
            top_all = self.popular[0][1] if self.popular and self.popular[0][1] > 0 else 1.0
            top_recent = max(trending.values())
            scores = {product: count / top_all for product, count in self.popular}
            for product, activity in trending.items():
                if product in self.known_products:
                    scores[product] = scores.get(product, 0.0) + activity / top_recent
            ranked = sorted(((score, product) for product, score in scores.items() if product not in seen),
                            key=lambda pair: (-pair[0], pair[1]))[:k]
        items = []
        for score, product in ranked:
            recent = trending.get(product, 0.0)
            text = "popular with the shop's customers" + (
                f" and busy now (recent activity {recent:g})" if recent else "")
            explanation = ({"reasons": [_plain(Reason("popular", text, score))], "sources": {}, "effects": []}
                           if explain else None)
            items.append(self._item(product, score, explanation))
        return Answer(items, timer.ms, self.model_version, self.presets["recommendations"].label, "popular")

    def similar(self, product_id: str, k: int = 10) -> Answer:
        """The k products most like `product_id`; LookupError when the model does not know it."""
        if product_id not in self.known_items:
            raise LookupError(f"product {product_id!r} is not in the served model; check the id "
                              "against the active catalog")
        with StageTimer() as timer, stage("retrieve"):
            ranking = self.recommender.similar_items(product_id, k)
        items = [self._item(p, score, None) for p, score in ranking]
        return Answer(items, timer.ms, self.model_version, self.presets["recommendations"].label)
