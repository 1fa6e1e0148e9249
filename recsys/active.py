"""What is active, in one answer, and whether it fits together.

`read(url)` reads in one go what the service, the pages, training, evaluation and the CLI
serve or build on: the active dataset versions, the implicit-feedback weights, the active preset
of each scope, the active embedding model and the active reranker with what it was trained over.
`Active.problems` says in words what does not fit (a model whose folder is gone, a learned ranker
trained over another embedding model, a preset reranking with a folder that no longer exists).
`recsys.engines` turns an `Active` into the specs of the engines to fit and load, and
`recsys.serving.engine.ServingEngine.from_active` into what the REST service serves.

>>> active = read()  # doctest: +SKIP
>>> active.versions_label, active.presets["search"].label  # doctest: +SKIP
('catalog-v1.events-v2', 'default v1')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from db import experiments as experiment_store
from db import queries
from db.engine import database_url, session_scope
from db.models import PRESET_SCOPES
from recsys import model_registry as registry
from recsys.data.interactions import SETTING_KEY, ImplicitWeights
from recsys.fusion import FusionConfig
from recsys.fusion import presets as preset_store
from recsys.search import rerank
from recsys.search.ltr import LEARNED_RANKER

DEFAULT_PRESET_LABEL = "default"


@dataclass(frozen=True)
class DataVersion:
    """An active dataset version: its id, when it was stored (ids repeat across databases) and rows."""

    kind: str
    id: int
    created_at: datetime
    rows: int
    source: str
    erasures: int = 0  # rows were erased from it this many times (recsys.erasure): engines fit again


@dataclass(frozen=True)
class ServedPreset:
    """The fusion config a scope is served with: the active preset's, or the shipped default."""

    scope: str
    config: FusionConfig  # as served: the active reranker's folder in place of ACTIVE_RERANKER
    name: str = DEFAULT_PRESET_LABEL
    version: int | None = None  # None: no preset is stored, the shipped default is served
    preset_id: int | None = None
    stored: FusionConfig | None = None  # as the preset stores it, when that differs from `config`

    @property
    def saved(self) -> FusionConfig:
        """The config as stored (what an editor starts from)."""
        return self.stored or self.config

    @property
    def label(self) -> str:
        """E.g. "summer-sale v3", or "default" when the shipped default is served."""
        return self.name if self.version is None else f"{self.name} v{self.version}"


@dataclass(frozen=True)
class EmbeddingModel:
    """The embedding model the semantic sources encode with."""

    path: str | None = None  # a sentence-transformers folder; None: the shipped all-MiniLM-L6-v2
    label: str = "embedding-base"
    version: int | None = None
    training_source: str | None = None  # what it was fine-tuned on ("judgments", ...), if it was
    problem: str | None = None  # why the active model is not used, e.g. its folder is missing


@dataclass(frozen=True)
class ActiveReranker:
    """The reranker the model registry marks active (a search preset turns reranking on)."""

    path: str
    version: int
    trained_over: str | None  # the embedding model folder a learned ranker read (None: shipped / unknown)
    kind: str | None  # its `recsys.search.rerank.Reranker.kind`; None when its folder holds none
    top_n: int | None = None  # how many fused items it was trained to order, if it says

    @property
    def learned(self) -> bool:
        """A learned ranker, which reads the sources' scores (rather than a cross-encoder)."""
        return self.kind == LEARNED_RANKER


@dataclass(frozen=True)
class RunningExperiment:
    """The online experiment the REST service runs: a control and a treatment search preset."""

    id: int
    name: str
    method: str  # "interleaving" or "ab"
    traffic: float
    arms: dict[str, ServedPreset]  # "control", "treatment": as served (rerankers resolved)

    @property
    def key(self) -> list:
        return [self.id, self.method, self.traffic, {arm: [preset.label, preset.config.to_dict()]
                                                     for arm, preset in sorted(self.arms.items())}]


@dataclass(frozen=True)
class Active:
    """The active state of one database."""

    url: str
    data: dict[str, DataVersion]
    implicit_weights: ImplicitWeights
    presets: dict[str, ServedPreset]
    embedding: EmbeddingModel
    reranker: ActiveReranker | None
    problems: tuple[str, ...] = field(default_factory=tuple)
    experiment: RunningExperiment | None = None

    def version(self, kind: str) -> int | None:
        found = self.data.get(kind)
        return None if found is None else found.id

    @property
    def versions_label(self) -> str:
        """The data versions served, e.g. "catalog-v1.events-v2"."""
        return (f"catalog-v{self.version('catalog') or '-'}"
                f".events-v{self.version('events') or '-'}")

    @property
    def trained_on_judgments(self) -> bool:
        """Whether the active embedding model or reranker learned from the shop's judgments."""
        return self.reranker is not None or self.embedding.training_source == "judgments"

    def resolve(self, config: FusionConfig) -> FusionConfig:
        """`config` as this state serves it: a preset that reranks with the active reranker
        (`ACTIVE_RERANKER`) gets its folder, or reranks with nothing when none is usable. What
        pages fuse with an edited config, and what trials search with."""
        return config.with_reranker(_usable_folder(self.reranker, self.embedding))


def _usable_folder(reranker: ActiveReranker | None, embedding: EmbeddingModel) -> str | None:
    """The active reranker's folder, None when there is none, its folder holds none, or it is a learned
    ranker trained over another embedding model than the active one (it would read moved scores)."""
    if reranker is None or reranker.kind is None or _over_another_model(reranker, embedding):
        return None
    return reranker.path


def _over_another_model(reranker: ActiveReranker, embedding: EmbeddingModel) -> bool:
    return reranker.learned and reranker.trained_over != embedding.path


def _embedding_model(url: str) -> EmbeddingModel:
    model = registry.active_model("embedding", url)
    if model is None:
        return EmbeddingModel()
    folder = model.folder
    if not folder.is_dir():
        return EmbeddingModel(problem=f"the active embedding model v{model.version} is missing its folder "
                                      f"{folder}; the shipped all-MiniLM-L6-v2 is used instead")
    return EmbeddingModel(str(folder), f"embedding-v{model.version}", model.version,
                          (model.training_data or {}).get("source"))


def _reranker(url: str) -> ActiveReranker | None:
    model = registry.active_model("reranker", url)
    if model is None:
        return None
    engine = (model.training_data or {}).get("engine")
    folder = model.folder
    kind = rerank.kind_of(folder)
    return ActiveReranker(str(folder), model.version,
                          None if engine is None else engine.get("embedding_model"),
                          None if kind is None else kind.kind, None if kind is None else kind.saved_top_n(folder))


def read(url: str | None = None) -> Active:
    """The active state of the database `url` (default `DATABASE_URL`)."""
    url = url or database_url()
    with session_scope(url) as session:
        data = {}
        for kind in ("catalog", "events", "search_log", "judgments"):
            version = queries.active_version(session, kind)
            if version is not None:
                data[kind] = DataVersion(kind, version.id, version.created_at, version.row_count, version.source,
                                         len((version.report or {}).get("erasures", [])))
        weights = ImplicitWeights.from_dict(queries.get_setting(session, SETTING_KEY))
        stored = {scope: preset_store.active_preset(session, scope) for scope in PRESET_SCOPES}
        running = experiment_store.running(session)
        arms = {} if running is None else {
            arm: preset_store.preset_by_id(session, preset_id)
            for arm, preset_id in (("control", running.control_preset_id),
                                   ("treatment", running.treatment_preset_id))}
    embedding, reranker = _embedding_model(url), _reranker(url)
    folder = _usable_folder(reranker, embedding)
    served = {}
    for scope, preset in stored.items():
        config = preset_store.default_config(scope) if preset is None else preset.config
        resolved = config.with_reranker(folder)
        served[scope] = ServedPreset(scope, resolved, *(() if preset is None else (
            preset.name, preset.version, preset.id)), stored=None if resolved == config else config)
    experiment = None if running is None else RunningExperiment(
        running.id, running.name, running.method, running.traffic,
        {arm: ServedPreset("search", preset.config.with_reranker(folder), preset.name, preset.version,
                           preset.id) for arm, preset in arms.items()})
    return Active(url, data, weights, served, embedding, reranker,
                  tuple(_problems(served, embedding, reranker)), experiment)


def _problems(presets: dict[str, ServedPreset], embedding: EmbeddingModel,
              reranker: ActiveReranker | None) -> list[str]:
    problems = [embedding.problem] if embedding.problem else []
    if reranker is not None and reranker.kind is None:
        problems.append(f"the active reranker v{reranker.version} is missing from its folder {reranker.path}: "
                        "activate another version or train one on the Fine-tune page")
    if reranker is not None and _over_another_model(reranker, embedding):
        problems.append(f"the active learned ranker v{reranker.version} was trained over another embedding model "
                        "than the active one, so search is served without it: train it again on the "
                        "Fine-tune page before reranking with it")
    for preset in presets.values():
        if preset.saved.follows_active_reranker and preset.saved.rerank_top and not preset.config.reranks:
            problems.append(f"the {preset.scope} preset {preset.label} reranks with the active reranker, "
                            "but no usable reranker is active: it is served without reranking")
        folder = preset.config.reranker
        if preset.config.reranks and folder and not Path(folder).is_dir():
            problems.append(f"the {preset.scope} preset {preset.label} reranks with {folder}, which no longer "
                            "exists: turn reranking off and on again on Fusion & rules")
    return problems
