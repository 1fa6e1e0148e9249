"""SQLAlchemy 2.x models of the workbench.

Shop data is versioned: every successful upload of a catalog, an events file, a
search log or a relevance-judgment list becomes one row of `dataset_versions`,
and the rows it brought (products, users, events, search logs, judgments) carry
that version's id. One version per kind is active at a time; activating an
older one is a roll-back and touches no data.

"users" are the shop's customers; the people who log in to the workbench are
"accounts".
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


DATASET_KINDS = ("catalog", "events", "search_log", "judgments")
EVENT_TYPES = ("view", "click", "cart", "purchase", "rating")
ROLES = ("admin", "operator", "merchandiser", "viewer", "grader", "advertiser")


class DatasetVersion(Base):
    """One successful upload of one kind of shop data."""

    __tablename__ = "dataset_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    source: Mapped[str] = mapped_column(String(512))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # "storing" while its rows are written (in bounded transactions, so that other writers of a
    # SQLite database never wait long): invisible to every query until it is "ready".
    status: Mapped[str] = mapped_column(String(16), default="ready", server_default="ready")
    # The ingest report (validation and cleaning counts with examples) and the
    # column mapping that produced this version, as JSON.
    report: Mapped[dict] = mapped_column(JSON, default=dict)
    mapping: Mapped[dict] = mapped_column(JSON, default=dict)
    # For events, search logs and judgments: the catalog version they were
    # checked against for unknown products.
    catalog_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("dataset_versions.id"), nullable=True
    )


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("dataset_version_id", "product_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_version_id: Mapped[int] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="CASCADE"), index=True
    )
    product_id: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    category: Mapped[str | None] = mapped_column(String(256), nullable=True)
    price: Mapped[float | None] = mapped_column(Float, nullable=True)
    in_stock: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


class User(Base):
    """A shop customer, as seen in one events version."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("dataset_version_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_version_id: Mapped[int] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(String(128))
    country: Mapped[str | None] = mapped_column(String(128), nullable=True)


class Event(Base):
    """A view, click, cart, purchase or rating of a product by a user."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_version_user", "dataset_version_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_version_id: Mapped[int] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="CASCADE")
    )
    user_id: Mapped[str] = mapped_column(String(128))
    product_id: Mapped[str] = mapped_column(String(128))
    event_type: Mapped[str] = mapped_column(String(16))
    # Quantity for carts and purchases, the rating for ratings, 1 otherwise.
    value: Mapped[float] = mapped_column(Float, default=1.0)
    timestamp: Mapped[datetime] = mapped_column(DateTime)
    session_id: Mapped[str | None] = mapped_column(String(128), nullable=True)


class SearchLog(Base):
    """A query a customer typed, and the product they clicked if any."""

    __tablename__ = "search_logs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_version_id: Mapped[int] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="CASCADE"), index=True
    )
    query: Mapped[str] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    product_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    timestamp: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    session_id: Mapped[str | None] = mapped_column(String(128), nullable=True)


class Judgment(Base):
    """A human relevance grade of a product for a query."""

    __tablename__ = "judgments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_version_id: Mapped[int] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="CASCADE"), index=True
    )
    query: Mapped[str] = mapped_column(Text)
    product_id: Mapped[str] = mapped_column(String(128))
    grade: Mapped[float] = mapped_column(Float)


class Account(Base):
    """Someone who logs in to the workbench."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(32))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)
    # Wrong passwords in a row, and until when they lock the account (recsys.accounts).
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # The advertiser (a supplier or brand) an account of role "advertiser" acts for; None otherwise.
    advertiser: Mapped[str | None] = mapped_column(String(128), nullable=True)


class LoginSession(Base):
    """A login that survives a page reload: the browser keeps a random token in a cookie, this
    table its SHA-256 (never the token), until it expires or is ended by a logout or an account change."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class AuditEntry(Base):
    """Who did what, and when: uploads, activations, logins, account changes."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utc_now, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(256), nullable=True)
    details: Mapped[dict] = mapped_column(JSON, default=dict)


class Setting(Base):
    """A named JSON setting, such as the implicit-feedback weights."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[dict] = mapped_column(JSON)
    updated_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)


JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")


class Job(Base):
    """Long work (evaluation, tuning, fine-tuning, fitting engines) run by a worker process.

    The page that starts a job polls this row; the worker that claimed it is the only writer of
    progress and renews its lease (`lease_until`) while it runs, on this machine or another; a job
    whose lease ran out is marked failed by whoever looks next.
    """

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[dict] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)  # host:pid of the claimant
    lease_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class EvaluationResult(Base):
    """One algorithm's offline scores in one evaluation run, kept to compare runs."""

    __tablename__ = "evaluation_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"),
                                               nullable=True, index=True)
    algorithm: Mapped[str] = mapped_column(String(64))
    split: Mapped[str] = mapped_column(String(32))
    k: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    events_version_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)


PRESET_SCOPES = ("search", "recommendations")


class Preset(Base):
    """One version of a merchandiser's named fusion preset: method, weights and rules.

    Saving a preset under a name that exists adds a version; nothing is
    overwritten. One version per scope is active (served); activating an
    earlier version is a roll-back.
    """

    __tablename__ = "presets"
    __table_args__ = (UniqueConstraint("scope", "name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    # recsys.fusion.FusionConfig as JSON: method, weights, normalisation, rrf_k, candidates, rules.
    config: Mapped[dict] = mapped_column(JSON, default=dict)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


MODEL_KINDS = ("embedding", "reranker")


class ModelVersion(Base):
    """One fine-tuned model of a kind (embedding or reranker), with how it was made.

    Versions are numbered per kind; the model itself is a folder on disk
    (`artifact_path`). One version per kind is active (served); none active
    means the shipped base model. Activating an earlier version is a roll-back.
    """

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("kind", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    version: Mapped[int] = mapped_column(Integer)
    base_model: Mapped[str] = mapped_column(String(512))
    # e.g. {"source": "judgments", "dataset_version_ids": {...}, "pairs": {...}}
    training_data: Mapped[dict] = mapped_column(JSON, default=dict)
    hyperparameters: Mapped[dict] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    artifact_path: Mapped[str] = mapped_column(String(1024))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class JobLog(Base):
    """One line of a job's log: a message and the metrics of a step (loss, validation score)."""

    __tablename__ = "job_logs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)
    step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)


class ApiKey(Base):
    """A key of the REST service; only its SHA-256 is kept, the key is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the key's first characters, to recognise it
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class RequestMetric(Base):
    """One request to the REST or gRPC service: what, how it ended, how long each stage took and
    which replica answered it."""

    __tablename__ = "request_metrics"
    __table_args__ = (Index("ix_request_metrics_endpoint_at", "endpoint", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    encode_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    retrieve_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    fuse_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    rules_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    rerank_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    result_count: Mapped[int] = mapped_column(Integer, default=0)
    model_version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    preset_version: Mapped[str | None] = mapped_column(String(160), nullable=True)
    api_key_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The service process that answered (`$WORKBENCH_REPLICA`, default host:port); None before 0012.
    replica: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)


ALERT_METRICS = ("p95_latency_ms", "p50_latency_ms", "error_rate", "empty_rate", "qps")
ALERT_SEVERITIES = ("info", "warning", "critical")


class AlertRule(Base):
    """Fire when `metric` over the last `window_s` seconds compares to `threshold`."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    metric: Mapped[str] = mapped_column(String(32))
    endpoint: Mapped[str | None] = mapped_column(String(64), nullable=True)  # None: every endpoint
    window_s: Mapped[int] = mapped_column(Integer, default=300)
    comparison: Mapped[str] = mapped_column(String(2), default=">")
    threshold: Mapped[float] = mapped_column(Float)
    severity: Mapped[str] = mapped_column(String(16), default="warning")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)


class AlertEvent(Base):
    """One firing of an alert rule, open until the rule's condition clears."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id", ondelete="CASCADE"), index=True)
    fired_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    value: Mapped[float] = mapped_column(Float)  # the metric when it fired
    last_value: Mapped[float] = mapped_column(Float)  # the metric at the latest evaluation
    message: Mapped[str] = mapped_column(Text, default="")


QUERY_SET_SOURCES = ("typed", "file", "frequent", "random", "zero_result", "vocabulary")
TRIAL_VERDICTS = ("graded", "skipped", "cant_tell")


class QuerySet(Base):
    """One version of a named set of queries to run trials on (typed, uploaded or sampled)."""

    __tablename__ = "query_sets"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))  # QUERY_SET_SOURCES
    queries: Mapped[list] = mapped_column(JSON, default=list)
    # The share of the active search log's searches the queries account for (None: no log).
    traffic_share: Mapped[float | None] = mapped_column(Float, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)


class Trial(Base):
    """A query set searched by two or more configurations, judged blind, then scored."""

    __tablename__ = "trials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    query_set_id: Mapped[int] = mapped_column(ForeignKey("query_sets.id"), index=True)
    depth: Mapped[int] = mapped_column(Integer, default=10)  # each configuration's top N is judged
    # recsys.trials.Scale as JSON: lowest and highest grade, the lowest relevant grade, labels, guidelines.
    scale: Mapped[dict] = mapped_column(JSON, default=dict)
    catalog_version_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)


class TrialConfig(Base):
    """One run ("try") of a search configuration of a trial: its config and its rankings."""

    __tablename__ = "trial_configs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))  # e.g. "default v2", "working config"
    try_number: Mapped[int] = mapped_column(Integer, default=1)
    preset_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    config: Mapped[dict] = mapped_column(JSON, default=dict)  # recsys.fusion.FusionConfig
    # {query: [product_id, ...]}: the configuration's top `depth` of each query, best first.
    rankings: Mapped[dict] = mapped_column(JSON, default=dict)
    embedding_model: Mapped[str] = mapped_column(String(128), default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)


class TrialJudgment(Base):
    """A grader's grade of a product for a query of a trial (or a skip, or "can't tell")."""

    __tablename__ = "trial_judgments"
    __table_args__ = (UniqueConstraint("trial_id", "query", "product_id", "grader"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), index=True)
    query: Mapped[str] = mapped_column(Text)
    product_id: Mapped[str] = mapped_column(String(128))
    grader: Mapped[str] = mapped_column(String(128), index=True)
    grade: Mapped[float | None] = mapped_column(Float, nullable=True)  # None unless graded
    verdict: Mapped[str] = mapped_column(String(16), default="graded")  # TRIAL_VERDICTS
    judged_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)


class TrialPreference(Base):
    """A grader's side-by-side preference between two configurations' lists for a query of a trial."""

    __tablename__ = "trial_preferences"
    __table_args__ = (UniqueConstraint("trial_id", "query", "grader", "first", "second"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), index=True)
    query: Mapped[str] = mapped_column(Text)
    grader: Mapped[str] = mapped_column(String(128))
    first: Mapped[str] = mapped_column(String(160))  # the configurations compared (run labels), in
    second: Mapped[str] = mapped_column(String(160))  # the trial's order, whichever side each was shown on
    first_on_left: Mapped[bool] = mapped_column(Boolean)
    winner: Mapped[str] = mapped_column(String(16))  # "first", "second" or "same"
    judged_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)


EXPERIMENT_METHODS = ("interleaving", "ab")
LIVE_EVENT_TYPES = ("view", "click", "cart", "purchase")


class Experiment(Base):
    """An online experiment of the REST service: a control and a treatment search preset on live traffic."""

    __tablename__ = "experiments"
    # One running at a time, even when two are started at once.
    __table_args__ = (Index("uq_experiments_running", "status", unique=True,
                            sqlite_where=text("status = 'running'"),
                            postgresql_where=text("status = 'running'")),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    method: Mapped[str] = mapped_column(String(16))  # "interleaving" or "ab"
    control_preset_id: Mapped[int] = mapped_column(ForeignKey("presets.id"))
    treatment_preset_id: Mapped[int] = mapped_column(ForeignKey("presets.id"))
    traffic: Mapped[float] = mapped_column(Float)  # the share of sessions in the experiment, 0 to 1
    status: Mapped[str] = mapped_column(String(16), default="running", index=True)  # running, stopped
    winner: Mapped[str | None] = mapped_column(String(16), nullable=True)  # control, treatment: promoted
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)
    stopped_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class ServedList(Base):
    """One list the REST service answered with: what a later event's request_id and position name.

    Under an experiment, `arm` is the arm served ("control", "treatment") or "interleaved", and
    `teams` the arm each position came from."""

    __tablename__ = "served_lists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    endpoint: Mapped[str] = mapped_column(String(32))
    query: Mapped[str | None] = mapped_column(Text, nullable=True)  # a search's query
    unit: Mapped[str | None] = mapped_column(String(160), nullable=True)  # "session:S" or "user:U"
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id"), nullable=True, index=True)
    arm: Mapped[str | None] = mapped_column(String(16), nullable=True)
    products: Mapped[list] = mapped_column(JSON)
    teams: Mapped[list | None] = mapped_column(JSON, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)


class LiveEvent(Base):
    """A shopper's event sent to the REST service (`POST /events`): a view, click, cart or purchase.

    Not a dataset version: live events are kept as they arrive; `recsys.experiments.feed` turns
    the ones that follow searches into a new search-log version."""

    __tablename__ = "live_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str | None] = mapped_column(String(128), nullable=True, unique=True)
    type: Mapped[str] = mapped_column(String(16))
    product_id: Mapped[str] = mapped_column(String(128), index=True)
    session: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    user_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    position: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)


CAMPAIGN_STATUSES = ("active", "paused", "ended", "out_of_budget")


class AdCampaign(Base):
    """A sponsored-products campaign: an advertiser's products, bid, budgets, dates and targeting.

    `status` is what was decided (active, paused, ended) or "out_of_budget" once `spent` reached
    `total_budget`; `recsys.ads.campaigns` computes the status shown (past `ends_at`: ended; today's
    spend at `daily_budget`: out of budget until the next UTC day). `spent` is the total charged,
    kept here so that one guarded UPDATE of this row keeps it within `total_budget`."""

    __tablename__ = "ad_campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    advertiser: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str] = mapped_column(String(128))
    products: Mapped[list] = mapped_column(JSON, default=list)  # product ids of the catalog
    max_cpc: Mapped[float] = mapped_column(Float)  # the most a click may cost
    daily_budget: Mapped[float] = mapped_column(Float)
    total_budget: Mapped[float | None] = mapped_column(Float, nullable=True)  # None: no total limit
    spent: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    starts_at: Mapped[datetime] = mapped_column(DateTime)
    ends_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # Both empty: automatic targeting, by the products' relevance to the request.
    keywords: Mapped[list] = mapped_column(JSON, default=list)
    categories: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="active")  # CAMPAIGN_STATUSES
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)


class AdImpression(Base):
    """A campaign's product served as an ad at `position` (1-based) of the list of `request_id`.

    `price` is the cost per click the auction set, charged only when the ad is clicked; `unit` is
    the pseudonymous unit the service already keeps ("session:S" or "user:<pseudonym>")."""

    __tablename__ = "ad_impressions"
    __table_args__ = (UniqueConstraint("request_id", "product_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("ad_campaigns.id"), index=True)
    product_id: Mapped[str] = mapped_column(String(128))
    position: Mapped[int] = mapped_column(Integer)
    price: Mapped[float] = mapped_column(Float)
    unit: Mapped[str | None] = mapped_column(String(160), nullable=True, index=True)  # frequency caps
    at: Mapped[datetime] = mapped_column(DateTime, index=True)


class AdClick(Base):
    """A click on an ad, and what it was charged: one per event id, one per impression."""

    __tablename__ = "ad_clicks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    impression_id: Mapped[int] = mapped_column(ForeignKey("ad_impressions.id"), unique=True)
    campaign_id: Mapped[int] = mapped_column(Integer, index=True)
    price_charged: Mapped[float] = mapped_column(Float, default=0.0)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)


class AdSpendDay(Base):
    """A campaign's impressions, clicks and spend in one UTC day: what daily budgets are checked on."""

    __tablename__ = "ad_spend_days"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("ad_campaigns.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    spent: Mapped[float] = mapped_column(Float, default=0.0)
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    impressions: Mapped[int] = mapped_column(Integer, default=0)
