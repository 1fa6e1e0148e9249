"""Recommendations: a customer's or a session's collaborative, semantic and hybrid lists, explained."""

import streamlit as st

from recsys.services import database_url
from recsys.fusion import above_floors
from recsys.privacy.pseudonyms import pseudonymiser
from ui import results
from ui.engines import preset_label, recommendation_context
from ui.session import require
from ui.text import md

SESSION_KEY = "recs_session"


def add_to_session() -> None:
    chosen = st.session_state.get("recs_product")
    session = st.session_state.setdefault(SESSION_KEY, [])
    if chosen is not None and chosen not in session:
        session.append(chosen)
    st.session_state["recs_product"] = None


def remove_from_session(product_id: str) -> None:
    st.session_state[SESSION_KEY] = [p for p in st.session_state.get(SESSION_KEY, []) if p != product_id]


require("view")
url = database_url()
st.title("Recommendations")
st.caption("Pick a customer, or build an anonymous session by adding products, and compare what "
           "each engine recommends; open a product to see why.")
index, engine, preset, fusion = recommendation_context(url, "Recommendations")
session = st.session_state.setdefault(SESSION_KEY, [])

customer_column, id_column, k_column = st.columns([2, 2, 1])
# Customers are stored pseudonymised (recsys.privacy): pick a pseudonym, or type the shop's id.
user = customer_column.selectbox("Customer (pseudonym)", engine.user_ids.tolist(), index=None,
                                 key="recs_user", placeholder="No customer: an anonymous session")
typed = id_column.text_input("Or the shop's customer id", key="recs_customer_id", max_chars=128,
                             help="Pseudonymised with the workbench's key, as uploads and the REST "
                                  "service do; neither the id nor its pseudonym is stored.")
if typed.strip():
    user = pseudonymiser().resolve(typed)
    id_column.caption(f"Customer {md(user)}" + ("" if engine.knows_user(user) else
                                                 ": not in the fitted data."))
k = int(k_column.number_input("Results per column", 1, 50, 10, key="recs_k"))
pick_column, add_column = st.columns([3, 1], vertical_alignment="bottom")
with pick_column:
    results.product_picker("Add a product to the session", index, key="recs_product")
add_column.button("Add to session", key="recs_add", on_click=add_to_session, width="stretch")

bought = engine.history(user)
with st.expander(f"What drives the lists: {len(bought)} products of the customer, "
                 f"{len(session)} in the session", expanded=bool(session)):
    if bought:
        st.markdown(f"**Customer {md(user)} interacted with**")
        results.history_list(bought, index)
    if session:
        st.markdown("**Session**")
        for product_id in session:
            label_column, remove_column = st.columns([5, 1], vertical_alignment="center")
            label_column.markdown(results.product_label(product_id, index, markdown=True))
            remove_column.button("Remove", key=f"recs_remove_{product_id}",
                                 on_click=remove_from_session, args=(product_id,))
        st.button("Clear the session", key="recs_clear",
                  on_click=lambda: st.session_state.update({SESSION_KEY: []}))

st.caption(f"Hybrid: the active recommendations preset, {preset_label(preset)}: "
           f"{results.fusion_summary(fusion)}.")
history = list(session) or None
fallback = engine.falls_back(user, history)
if fallback:
    st.info("No customer and no session products to go on: every engine falls back to the most popular "
            "products, so the lists below are the same. Pick a customer or add a product.",
            icon=":material/trending_up:")
# One retrieval per source; the source columns and the fused column all read these lists.
lists = above_floors(engine.candidates([user], [history], depth=max(fusion.candidates, k))[0], fusion)
fused = engine.fuse_candidates(lists, k, fusion=fusion)
captions = {"ease": "Co-purchase: what customers with this history also bought.",
            "semantic": "Meaning: products whose text is closest to the history's."}
columns = st.columns(len(engine.sources) + 1)
for column, source in zip(columns, engine.sources):
    with column:
        rows = results.from_items(lists.get(source.name, [])[:k], lambda product_id, source=source: [
            reason.text for reason in source.explain(user, product_id, history)])
        results.result_column(results.source_title(source.name), rows, index, key=f"recs_{source.name}",
                              caption="Fallback: the most popular products." if fallback
                              else captions.get(source.name))
found_by = {item.product_id: list(item.sources) for item in fused}
with columns[-1]:
    # Each product's reasons come from the sources that put it in the fused list, as its table shows.
    rows = results.from_items(fused, lambda product_id: [
        reason.text for reason in engine.explain(user, product_id, history, sources=found_by[product_id])])
    results.result_column("Hybrid", rows, index, key="recs_hybrid",
                          caption="Fallback: the most popular products." if fallback
                          else "Fused with the active preset, then its rules.")
