"""Search trial: one query, its BM25, semantic and hybrid results side by side, each explained."""

import streamlit as st

from recsys.services import database_url
from recsys.fusion import above_floors
from recsys.fusion.sponsored import SponsoredSlots
from ui import results
from ui.engines import active_fusion, ad_server, catalog, preset_label, search_engine, versions
from ui.session import require
from ui.text import md

require("view")
url = database_url()
st.title("Search trial")
st.caption("Type a query as a customer would. Each column is one engine's ranking of the active "
           "catalog; open a product to see why it is there.")
catalog_version = versions(url).get("catalog")
if catalog_version is None:
    st.info("No catalog is active yet: upload one on the Data page, then come back to search it.")
    st.stop()

products = catalog(url)
preset, _ = active_fusion(url, "search")
fusion = preset.config  # as served (a reranker that follows the active one, resolved)
query_column, k_column, category_column = st.columns([3, 1, 2])
query = query_column.text_input("Query", key="search_query", placeholder="e.g. heart")
k = int(k_column.number_input("Results per column", 1, 50, 10, key="search_k"))
categories = sorted(products["category"].dropna().astype(str).unique()) if "category" in products else []
category = category_column.selectbox(
    "Category", categories, index=None, key="search_category", placeholder="No category",
    disabled=not categories,
    help="The category the search is made in: rules scoped to a category apply only there.")
st.caption(f"Hybrid: the active search preset, {preset_label(preset)}: {results.fusion_summary(fusion)}.")
if not query.strip():
    st.info("Type a query above to compare the engines' results.")
    st.stop()

engine = search_engine(url)
# One retrieval per source; the source columns and the fused column all read these lists.
lists = above_floors(engine.candidates([query], depth=max(fusion.candidates, k))[0], fusion)
hybrid = engine.fuse_candidates(query, lists, k, fusion=fusion, category=category)
correction = engine.correct(query)
if correction.changed:
    st.info(f"Showing results for **{md(correction.query)}**: {md(correction.describe())} (a word no product "
            "text contains, corrected to the closest catalog word).", icon=":material/spellcheck:")
index = results.catalog_index(products)
floor = fusion.min_scores.get("semantic")
captions = {"bm25": "Lexical: products whose text contains a query word; scores are BM25.",
            "semantic": "Meaning: cosine similarity of query and product embeddings"
                        + (f", {floor:g} or more." if floor else ".")}
columns = st.columns(len(engine.sources) + 1)
for column, source in zip(columns, engine.sources):
    with column:
        rows = results.from_retriever(source, correction.query, lists.get(source.name, [])[:k])
        results.result_column(results.source_title(source.name), rows, index,
                              key=f"search_{source.name}", caption=captions.get(source.name))
hybrid_rows = results.from_hits(hybrid)
caption = "Fused with the active preset, then its rules."
slots = SponsoredSlots.from_preset(fusion)
if slots is not None:  # the ads the service would place in this page: a preview, nothing recorded
    page, won, bidding = ad_server(url).preview(
        "search", slots, [{"product_id": hit.product_id} for hit in hybrid],
        lambda products: engine.relevance(lists, products, fusion=fusion), attributes=engine.attributes,
        titles={pid: str(product.get("title", "")) for pid, product in index.items()}, query=query,
        category=category)
    organic = {row.product_id: row for row in hybrid_rows}
    placed = {placement.product_id: placement for placement in won}
    hybrid_rows = []
    for item in page:
        if not item.get("sponsored"):
            hybrid_rows.append(organic[item["product_id"]])
            continue
        ad, campaign = placed[item["product_id"]], bidding[item["campaign_id"]]
        hybrid_rows.append(results.Shown(item["product_id"], ad.relevance, sponsored=(
            f"Sponsored by {md(campaign.advertiser)}, campaign {campaign.campaign_id} "
            f"({md(campaign.name)}): relevance {ad.relevance:.2f} to the query, bid {campaign.max_cpc:.2f}, "
            f"{ad.price:.2f} a click (second price), predicted click-through {ad.ctr:.3f}.")))
    caption += (f" Sponsored slots at positions {', '.join(map(str, slots.positions))} (at most "
                f"{slots.max_ads}, relevance {slots.relevance_floor:g} or more): a preview of the ads, not "
                "recorded.")
with columns[-1]:
    results.result_column("Hybrid", hybrid_rows, index, key="search_hybrid", caption=caption)
