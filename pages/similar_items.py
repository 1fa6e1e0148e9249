"""Similar items: a product's co-purchase neighbours against its embedding neighbours, explained."""

import streamlit as st

from recsys.services import database_url
from ui import results
from ui.engines import preset_label, recommendation_context
from ui.session import require

require("view")
url = database_url()
st.title("Similar items")
st.caption("Pick a product: what customers bought with it (collaborative filtering) against what "
           "reads like it (embeddings), and the two fused; open a product to see why.")
index, engine, preset, fusion = recommendation_context(url, "Similar items")
pick_column, k_column = st.columns([3, 1])
with pick_column:
    product_id = results.product_picker("Product", index, key="similar_product")
k = int(k_column.number_input("Results per column", 1, 50, 10, key="similar_k"))
st.caption(f"Hybrid: the active recommendations preset, {preset_label(preset)}: "
           f"{results.fusion_summary(fusion)}.")
if product_id is None:
    st.info("Pick a product above to see its neighbours.")
    st.stop()

lists = results.similar_lists(engine, product_id, max(fusion.candidates, k))
fused = engine.fuse_candidates(lists, k, fusion=fusion)
together = engine.co_purchases(product_id)


def reasons(source: str, neighbour: str, score: float) -> list[str]:
    if source == "semantic":
        return [f"cosine similarity of the product texts {score:.3f}"]
    count = together.get(neighbour, 0)
    return [f"bought together by {count:,} customer{'' if count == 1 else 's'}"]


captions = {"ease": "Co-purchase: the EASE weight of this product towards each other product.",
            "semantic": "Meaning: cosine similarity of the product embeddings."}
columns = st.columns(len(engine.sources) + 1)
for column, source in zip(columns, engine.sources):
    rows = results.from_items(lists.get(source.name, [])[:k])
    for row in rows:
        row.reasons = reasons(source.name, row.product_id, row.score)
    with column:
        results.result_column(results.source_title(source.name), rows, index,
                              key=f"similar_{source.name}", caption=captions.get(source.name))
        if source.name != "semantic" and not rows:
            st.caption("No co-purchase neighbours: too few customers bought this product with others.")
with columns[-1]:
    rows = results.from_items(fused)
    for row in rows:
        row.reasons = [f"{results.source_title(name)}: {text}" for name, part in row.sources.items()
                       for text in reasons(name, row.product_id, part.score)]
    results.result_column("Hybrid", rows, index, key="similar_hybrid",
                          caption="Fused with the active preset, then its rules.")
