"""What the REST service serves: one retriever and one recommender, fitted once, with versions.

`ServingEngine.from_database(url)` loads the active catalog and events (weighted
by the stored implicit-feedback setting, `recsys.data.interactions.load_active`),
the active fusion presets and the active embedding model of the model registry
(`recsys.training.registry`), which the semantic sources of search and
recommendations encode with; `ServingEngine.from_frames(catalog, interactions)`
does the same from frames (benchmarks, tests). The engine is built once when
the service starts; a new data version, preset or model is served after a restart.

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

from dataclasses import asdict, dataclass, field, is_dataclass

import pandas as pd

from recsys.timing import StageTimer, stage

SCOPES = ("search", "recommendations")
DEFAULT_PRESET = "default"


@dataclass
class Answer:
    """One response: items best first, per-stage milliseconds and the versions that made it."""

    items: list[dict]
    stages_ms: dict[str, float]
    model_version: str
    preset_version: str
    fallback: str | None = None  # "popular": an unknown user without a usable session history
    searched_query: str | None = None  # a search's query with its misspelled words corrected, if any were


@dataclass
class Fusion:
    """The fusion config a scope is served with, and its label, e.g. "summer-sale v3"."""

    config: dict | None = None  # None: the component's own default
    label: str = DEFAULT_PRESET


@dataclass
class EmbeddingModel:
    """The embedding model the semantic sources encode with, and its label, e.g. "embedding-v2"."""

    path: str | None = None  # a sentence-transformers folder; None: the shipped all-MiniLM-L6-v2
    label: str = "embedding-base"
    problem: str | None = None  # why the active model is not used, e.g. its folder is missing


def _plain(value) -> dict:
    return asdict(value) if is_dataclass(value) else dict(vars(value))


def active_fusion(url: str | None = None) -> dict[str, Fusion]:
    """The active preset of each scope, or the shipped default where none is active."""
    from db.engine import session_scope
    from recsys.fusion import presets

    chosen = {}
    with session_scope(url) as session:
        for scope in SCOPES:
            preset = presets.active_preset(session, scope)
            if preset is None:
                chosen[scope] = Fusion(presets.default_config(scope).to_dict(), DEFAULT_PRESET)
            else:
                chosen[scope] = Fusion(preset.config.to_dict(), f"{preset.name} v{preset.version}")
    return chosen


def active_embedding_model(url: str | None = None) -> EmbeddingModel:
    """The registry's active embedding model, or the shipped one where none is active or its folder
    is gone (then `problem` says so)."""
    from recsys.training import registry

    model = registry.active_model("embedding", url)
    if model is None:
        return EmbeddingModel()
    folder = registry.artifact_folder(model["artifact_path"])
    if not folder.is_dir():
        return EmbeddingModel(problem=f"the active embedding model v{model['version']} is missing its folder "
                                      f"{folder}; the shipped all-MiniLM-L6-v2 is used instead")
    return EmbeddingModel(str(folder), f"embedding-v{model['version']}")


def _hybrid_params(fusion: Fusion, model_path: str | None) -> dict:
    params = {} if fusion.config is None else {"fusion": fusion.config}
    if model_path is not None:
        params["source_configs"] = {"semantic": {"model_path": model_path}}
    return params


def build_retriever(catalog: pd.DataFrame, fusion: Fusion, model_path: str | None = None):
    """The hybrid retriever (BM25 + semantic) with the scope's fusion config, fitted on `catalog`;
    the semantic source encodes with the model in folder `model_path` (None: the shipped one)."""
    from recsys.search import get

    return get("hybrid")(**_hybrid_params(fusion, model_path)).fit(catalog)


def build_recommender(interactions: pd.DataFrame, catalog: pd.DataFrame, fusion: Fusion,
                      model_path: str | None = None):
    """The hybrid recommender (CF + semantic) with the scope's fusion config, fitted on
    `interactions`; the semantic source encodes with `model_path` (None: the shipped model)."""
    from recsys import recommenders

    return recommenders.get("hybrid")(**_hybrid_params(fusion, model_path)).fit(interactions, catalog)


@dataclass
class ServingEngine:
    """A fitted retriever and recommender plus the versions they were built from."""

    retriever: object
    recommender: object
    titles: dict[str, str]
    model_version: str
    presets: dict[str, Fusion] = field(default_factory=lambda: {s: Fusion() for s in SCOPES})

    def __post_init__(self) -> None:
        self.known_users = set(map(str, self.recommender.user_ids))
        self.known_items = set(map(str, self.recommender.item_ids))

    @classmethod
    def from_frames(cls, catalog: pd.DataFrame, interactions: pd.DataFrame, *,
                    presets: dict[str, Fusion] | None = None,
                    data_versions: dict[str, int] | None = None,
                    embedding: EmbeddingModel | None = None) -> ServingEngine:
        """Fit both components: search on `catalog` (product_id, title, optional category,
        price, in_stock), recommendations on `interactions` (user_id, product_id, weight);
        their semantic sources encode with `embedding` (default: the shipped model)."""
        presets = presets or {scope: Fusion() for scope in SCOPES}
        embedding = embedding or EmbeddingModel()
        catalog = catalog.assign(product_id=catalog["product_id"].astype(str))
        retriever = build_retriever(catalog, presets["search"], embedding.path)
        recommender = build_recommender(interactions, catalog, presets["recommendations"], embedding.path)
        data = data_versions or {}
        model_version = (f"{retriever.name}+{recommender.name}:{embedding.label}"
                         f"@catalog-v{data.get('catalog', '-')}.events-v{data.get('events', '-')}")
        titles = dict(zip(catalog["product_id"], catalog["title"].astype(str)))
        return cls(retriever, recommender, titles, model_version, presets)

    @classmethod
    def from_database(cls, url: str | None = None) -> ServingEngine:
        """The engine of the active catalog, events, presets and embedding model; LookupError
        without data."""
        from recsys.data.interactions import load_active

        interactions, catalog, versions = load_active(url)
        return cls.from_frames(catalog, interactions, presets=active_fusion(url),
                               data_versions=versions, embedding=active_embedding_model(url))

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

    def search(self, query: str, k: int = 10, *, category: str | None = None,
               explain: bool = False) -> Answer:
        """The top-k products for `query` (ValueError for a blank query).

        `category`, the shopper's current category, is what category-scoped rules test.
        """
        scoped = {} if category is None else {"category": category}
        with StageTimer() as timer, stage("retrieve"):
            # Only what the sources found: a query nothing matches gets no items, not the catalog's first k.
            hits = self.retriever.search(query, k, matched_only=True, explain=explain, **scoped)
        items = [self._item(hit.product_id, hit.score, self._search_explanation(hit) if explain else None)
                 for hit in hits]
        correction = self.retriever.correct(query)
        return Answer(items, timer.ms, self.model_version, self.presets["search"].label,
                      searched_query=correction.query if correction.changed else None)

    @staticmethod
    def _search_explanation(hit) -> dict:
        return {"reasons": [_plain(reason) for reason in hit.reasons],
                "sources": {name: _plain(part) for name, part in getattr(hit, "sources", {}).items()},
                "effects": [_plain(effect) for effect in getattr(hit, "effects", [])]}

    def recommend(self, user_id: str, k: int = 10, history: list[str] | None = None, *,
                  explain: bool = False) -> Answer:
        """The top-k products for a user, scored with the current session's `history` too.

        A user the model does not know is scored from `history`; without a usable
        history (no product the model knows) the answer is the most popular
        products, marked ``fallback="popular"``.
        """
        history = [str(p) for p in history or []]
        usable = [p for p in history if p in self.known_items] or None
        fallback = "popular" if self.recommender.falls_back(user_id, usable) else None
        with StageTimer() as timer, stage("retrieve"):
            lists = self.recommender.candidates([user_id], [usable],
                                                depth=max(self.recommender.fusion.candidates, k))[0]
            fused = self.recommender.fuse_candidates(lists, k)
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
                      fallback)

    def similar(self, product_id: str, k: int = 10) -> Answer:
        """The k products most like `product_id`; LookupError when the model does not know it."""
        if product_id not in self.known_items:
            raise LookupError(f"product {product_id!r} is not in the served model; check the id "
                              "against the active catalog")
        with StageTimer() as timer, stage("retrieve"):
            ranking = self.recommender.similar_items(product_id, k)
        items = [self._item(p, score, None) for p, score in ranking]
        return Answer(items, timer.ms, self.model_version, self.presets["recommendations"].label)
