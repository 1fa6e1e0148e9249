"""Result columns of the trial pages: product cards that open their explanation.

Every engine's results are shown the same way: a card per product (title,
category, price, stock) whose expander is the explanation panel: each source's
rank, raw score, normalised score and contribution to the fused score; the
sources' own reasons (matched BM25 terms, cosine similarity, "because you
bought X"); and every business rule that moved it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import streamlit as st

from ui.text import md

# Column titles of the engines' sources; a source not named here is shown by its name.
SOURCE_TITLES = {"bm25": "BM25", "semantic": "Semantic", "ease": "Collaborative filtering (EASE)",
                 "item_knn": "Collaborative filtering (item kNN)", "als": "Matrix factorisation (ALS)",
                 "bpr": "Matrix factorisation (BPR)", "mult_vae": "Variational autoencoder (Mult-VAE)",
                 "hybrid": "Hybrid"}


@dataclass
class Shown:
    """One result as the pages show it, whatever engine produced it."""

    product_id: str
    score: float
    reasons: list[str] = field(default_factory=list)
    sources: dict[str, Any] = field(default_factory=dict)  # name -> recsys.fusion.SourceScore
    effects: list[Any] = field(default_factory=list)  # recsys.fusion.RuleEffect
    sponsored: str | None = None  # an ad: who pays for it and what, as Markdown (escaped; on its card)


def from_hits(hits) -> list[Shown]:
    """`Shown` rows from search hits (`recsys.search.SearchHit`)."""
    return [Shown(hit.product_id, hit.score, [reason.text for reason in hit.reasons],
                  dict(hit.sources), list(hit.effects)) for hit in hits]


def from_items(items, reasons_of=None) -> list[Shown]:
    """`Shown` rows from fused items or (product_id, score) pairs; `reasons_of(product_id)` gives texts."""
    shown = []
    for item in items:
        if isinstance(item, tuple):
            product_id, score, sources, effects = item[0], item[1], {}, []
        else:
            product_id, score, sources, effects = item.product_id, item.score, item.sources, item.effects
        reasons = reasons_of(product_id) if reasons_of else []
        shown.append(Shown(product_id, score, reasons, dict(sources), list(effects)))
    return shown


def from_retriever(retriever, query: str, ranking) -> list[Shown]:
    """`Shown` rows of one retriever's [(product_id, raw score), ...] for `query` with its own reasons.

    The ranking comes from `HybridRetriever.candidates`, so the query is not
    searched again: only the reasons (matched BM25 terms, cosine) are computed.
    """
    reasons = retriever.explain(query, [product_id for product_id, _ in ranking]) if ranking else []
    return [Shown(product_id, score, [reason.text for reason in why])
            for (product_id, score), why in zip(ranking, reasons)]


def source_title(name: str) -> str:
    return SOURCE_TITLES.get(name, name)


def fusion_summary(config) -> str:
    """A `recsys.fusion.FusionConfig` in words, as Markdown: method, weights, rules."""
    if config.method == "rrf":
        method = f"reciprocal rank fusion (k={config.rrf_k})"
    else:
        method = f"weighted, {config.normalisation} normalisation"
    # As Markdown: a stored preset may weigh sources of any name.
    weights = ", ".join(f"{md(source_title(name))} {weight:g}" for name, weight in config.weights.items())
    rules = len(config.rules)
    return (f"{method}; weights {weights or 'all 1'}; {config.candidates} candidates per source; "
            f"{rules} rule{'' if rules == 1 else 's'}")


def catalog_index(catalog: pd.DataFrame | None) -> dict[str, dict]:
    """{product_id: its catalog row as a dict}; cached per catalog (50 ms a run on the demo's 3,812)."""
    if catalog is None or catalog.empty:
        return {}
    return _index(catalog)


@st.cache_resource(show_spinner=False, max_entries=4)  # shared, not copied: the pages only read it
def _index(catalog: pd.DataFrame) -> dict[str, dict]:
    frame = catalog.drop_duplicates("product_id").set_index("product_id")
    return frame.to_dict("index")


def _price(value) -> str:
    return "—" if value is None or pd.isna(value) else f"£{float(value):,.2f}"


def product_label(product_id: str, products: dict[str, dict], markdown: bool = False) -> str:
    """"Title · category · price (id)" of a catalog product, for pickers (plain text) and history
    lists (`markdown`: its title, category and id escaped)."""
    text = md if markdown else str
    product = products.get(product_id) or {}
    title = text(product.get("title") or product_id)
    category = text(product["category"]) if product.get("category") else "no category"
    return f"{title} · {category} · {_price(product.get('price'))} ({text(product_id)})"


def product_picker(label: str, products: dict[str, dict], key: str,
                   placeholder: str = "Type to search the catalog by title") -> str | None:
    """A searchable selectbox over the catalog's products; the chosen product id or None."""
    return st.selectbox(label, list(products), index=None, key=key, placeholder=placeholder,
                        format_func=lambda product_id: product_label(product_id, products))


def history_list(product_ids: list[str], products: dict[str, dict], limit: int = 20) -> None:
    """The products of a history, one a line, at most `limit` of them."""
    for product_id in product_ids[:limit]:
        st.markdown(f"- {product_label(product_id, products, markdown=True)}")
    if len(product_ids) > limit:
        st.caption(f"... and {len(product_ids) - limit:,} more")


def similar_lists(recommender, product_id: str, depth: int) -> dict[str, list[tuple[str, float]]]:
    """{source name: the source's `similar_items` of `product_id`} of a hybrid recommender.

    Sources without item-to-item similarity are left out, as `HybridRecommender.similar_items`
    does; so are neighbours of similarity 0 or less (an EASE weight of 0: no co-purchase signal).
    """
    lists = {}
    for source in recommender.sources:
        try:
            ranking = source.similar_items(product_id, depth)
        except NotImplementedError:
            continue
        lists[source.name] = [(other, score) for other, score in ranking if score > 0]
    return lists


def card_label(rank: int, product_id: str, product: dict | None, sponsored: bool = False) -> str:
    """"1. Title · category · price", as Markdown (an expander's label); an ad's says "Sponsored"."""
    product = product or {}
    title = md(product.get("title") or product_id)
    category = md(product["category"]) if product.get("category") else "no category"
    return (f"{rank}. {'Sponsored · ' if sponsored else ''}{title} · {category} · "
            f"{_price(product.get('price'))}")


def explanation_table(row: Shown) -> pd.DataFrame:
    """A result's parts, one column per source (rank, raw score, normalised, contribution): narrow
    enough for a third of the page, where a row per source cut its last columns off."""
    return pd.DataFrame({name: [f"#{part.rank}", f"{part.score:.3f}", f"{part.normalised:.3f}",
                                              f"{part.contribution:.3f}"]
                         for name, part in row.sources.items()},
                        index=["rank", "raw score", "normalised", "contribution"])


def explanation(row: Shown) -> None:
    """The explanation panel of one result."""
    if row.sources:
        st.table(explanation_table(row))
    for text in row.reasons:
        st.markdown(f"- {md(text)}")
    for effect in row.effects:
        before = "not found" if effect.before is None else f"#{effect.before}"
        after = "removed" if effect.after is None else f"#{effect.after}"
        change = f", score {effect.score_change:+.3f}" if effect.score_change else ""
        st.markdown(f"- rule **{md(effect.rule)}**: {effect.action}, {before} → {after}{change}")
    if not (row.sources or row.reasons or row.effects):
        st.caption("No explanation available for this result.")


def result_column(title: str, rows: list[Shown], products: dict[str, dict], key: str,
                  caption: str | None = None) -> None:
    """A titled list of product cards; each card expands to its explanation."""
    st.subheader(title)
    if caption:
        st.caption(caption)
    if not rows:
        st.info("No results.")
        return
    for rank, row in enumerate(rows, 1):
        product = products.get(row.product_id)
        label = card_label(rank, row.product_id, product, sponsored=row.sponsored is not None)
        with st.expander(label, expanded=False):
            # No code span: a backtick in the id would close it, and escapes do not work inside one.
            details = [f"id {md(row.product_id)}", f"score {row.score:.4f}"]
            if product and product.get("in_stock") is not None and not pd.isna(product.get("in_stock")):
                details.append("in stock" if product.get("in_stock") else "out of stock")
            st.caption(" · ".join(details))
            if row.sponsored is not None:
                st.caption(row.sponsored)
            explanation(row)
