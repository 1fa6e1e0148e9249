"""Widgets of the Fusion & rules page: the working config, its live preview and metrics, the presets.

The working config of each scope is a `FusionConfig` dict kept in
``st.session_state["fusion_<scope>_working"]``; it seeds the widgets (weight
sliders, method, reranking, rules) whenever they are drawn afresh, so it
survives a switch of scope or page, and is rebuilt from them on every run.
Search can rerank the fused top N with the reranker (a learned ranker or a
cross-encoder) that the model registry marks active; without one the control is
shown disabled. The preview and the offline metrics compare it with the active
preset of the scope: both re-fuse cached candidate lists (`recsys.evaluation.live`),
so nothing is searched or recommended again while the sliders move.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pandas as pd
import streamlit as st

from recsys import active as active_state
from recsys.active import ActiveReranker, ServedPreset
from recsys.evaluation import live
from recsys.fusion import FUSERS, NORMALISATIONS, FusionConfig, Rule, RulesResult, apply_rules, fuse
from recsys.fusion import defaults
from recsys.fusion.base import ACTIVE_RERANKER
from recsys.fusion.compare import dropped_out, rank_moves
from recsys.fusion.rules import RULE_FIELDS, RULE_KINDS
from recsys.fusion.sponsored import SponsoredSlots
from recsys.services import presets as preset_service
from ui import engines
from ui.results import from_hits, from_items, result_column
from ui.text import md

SCOPES = {"Search": "search", "Recommendations": "recommendations"}
PREVIEW_K = 10
MAX_WEIGHT = 2.0
METRICS = {"ndcg@10": "nDCG@10", "recall@100": "Recall@100", "coverage@10": "Coverage@10",
           "diversity@10": "Diversity@10"}
FLASH_KEY = "fusion_flash"
DEFAULT_RERANK_TOP = 20
MAX_RERANK_TOP = 200
NOT_RULE_FIELDS = ("product_id", "title", "description", "price")
FLOORED = ("semantic",)  # sources whose scores are cosines, on which a floor reads the same for any query


def _key(scope: str, name: str) -> str:
    return f"fusion_{scope}_{name}"


def flash(kind: str | None = None, text: str = "") -> None:
    """Show (no arguments) or keep for the next run a message, e.g. after an action that reruns."""
    if kind:
        st.session_state[FLASH_KEY] = (kind, text)
        return
    kind, text = st.session_state.pop(FLASH_KEY, (None, ""))
    if kind:
        getattr(st, kind)(text)


def scope_switch() -> str:
    return SCOPES[st.radio("Scope", list(SCOPES), horizontal=True, key="fusion_scope")]


# --- the engines and the data they need ---------------------------------------------------

def preview_engine(url: str, scope: str, versions: dict[str, int]) -> tuple[str, object]:
    """(its folder's name, the fitted hybrid of `scope`) for the preview; stops the page when its
    data is missing or while it is being fitted."""
    if "catalog" not in versions:
        st.info("There is no active catalog yet: upload one on the Data page.")
        st.page_link("pages/data.py", label="Data", icon=":material/database:")
        st.stop()
    if scope == "search":
        return engines.keyed(url, "search")
    if "events" not in versions:
        st.info("Recommendations need behaviour data (events): upload them on the Data page.")
        st.page_link("pages/data.py", label="Data", icon=":material/database:")
        st.stop()
    return engines.keyed(url, "recommendations")


def sources_of(engine) -> list[str]:
    return [source.name for source in engine.sources]


@st.cache_data(show_spinner=False, max_entries=256)
def _search_candidates(engine_key: str, query: str, _engine) -> dict:
    return _engine.candidates([query])[0]


@st.cache_data(show_spinner=False, max_entries=256)
def _recommendation_candidates(engine_key: str, user: str, _engine) -> dict:
    return _engine.candidates([user])[0]


@st.cache_data(show_spinner=False, max_entries=4)
def _common_word(url: str, catalog_version: int, _catalog: pd.DataFrame) -> str:
    """The commonest word of the catalog's titles (letters only, 4 or more): a default query."""
    words = Counter(word for title in _catalog["title"].astype(str) for word in title.lower().split()
                    if word.isalpha() and len(word) >= 4)
    return words.most_common(1)[0][0] if words else ""


def _rule_values(catalog: pd.DataFrame, field: str | None) -> list[str]:
    """The distinct values of catalog column `field` as a rule compares them (text)."""
    if not field or field not in catalog:
        return []
    values = catalog[field].dropna().unique()
    return sorted({("true" if v else "false") if isinstance(v, bool) else str(v) for v in values})


# --- the working config -------------------------------------------------------------------

def load_config(scope: str, config: dict) -> None:
    """Make `config` the working config of `scope` and redraw the widgets from it (a callback)."""
    st.session_state[_key(scope, "working")] = FusionConfig.from_dict(dict(config)).to_dict()
    prefix = _key(scope, "")
    for key in [k for k in st.session_state if str(k).startswith(prefix) and not k.endswith("working")]:
        if any(part in key for part in ("_weight_", "_floor_", "_method", "_normalisation", "_rrf_k", "_rerank",
                                        "_ads_")):
            del st.session_state[key]


def _seed(key: str, value) -> None:
    if key not in st.session_state:
        st.session_state[key] = value


def _remove_rule(scope: str, position: int) -> None:
    working = st.session_state[_key(scope, "working")]
    working["rules"] = [rule for i, rule in enumerate(working["rules"]) if i != position]


def _add_rule(scope: str) -> None:
    """Build a rule from the rule form's widgets; keep the validation error for display."""
    def value(name: str):
        return st.session_state.get(_key(scope, f"rule_{name}"))

    kind = value("kind")
    fields = {"kind": kind, "when_query": (value("query") or "").strip() or None,
              "when_category": value("category") or None, "note": (value("note") or "").strip()}
    if kind == "pin":
        fields.update(product_id=value("product"), position=value("position"))
    else:
        fields.update(field=value("field") or None, value=value("value"),
                      min_price=value("min_price"), max_price=value("max_price"))
        if kind in ("boost", "bury"):
            fields["strength"] = value("strength")
    try:
        rule = Rule(**fields)
    except (TypeError, ValueError) as error:
        st.session_state[_key(scope, "rule_message")] = ("error", f"The rule was not added: {md(error)}.")
        return
    st.session_state[_key(scope, "working")]["rules"].append(rule.to_dict())
    st.session_state[_key(scope, "rule_message")] = ("success", f"Added: {md(rule.describe())}.")


def available_reranker(url: str) -> ActiveReranker | None:
    """The active reranker (learned ranker or cross-encoder) in the model registry, or None.

    Shows what does not fit (`recsys.active.Active.problems`), e.g. a learned ranker trained over
    another embedding model than the active one, whose semantic scores have moved since.
    """
    state = active_state.read(url)
    for problem in state.problems:
        st.warning(md(problem[0].upper() + problem[1:]) + ".")
    return None if state.reranker is None or state.reranker.kind is None else state.reranker


def rerank_editor(scope: str, working: dict, reranker: ActiveReranker | None,
                  disabled: bool) -> tuple[str | None, int]:
    """The reranking control of the working config: (reranker, rerank_top), (None, 0) when off.

    `reranker` is the registry's active model; a preset turned on here reranks with whichever
    reranker is active (ACTIVE_RERANKER), so activating another version changes what it serves.
    Without one the control is disabled and the working config keeps whatever its preset says.
    """
    st.subheader("Reranking")
    _seed(_key(scope, "rerank"), working.get("rerank_top", 0) > 0)
    # A learned ranker orders as many items as it was trained on (its features read the whole top N).
    trained = reranker.top_n if reranker is not None else None
    _seed(_key(scope, "rerank_top"), working.get("rerank_top") or trained or DEFAULT_RERANK_TOP)
    locked = disabled or reranker is None
    on = st.checkbox("Rerank the top N", key=_key(scope, "rerank"), disabled=locked,
                     help="after fusion, the active reranker reorders the N best products; the rules apply "
                     "after it. A cross-encoder reads the query with each product (about N model calls a "
                     "search); a learned ranker weighs BM25's and the embedding's scores and the matched "
                     "words per query (about 10 ms a search; use the N it was trained with, 100 by default)")
    if reranker is not None:
        st.caption(f"with the active reranker, now the {reranker.kind} v{reranker.version}: activating "
                   "another version on Fine-tune changes what a preset saved with reranking on serves")
    top = st.number_input("N", 1, MAX_RERANK_TOP, step=5, key=_key(scope, "rerank_top"),
                          disabled=locked or not on)
    if reranker is None:
        st.caption("No reranker model is active: train one (a learned ranker or a cross-encoder) on the "
                   "Fine-tune page and activate it to use this.")
        return working.get("reranker"), working.get("rerank_top", 0)
    return (ACTIVE_RERANKER, int(top)) if on else (None, 0)


def editor(scope: str, sources: list[str], active_config: FusionConfig, catalog: pd.DataFrame,
           disabled: bool, reranker: ActiveReranker | None = None) -> FusionConfig:
    """Weights, method, reranking (search) and rules of the working config of `scope`; returns it.

    `reranker` is the active reranker that reranking would use (`available_reranker`).
    """
    working_key = _key(scope, "working")
    if working_key not in st.session_state:
        st.session_state[working_key] = active_config.to_dict()
    working = st.session_state[working_key]
    st.subheader("Weights")
    weights = dict(working["weights"])
    for source in sources:
        key = _key(scope, f"weight_{source}")
        _seed(key, min(float(weights.get(source, 1.0)), MAX_WEIGHT))
        weights[source] = st.slider(f"{source}", 0.0, MAX_WEIGHT, step=0.05, key=key, disabled=disabled,
                                    help="0 leaves the source out; only the ratio of weights matters")
    _seed(_key(scope, "method"), working["method"])
    method = st.radio("Method", FUSERS.names(), key=_key(scope, "method"), horizontal=True,
                      disabled=disabled, format_func={"weighted": "weighted scores",
                                                      "rrf": "reciprocal rank fusion"}.get)
    normalisation, rrf_k = working["normalisation"], working["rrf_k"]
    if method == "rrf":
        _seed(_key(scope, "rrf_k"), int(rrf_k))
        rrf_k = st.number_input("RRF k", 0, 1000, step=10, key=_key(scope, "rrf_k"), disabled=disabled,
                                help="1 / (k + rank): a larger k flattens the difference between ranks")
    else:
        _seed(_key(scope, "normalisation"), normalisation)
        normalisation = st.selectbox("Normalisation", NORMALISATIONS, key=_key(scope, "normalisation"),
                                     disabled=disabled, help="how each source's scores are made "
                                     "comparable before weighting")
    if not any(weights.get(source, 1.0) > 0 for source in sources):
        st.warning("Every weight is 0: nothing would be shown.")
    min_scores = dict(working.get("min_scores", {}))
    for source in sources:
        if source not in FLOORED:
            continue
        key = _key(scope, f"floor_{source}")
        _seed(key, float(min_scores.get(source, 0.0)))
        floor = st.slider(f"{source} floor (cosine)", 0.0, 1.0, step=0.025, key=key, disabled=disabled,
                          help="a product whose cosine with the query (or the history) is below this is not "
                               "a candidate of this source, so nonsense finds nothing; 0 keeps every one")
        min_scores.pop(source, None)
        if floor > 0:
            min_scores[source] = floor
    rerank = (working.get("reranker"), working.get("rerank_top", 0))
    if scope == "search":
        rerank = rerank_editor(scope, working, reranker, disabled)
    rules_editor(scope, working["rules"], catalog, disabled)
    sponsored = sponsored_editor(scope, working.get("sponsored"), disabled)
    config = FusionConfig(method=method, weights=weights, normalisation=normalisation, rrf_k=int(rrf_k),
                          candidates=working["candidates"], rules=list(working["rules"]),
                          backend=working.get("backend", "torch"), reranker=rerank[0], rerank_top=rerank[1],
                          min_scores=min_scores, sponsored=sponsored)
    st.session_state[working_key] = config.to_dict()
    same = config.to_dict() == active_config.to_dict()
    st.button("Reset to the active preset", key=_key(scope, "reset"), disabled=disabled or same,
              on_click=load_config, args=(scope, active_config.to_dict()))
    st.caption("The working config is the active preset's." if same else
               "The working config has changes that are not saved.")
    return config


def sponsored_editor(scope: str, current: dict | None, disabled: bool) -> dict | None:
    """The preset's sponsored slots (`recsys.fusion.sponsored`): where ads may go on its pages and the
    rules of their auction; None: no ads. A setting the library refuses is shown, and the slots are
    kept as they were."""
    slots = SponsoredSlots.from_dict(current) if current else None
    with st.expander("Sponsored slots" + (f": positions {', '.join(map(str, slots.positions))}" if slots
                                          else ": none")):
        on = st.toggle("Show sponsored products (ads) on this preset's pages", value=slots is not None,
                       key=_key(scope, "ads_on"), disabled=disabled)
        if not on:
            return None
        shown = slots or SponsoredSlots.from_dict(defaults.SPONSORED)
        left, middle, right = st.columns(3)
        positions = left.multiselect("Positions (1 = the top)", list(range(1, 21)),
                                     default=list(shown.positions), key=_key(scope, "ads_positions"),
                                     disabled=disabled)
        max_ads = middle.number_input("At most this many ads a page", 1, 20, shown.max_ads,
                                      key=_key(scope, "ads_max"), disabled=disabled)
        cap = right.number_input("Frequency cap (a campaign's ads a session sees a day; 0: none)", 0, 1000,
                                 shown.frequency_cap or 0, key=_key(scope, "ads_cap"), disabled=disabled)
        floor = left.slider("Relevance floor", 0.0, 1.0, shown.relevance_floor, step=0.05,
                            key=_key(scope, "ads_floor"), disabled=disabled,
                            help="an ad's product must be at least this relevant to the request, relative to "
                                 "the page's best result (docs/benchmarks.md, 'Sponsored products': revenue "
                                 "against nDCG@10 per floor)")
        reserve = middle.number_input("Reserve price (the least a click costs)", 0.0, 1000.0,
                                      shown.reserve_price, step=0.01, format="%.2f",
                                      key=_key(scope, "ads_reserve"), disabled=disabled)
        wanted = {"positions": sorted(positions), "max_ads": int(max_ads), "relevance_floor": float(floor),
                  "reserve_price": float(reserve), "frequency_cap": int(cap) or None}
        try:
            return SponsoredSlots.from_dict(wanted).to_dict()
        except ValueError as error:
            st.error(f"These slots cannot be used: {md(error)}. The preset keeps its slots as they were.")
            return current


def rules_editor(scope: str, rules: list[dict], catalog: pd.DataFrame, disabled: bool) -> None:
    st.subheader("Business rules")
    st.caption("Applied after fusion: filters, then boosts and buries, then pins in order.")
    if not rules:
        st.caption("No rules.")
    for position, rule in enumerate(rules):
        text, remove = st.columns([5, 2], vertical_alignment="center")
        note = f" — {md(rule['note'])}" if rule.get("note") else ""
        text.markdown(f"{position + 1}. {md(Rule.from_dict(rule).describe())}{note}")
        remove.button("Remove", key=_key(scope, f"rule_remove_{position}"), disabled=disabled,
                      on_click=_remove_rule, args=(scope, position))
    with st.expander("Add a rule", expanded=not rules and not disabled):
        kind = st.selectbox("Kind", RULE_KINDS, key=_key(scope, "rule_kind"), disabled=disabled,
                            help="pin: a product at a position; boost/bury: move matching products "
                            "up/down; filter: keep only matching products")
        if kind == "pin":
            titles = dict(zip(catalog["product_id"].astype(str), catalog["title"].astype(str)))
            st.selectbox("Product", list(titles), index=None, key=_key(scope, "rule_product"),
                         format_func=lambda p: f"{p} · {titles.get(p, '')}", disabled=disabled,
                         placeholder="Type to find a product")
            st.number_input("Position", 1, 100, 1, key=_key(scope, "rule_position"), disabled=disabled)
        else:
            fields = [f for f in dict.fromkeys([*RULE_FIELDS, *catalog.columns])
                      if f in catalog and f not in NOT_RULE_FIELDS and catalog[f].notna().any()]
            field = st.selectbox("Attribute", fields, index=None, key=_key(scope, "rule_field"),
                                 disabled=disabled, placeholder="Any (use a price band)")
            st.selectbox("Value", _rule_values(catalog, field), index=None, key=_key(scope, "rule_value"),
                         accept_new_options=True, disabled=disabled or not field)
            low, high = st.columns(2)
            low.number_input("Price from", 0.0, value=None, key=_key(scope, "rule_min_price"),
                             disabled=disabled)
            high.number_input("Price to", 0.0, value=None, key=_key(scope, "rule_max_price"),
                              disabled=disabled)
            if kind in ("boost", "bury"):
                st.slider("Strength", 0.05, 2.0, 0.5, 0.05, key=_key(scope, "rule_strength"),
                          disabled=disabled, help="share of the list's score span added or taken away")
        st.text_input("Only for the query", key=_key(scope, "rule_query"), disabled=disabled)
        categories = _rule_values(catalog, "category")
        if categories:
            st.selectbox("Only in the category", categories, index=None, key=_key(scope, "rule_category"),
                         disabled=disabled, placeholder="Any category")
        st.text_input("Note", key=_key(scope, "rule_note"), disabled=disabled)
        st.button("Add rule", key=_key(scope, "rule_add"), disabled=disabled, on_click=_add_rule,
                  args=(scope,))
        message = st.session_state.pop(_key(scope, "rule_message"), None)
        if message:
            getattr(st, message[0])(message[1])


# --- the live preview ---------------------------------------------------------------------

def _fused(engine, scope: str, lists: dict, config: FusionConfig, query: str | None,
           category: str | None) -> RulesResult:
    if scope == "search":  # fused, reranked when the config says so, then the rules
        return engine.rank_candidates([query], [lists], config, category)[0]
    return apply_rules(fuse(lists, config), config.rules, engine.attributes, query=query, category=category)


PREVIEW_COLUMNS = {"#": st.column_config.NumberColumn(width=40), "move": st.column_config.TextColumn(width=60),
                   "title": st.column_config.TextColumn(width="large"),
                   "price": st.column_config.NumberColumn(format="£%.2f"),
                   "score": st.column_config.NumberColumn(format="%.4f")}


def _rows(items, products: dict[str, dict], moves=None) -> pd.DataFrame:
    rows = []
    for rank, item in enumerate(items, 1):
        product = products.get(item.product_id, {})
        row = {"#": rank, "move": moves[item.product_id].label if moves else None,
               "product": item.product_id, "title": product.get("title"),
               "category": product.get("category"), "price": product.get("price"),
               "score": round(item.score, 4),
               "rules": "; ".join(dict.fromkeys(effect.action for effect in item.effects))}
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.dropna(axis="columns", how="all")  # e.g. a catalog without categories or prices


def _effects_table(result: RulesResult, products: dict[str, dict]) -> pd.DataFrame:
    return pd.DataFrame([{"rule": e.rule, "product": e.product_id,
                          "title": products.get(e.product_id, {}).get("title"), "action": e.action,
                          "before": e.before, "after": e.after, "score change": round(e.score_change, 4)}
                         for e in result.effects])


def preview(url: str, scope: str, versions: dict[str, int], engine_key: str, engine, active_label: str,
            active_config: FusionConfig, working: FusionConfig, catalog: pd.DataFrame,
            products: dict[str, dict], default_query: str | None = None) -> None:
    """The active preset's list next to the working config's, with moves and rule effects."""
    st.subheader("Live preview")
    request, in_category = st.columns([3, 2])
    started = time.perf_counter()
    with request:
        if scope == "search":
            _seed("fusion_query", st.session_state.get("fusion_last_query") or default_query
                  or _common_word(url, versions["catalog"], catalog))
            query = st.text_input("Query", key="fusion_query").strip()
            st.session_state["fusion_last_query"] = query  # kept while the scope is switched
            if not query:
                st.info("Type a query to see its results.")
                return
            lists = _search_candidates(engine_key, query, engine)
        else:
            query = None
            users = list(map(str, engine.user_ids))
            if not users:
                st.info("The behaviour data has no customers.")
                return
            last = st.session_state.get("fusion_last_customer")
            _seed("fusion_customer", last if last in users  # else the customer with the most products
                  else users[int(engine.matrix.getnnz(axis=1).argmax())])
            user = st.selectbox("Customer", users, key="fusion_customer")
            st.session_state["fusion_last_customer"] = user
            lists = _recommendation_candidates(engine_key, user, engine)
    categories = _rule_values(catalog, "category")
    category = in_category.selectbox("Request in category", categories, index=None,
                                     key="fusion_request_category", placeholder="None",
                                     help="applies the rules scoped to a category, as on a category "
                                     "page") if categories else None
    active = _fused(engine, scope, lists, active_config, query, category)
    trial = _fused(engine, scope, lists, working, query, category)
    active_top, trial_top = active.items[:PREVIEW_K], trial.items[:PREVIEW_K]
    before = [item.product_id for item in active_top]
    after = [item.product_id for item in trial_top]
    moves = {move.product_id: move for move in rank_moves(before, after)}
    # One above the other: side by side, half of the results column cut the tables' last columns off.
    st.markdown(f"**Active: {active_label}**")
    st.dataframe(_rows(active_top, products), hide_index=True, key=_key(scope, "preview_active"),
                 column_config=PREVIEW_COLUMNS)
    st.markdown("**Working config**")
    if not trial_top:
        st.info("Nothing is found under the working config: no source has a candidate above its floor.")
    st.dataframe(_rows(trial_top, products, moves), hide_index=True, key=_key(scope, "preview_working"),
                 column_config=PREVIEW_COLUMNS)
    gone = dropped_out(before, after)
    changed = sum(move.label != "=" for move in moves.values())
    st.caption(f"{changed} of {len(after)} places changed; left the top {PREVIEW_K}: "
               + (", ".join(f"{md(m.product_id)} (was #{m.before})" for m in gone) or "none")
               + f" · fused in {1000 * (time.perf_counter() - started):.0f} ms")
    if trial.effects:
        counts = Counter(effect.rule for effect in trial.effects)
        st.markdown("**Rule effects**: " + "; ".join(f"{md(rule)}: {n} product{'s' * (n != 1)}"
                                                     for rule, n in counts.items()))
        st.dataframe(_effects_table(trial, products), hide_index=True, key=_key(scope, "preview_effects"))
    elif working.rules:
        st.caption("No rule changed this list.")
    if st.toggle("Show product cards with explanations", key=_key(scope, "preview_cards")):
        cards_left, cards_right = st.columns(2)
        for column, config, title in ((cards_left, active_config, "Active"),
                                      (cards_right, working, "Working")):
            with column:
                if scope == "search":
                    rows = from_hits(engine.fuse_candidates(query, lists, PREVIEW_K, config, category))
                else:
                    rows = from_items(engine.fuse_candidates(lists, PREVIEW_K, config, category=category),
                                      lambda p: [reason.text for reason in engine.explain(user, p)])
                result_column(title, rows, products, key=_key(scope, f"cards_{title}"))


# --- the live offline metrics -------------------------------------------------------------

@st.cache_resource(show_spinner="Collecting the held-out queries' candidate lists...", max_entries=2)
def search_sample(url: str, engine_key: str, judgments_version: int, held_out_only: bool, _hybrid):
    """(LiveSample of the judged queries, its fuse function), or the reason there is none.

    `engine_key` (the fitted search engine's folder) keys the cache: a new catalog or model resamples.
    `held_out_only` leaves out the judged queries the training jobs train on (the train part of
    their split), so that an active model trained on them is not measured on them.
    """
    judgments = engines.judgments(url, judgments_version)
    exclude = frozenset()
    if held_out_only:
        # The training jobs' default split (TrainingSpec), read only here: the training package
        # brings sentence-transformers, which the page need not import otherwise.
        from recsys.training.jobs import TrainingSpec
        from recsys.training.pairs import split_judgments

        train = split_judgments(judgments, TrainingSpec().fractions())["train"]
        exclude = frozenset(train["query"].astype(str))
    try:
        return live.search_sample(_hybrid, judgments, exclude=exclude), live.fuse_search(_hybrid)
    except ValueError as error:
        return str(error)


def trained_on_judgments(url: str) -> bool:
    """Whether the active embedding model or reranker was trained on the shop's judgments."""
    return active_state.read(url).trained_on_judgments


@st.cache_resource(show_spinner="Collecting the held-out customers' candidate lists...", max_entries=2)
def recommendation_sample(url: str, engine_key: str, _held_out):
    try:
        return (live.recommendation_sample(_held_out.recommender, _held_out.test),
                live.fuse_recommendations(_held_out.recommender))
    except ValueError as error:
        return str(error)


@st.cache_data(show_spinner=False, max_entries=128)
def _metrics(sample_key: tuple, config: str, _sample, _fuse) -> tuple[dict[str, float], float]:
    started = time.perf_counter()
    values = live.evaluate_fusion(_sample, FusionConfig.from_dict(json.loads(config)), _fuse)
    return values, time.perf_counter() - started


def _as_key(config: FusionConfig) -> str:
    return json.dumps(config.to_dict(), sort_keys=True)


def sample_for(url: str, scope: str, versions: dict[str, int]):
    """The scope's cached sample with its fuse function, or a message saying why there is none."""
    if scope == "search":
        if "judgments" not in versions:
            return None
        key, hybrid = engines.keyed(url, "search")
        return search_sample(url, key, versions["judgments"], trained_on_judgments(url), hybrid)
    key, held_out = engines.keyed(url, "recommendations_heldout")
    return recommendation_sample(url, key, held_out)


def metrics_panel(url: str, scope: str, versions: dict[str, int], found, active_config: FusionConfig,
                  working: FusionConfig) -> None:
    """nDCG@10, Recall@100, coverage@10 and diversity@10 of the working config, as deltas to the active."""
    st.subheader("Offline quality on held-out data")
    if found is None:
        st.info("Search metrics need relevance judgments (query, product_id, grade): upload a judgment "
                "list on the Data page. The preview works without them.")
        st.page_link("pages/data.py", label="Upload judgments on the Data page", icon=":material/database:")
        return
    if isinstance(found, str):
        st.warning(f"No offline metrics: {md(found)}.")
        return
    sample, fuse_function = found
    engine = engines.spec(url, "search" if scope == "search" else "recommendations_heldout")
    sample_key = (url, scope, engine.key, versions.get("judgments"))
    active, _ = _metrics(sample_key, _as_key(active_config), sample, fuse_function)
    trial, seconds = _metrics(sample_key, _as_key(working), sample, fuse_function)
    for column, (name, label) in zip(st.columns(len(METRICS)), METRICS.items()):
        if name not in trial:
            column.metric(label, "—", help="needs product embeddings")
            continue
        delta = trial[name] - active[name]
        column.metric(label, f"{trial[name]:.3f}", delta=f"{delta:+.3f}" if abs(delta) >= 5e-4 else None,
                      help=f"active preset: {active[name]:.3f}")
    held_out = ("judged queries" if scope == "search"
                else "customers (temporal split: each one's latest product)")
    if scope == "search" and trained_on_judgments(url):
        held_out += " that no training job trained on (an active model learned from the others)"
    st.caption(f"Working config against the active preset on {len(sample.keys)} held-out {held_out}; "
               f"re-fused in {1000 * seconds:.0f} ms.")


# --- presets ------------------------------------------------------------------------------

def _summary(config: dict) -> str:
    weights = ", ".join(f"{name} {weight:g}" for name, weight in config.get("weights", {}).items())
    rules = len(config.get("rules", []))
    rerank = f"; rerank top {config['rerank_top']}" if config.get("rerank_top") else ""
    return f"{config.get('method')} ({weights}){rerank}; {rules} rule{'s' * (rules != 1)}"


def presets_panel(url: str, scope: str, actor: str, allowed: bool, working: FusionConfig,
                  active: ServedPreset) -> None:
    """Every stored version of the scope's presets; save the working config, activate, roll back."""
    st.subheader("Presets")
    frame = preset_service.list_presets(url, scope)
    if frame.empty:
        st.info(f"No {scope} preset is stored: the shipped default is served.")
    else:
        shown = frame.assign(config=frame["config"].map(_summary))
        st.dataframe(shown[["id", "name", "version", "active", "config", "created_by", "created_at",
                            "activated_at", "note"]], hide_index=True, key=_key(scope, "presets"))
    if not allowed:
        st.caption("Saving, activating and rolling back presets needs the merchandiser or admin role.")
    save, switch = st.columns(2)
    with save:
        _seed(_key(scope, "preset_name"), active.name)
        name = st.text_input("Preset name", key=_key(scope, "preset_name"), disabled=not allowed)
        note = st.text_input("Note", key=_key(scope, "preset_note"), disabled=not allowed)
        activate = st.checkbox("Activate it for serving", key=_key(scope, "preset_activate"),
                               disabled=not allowed)
        if st.button("Save as preset", key=_key(scope, "preset_save"), disabled=not allowed, type="primary"):
            _save(url, scope, name, working, actor, note, activate)
    with switch:
        labels = {row.id: f"{row.name} v{row.version}" + (" (active)" if row.active else "")
                  for row in frame.itertuples()}
        if labels and st.session_state.get(_key(scope, "preset_version")) not in labels:
            st.session_state[_key(scope, "preset_version")] = (active.preset_id if active.preset_id in labels
                                                               else next(iter(labels)))
        chosen = st.selectbox("Version", list(labels), format_func=labels.get, disabled=frame.empty,
                              key=_key(scope, "preset_version"))
        activate_button, load_button, roll_back_button = st.columns(3)
        if activate_button.button("Activate", key=_key(scope, "preset_activate_version"),
                                  disabled=not allowed or chosen is None):
            _change(url, lambda: preset_service.activate(url, chosen, actor), "Now serving {}.", actor)
        config = frame.set_index("id")["config"].get(chosen) if chosen is not None else None
        load_button.button("Load into editor", key=_key(scope, "preset_load"), disabled=config is None,
                           on_click=load_config, args=(scope, config or {}))
        if roll_back_button.button("Roll back", key=_key(scope, "preset_roll_back"),
                                   disabled=not allowed or active.version is None,
                                   help="serve the version before the active one"):
            _change(url, lambda: preset_service.roll_back(url, scope, actor), "Rolled back: now serving {}.", actor)
    changes = preset_service.changes(url, scope)
    if not changes.empty:
        st.caption("Recent preset changes")
        st.dataframe(changes, hide_index=True, key=_key(scope, "preset_log"))


def _save(url: str, scope: str, name: str, config: FusionConfig, actor: str, note: str,
          activate: bool) -> None:
    try:
        label = preset_service.save(url, scope, name, config, actor, note.strip(), activate).label
    except ValueError as error:
        st.error(f"The preset was not saved: {md(error)}.")
        return
    flash("success", f"Saved {md(label)}" + (" and made it the served preset." + engines.refit(url, actor)
                                         if activate else "."))
    st.rerun()


def _change(url: str, change, message: str, actor: str) -> None:
    try:
        label = change().label
    except (LookupError, ValueError) as error:
        st.warning(md(str(error).capitalize()) + ".")
        return
    # A search preset with another encoder needs its engine fitted.
    flash("success", message.format(md(label)) + engines.refit(url, actor))
    st.rerun()
