"""Widgets of the Trials & judging page: query sets, new trials, blind judging, scorecards."""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from recsys.accounts import Identity
from recsys.data.export import csv_text
from recsys.data.readers import read_table
from recsys.fusion import FusionConfig
from recsys.services import presets as preset_service
from recsys.trials import querysets
from recsys.trials import service as trials
from recsys.trials.judging import CONSENSUS, Scale, agreement, disagreements
from ui import engines
from ui.text import md

SAMPLE_LABELS = {"typed": "Type them", "file": "Upload a file", "vocabulary": "The catalog's vocabulary",
                 "frequent": "The search log's most frequent", "random": "A random draw of the search log",
                 "zero_result": "Search-log queries that find nothing"}
WORKING = "fusion_search_working"
SAVED, CREATED = "qs_saved", "trial_created"  # the Fusion & rules page's working search config (ui.fusion)


def query_set_builder(url: str, who: Identity) -> None:
    """Make a query set: typed, uploaded, or sampled; shows it before it is saved."""
    if SAVED in st.session_state:
        st.success(st.session_state.pop(SAVED))
    source = st.radio("Queries from", list(SAMPLE_LABELS), horizontal=True, key="qs_source",
                      format_func=SAMPLE_LABELS.get)
    queries: list[str] = []
    try:
        if source == "typed":
            text = st.text_area("One query per line", key="qs_text", height=160,
                                placeholder="heart\nred mug\nchristmas lights")
            queries = querysets.typed_queries(text) if text.strip() else []
        elif source == "file":
            upload = st.file_uploader("CSV, TSV or Parquet with a column query", key="qs_file")
            if upload is not None:
                frame, _ = read_table(upload.getvalue(), upload.name)
                queries = querysets.file_queries(frame, file=upload.name)
        else:
            n = int(st.number_input("How many", 1, querysets.MAX_QUERIES, 30, key="qs_n"))
            queries = _sample(url, source, n, tuple(sorted(engines.versions(url).items())))
    except (ValueError, LookupError) as error:
        st.warning(md(error))
        return
    if not queries:
        return
    st.caption(f"{len(queries)} queries: " + ", ".join(map(md, queries[:30]))
               + (" ..." if len(queries) > 30 else ""))
    left, right = st.columns([3, 1])
    name = left.text_input("Name of the query set", key="qs_name", placeholder="e.g. top-queries")
    if right.button("Save the query set", key="qs_save", disabled=not name.strip() or not who.can("evaluate")):
        saved = trials.save_query_set(url, name, queries, source, who.username)
        share = "" if saved.traffic_share is None else f"; {saved.traffic_share:.1%} of the logged searches"
        # Run the page again so that the New trial tab (drawn before this one) offers the new set.
        st.session_state[SAVED] = f"Saved {md(saved.label)}: {len(saved.queries)} queries{share}."
        st.rerun()


@st.cache_data(show_spinner="Sampling the queries...", max_entries=8)
def _sample(url: str, source: str, n: int, versions_key: tuple) -> list[str]:
    """`trials.sample_queries`, drawn once per data state (`versions_key`): the page runs again at
    every grade given."""
    return trials.sample_queries(url, source, n)


def query_sets_table(url: str) -> None:
    table = trials.list_query_sets(url)
    if table.empty:
        st.caption("No query set yet.")
    else:
        st.dataframe(table.drop(columns=["id"]), hide_index=True, key="qs_table",
                     column_config={"traffic_share": st.column_config.NumberColumn("share of searches",
                                                                                 format="percent")})


def _configurations(url: str) -> dict[str, trials.Configuration]:
    """{label: configuration}: the served search preset first (the natural baseline), then the latest
    version of each other stored preset, and the working config of Fusion & rules when one is being
    edited."""
    presets = preset_service.list_presets(url, "search")
    options = {}
    if not presets.empty:
        served = presets[presets["active"]]
        others = presets[~presets["name"].isin(served["name"])].sort_values(["name", "version"])
        for row in [*served.itertuples(), *others.drop_duplicates("name", keep="last").itertuples()]:
            configuration = trials.preset_configuration(url, row.name, int(row.version))
            options[configuration.name] = configuration
    if WORKING in st.session_state:
        options["working config (Fusion & rules)"] = trials.Configuration(
            "working config", FusionConfig.from_dict(st.session_state[WORKING]))
    return options


def trial_builder(url: str, who: Identity) -> None:
    if CREATED in st.session_state:
        st.success(st.session_state.pop(CREATED))
    sets = trials.list_query_sets(url)
    if sets.empty:
        st.info("Make a query set first (the Query sets tab).")
        return
    labels = [f"{row.name} v{row.version}" for row in sets.itertuples()]
    options = _configurations(url)
    with st.form("trial_form"):
        name = st.text_input("Trial name", key="trial_name", placeholder="e.g. semantic-heavy vs default")
        chosen_set = st.selectbox("Query set", labels, key="trial_set")
        chosen = st.multiselect("Configurations (the first is the baseline)", list(options), key="trial_configs",
                                default=list(options)[:2])
        left, middle, right = st.columns(3)
        depth = int(left.number_input("Judge each one's top", 1, trials.MAX_DEPTH, 10, key="trial_depth"))
        lowest = int(middle.number_input("Lowest grade", 0, 8, 0, key="trial_low"))
        highest = int(right.number_input("Highest grade", 1, 9, 3, key="trial_high"))
        submitted = st.form_submit_button("Create the trial", disabled=not who.can("evaluate"), type="primary")
    if not submitted:
        return
    try:
        scale = Scale.spanning(lowest, highest)
        query_name, _, version = chosen_set.rpartition(" v")
        query_set = trials.get_query_set(url, query_name, int(version))
        with st.spinner("Searching the query set with each configuration..."):
            trial = trials.create_trial(url, name, query_set, [options[label] for label in chosen], who.username,
                                        depth=depth, scale=scale)
    except (ValueError, LookupError) as error:
        st.warning(md(error))
        return
    pairs = sum(map(len, trial.pool().values()))
    # Run the page again so that the Judge and Scorecard tabs (drawn before this one) offer the trial.
    st.session_state[CREATED] = (f"Created trial {trial.id}, {md(trial.name)}: {pairs} pairs to judge. "
                                 "Judge them on the Judge tab.")
    st.rerun()


def choose_trial(url: str, key: str, who: Identity) -> trials.TrialInfo | None:
    table = trials.list_trials(url)
    if table.empty:
        st.info("No trial yet. " + ("Make a query set and a trial on the New trial and Query sets tabs."
                                    if who.can("evaluate") else "A merchandiser makes them."))
        return None
    chosen = st.selectbox("Trial", table["id"].tolist(), key=f"{key}_trial", format_func=lambda trial_id: (
        f"{trial_id}: {table.set_index('id').loc[trial_id, 'name']}"))
    return trials.get_trial(url, int(chosen))


def _html(value) -> str:
    """`value` as the text of an HTML block: escaped, on one line (a blank line would end the block,
    and Markdown after it would be rendered)."""
    return html.escape(" ".join(str(value).splitlines()))


def _product_card(product: pd.Series | None, product_id: str) -> str:
    """The product as one HTML block for `st.markdown(..., unsafe_allow_html=True)`: Markdown is not
    read inside it, so its values take `html.escape`, not `md`."""
    if product is None:
        return f"<div><b>{_html(product_id)}</b> (not in the active catalog)</div>"
    parts = [f"<div style='font-size:1.3rem;font-weight:600'>{_html(product.get('title', ''))}</div>"]
    for column in ("description", "category", "price"):
        value = product.get(column)
        if value is not None and not pd.isna(value) and str(value).strip():
            parts.append(f"<div><i>{column}</i>: {_html(value)}</div>")
    return "".join(parts)


def judge(url: str, who: Identity) -> None:
    """Blind judging of the chosen trial, one pair at a time, with the keyboard: a digit grades,
    S skips, X is "can't tell", the left arrow goes back to the pair judged before."""
    trial = choose_trial(url, "judge", who)
    if trial is None:
        return
    history_key, back_key = f"judge_{trial.id}_history", f"judge_{trial.id}_back"
    history: list[tuple[str, str]] = st.session_state.setdefault(history_key, [])
    back = st.session_state.get(back_key, 0)
    todo = trials.pairs_to_grade(url, trial.id, who.username)
    pool_size = sum(map(len, trial.pool().values()))
    done = pool_size - len(todo)
    st.progress(done / pool_size if pool_size else 1.0, text=f"You have judged {done} of {pool_size} pairs")
    if back and back <= len(history):
        query, product_id = history[-back]
        st.caption("Going back: your new grade replaces the one you gave.")
    elif todo.empty:
        st.success("You have judged every pair of this trial. Thank you!")
        return
    else:
        query, product_id = todo.iloc[0]["query"], todo.iloc[0]["product_id"]
    catalog = engines.catalog(url)
    product = None
    if catalog is not None:
        match = catalog[catalog["product_id"].astype(str) == str(product_id)]
        product = None if match.empty else match.iloc[0]
    pair, guide = st.columns([3, 2])
    with pair:
        st.markdown(f"Query: **{md(query)}**")
        st.markdown(_product_card(product, str(product_id)), unsafe_allow_html=True)
    with guide:
        st.markdown("**Scale**: " + ", ".join(f"{grade} {md(trial.scale.label(grade))}"
                                              for grade in trial.scale.grades))
        st.caption(md(trial.scale.guidelines))  # written by whoever made the trial, read by graders
    verdict = None
    buttons = st.columns(len(trial.scale.grades) + 3)
    for column, grade in zip(buttons, trial.scale.grades):
        if column.button(f"{grade} {trial.scale.label(grade)}", key=f"grade_{grade}", shortcut=str(grade),
                         width="stretch"):
            verdict = ("graded", grade)
    if buttons[-3].button("Can't tell", key="grade_cant_tell", shortcut="X", width="stretch"):
        verdict = ("cant_tell", None)
    if buttons[-2].button("Skip", key="grade_skip", shortcut="S", width="stretch"):
        verdict = ("skipped", None)
    if buttons[-1].button("Back", key="grade_back", shortcut="Left", width="stretch",
                          disabled=back >= len(history)):
        st.session_state[back_key] = back + 1
        st.rerun()
    if verdict is not None:
        trials.judge(url, trial.id, query, str(product_id), who.username, verdict[1], verdict[0])
        if back:
            st.session_state[back_key] = back - 1
        else:
            history.append((query, str(product_id)))
        st.rerun()
    st.caption("Keys: a digit grades, X can't tell, S skips (not asked again), the left arrow goes back. "
               "Products are shown in an order that does not say which configuration found them.")


def _titles(url: str, products: list[str]) -> list[str]:
    catalog = engines.catalog(url)
    if catalog is None:
        return products
    titles = dict(zip(catalog["product_id"].astype(str), catalog["title"].astype(str)))
    return [titles.get(str(product), f"{product} (not in the active catalog)") for product in products]


def side_by_side(url: str, who: Identity) -> None:
    """Two configurations' lists for a query, on sides drawn at random; the grader picks the better
    with the keyboard: F the left, J the right, E the same."""
    trial = choose_trial(url, "sbs", who)
    if trial is None:
        return
    shown = trials.next_side_by_side(url, trial.id, who.username)
    if shown is None:
        st.success("You have compared every query of this trial. Thank you!")
        return
    st.markdown(f"Query: **{md(shown.query)}**: which list answers it better?")
    left, right = st.columns(2)
    for column, run, name in ((left, shown.left, "Left"), (right, shown.right, "Right")):
        with column:
            st.markdown(f"**{name}**")
            products = run.rankings.get(shown.query, [])
            if not products:
                st.caption("(nothing found)")
            for rank, title in enumerate(_titles(url, products), 1):
                st.write(f"{rank}. {md(title)}")
    choice = None
    buttons = st.columns(3)
    if buttons[0].button("Left is better", key="sbs_left", shortcut="F", width="stretch"):
        choice = "left"
    if buttons[1].button("About the same", key="sbs_same", shortcut="E", width="stretch"):
        choice = "same"
    if buttons[2].button("Right is better", key="sbs_right", shortcut="J", width="stretch"):
        choice = "right"
    if choice is not None:
        trials.prefer(url, trial.id, shown.query, who.username, choice)
        st.rerun()
    st.caption("Keys: F the left list, J the right, E about the same. The sides are drawn at random "
               "for each query; nothing says which configuration is which.")


def scorecard(url: str, who: Identity) -> None:
    trial = choose_trial(url, "score", who)
    if trial is None:
        return
    how = st.radio("Each pair's grade", CONSENSUS, horizontal=True, key="score_consensus",
                   format_func={"mean": "the graders' mean", "majority": "the graders' majority"}.get)
    card = trials.scorecard(url, trial.id, how)
    st.caption(f"Query set {md(trial.query_set.label)} ({len(trial.query_set.queries)} queries), "
               f"top {trial.depth} of each configuration judged; {card.graded_pairs} pairs graded. "
               f"nDCG@10 gains grade - {trial.scale.lowest}; precision@10 counts grades of "
               f"{trial.scale.relevant:g} or more; "
               "judged@10 is the share of the top 10 with a grade (below 1, the others are lower bounds).")
    st.dataframe(pd.DataFrame([config.to_dict() for config in card.configs]), hide_index=True, key="score_table")
    comparison = card.comparison
    if comparison and comparison["queries"]:
        ci = comparison["ci95"]
        st.markdown(
            f"**{md(comparison['b'])}** against **{md(comparison['a'])}** on {comparison['queries']} "
            f"queries: nDCG@10 {comparison['mean_difference']:+.4f}"
            + (f" (95% CI {ci[0]:+.4f} to {ci[1]:+.4f})" if ci else "")
            + (f", paired t-test p = {comparison['p_value']:.3g}" if comparison["p_value"] is not None else "")
            + (f", Wilcoxon p = {comparison['p_value_wilcoxon']:.3g}" if comparison["p_value_wilcoxon"] is not None
               else "")
            + f"; wins {comparison['wins_b']}, losses {comparison['wins_a']}, ties {comparison['ties']}.")
        first, last = card.configs[0].per_query, card.configs[-1].per_query
        both = first.merge(last, on="query", suffixes=("_a", "_b")).dropna(subset=["ndcg@10_a", "ndcg@10_b"])
        both = both.assign(change=both["ndcg@10_b"] - both["ndcg@10_a"]).sort_values("change")
        figure = go.Figure(go.Bar(x=both["change"], y=both["query"], orientation="h",
                                  marker_color=["#2e7d32" if v > 0 else "#c62828" for v in both["change"]]))
        figure.update_layout(height=max(220, 18 * len(both)), margin={"t": 10, "b": 10},
                             xaxis_title=f"nDCG@10 of {comparison['b']} minus {comparison['a']}")
        st.plotly_chart(figure, key="score_chart")
    preferred = card.side_by_side
    if preferred:
        ci = preferred["ci95"]
        rate = preferred["rate_second"]
        st.markdown(
            f"Side by side on {preferred['queries']} queries: **{md(preferred['second'])}** preferred "
            f"{preferred['wins_second']} times, **{md(preferred['first'])}** {preferred['wins_first']}, "
            f"the same {preferred['same']}"
            + (f"; win rate {rate:.0%} (95% CI {ci[0]:.0%} to {ci[1]:.0%}, binomial "
               f"p = {preferred['p_value']:.3g})" if rate is not None else "") + ".")
    judged = trials.judgments(url, trial.id)
    st.subheader("Graders")
    st.dataframe(trials.progress(url, trial.id), hide_index=True, key="score_progress")
    agreed = agreement(judged, trial.scale)
    if agreed["alpha"] is None:
        st.caption("Agreement needs pairs graded by two or more graders, with more than one grade among them.")
    else:
        st.markdown(f"Krippendorff's alpha (ordinal) **{agreed['alpha']:.3f}** over {agreed['pairs']} pairs "
                    "graded by two or more (1: full agreement; 0: what chance would give).")
        st.dataframe(pd.DataFrame(agreed["graders"]), hide_index=True, key="score_agreement")
        disagreed = disagreements(judged)
        if not disagreed.empty:
            st.markdown("**Pairs the graders disagree on**, widest first: a second look")
            st.dataframe(disagreed, hide_index=True, key="score_disagreements")
    history = trials.history(url, trial.id, how)
    if len(history) > len(card.configs):
        st.subheader("Tries")
        st.dataframe(history, hide_index=True, key="score_history")
    export = trials.export_judgments(url, trial.id, how)
    left, right = st.columns(2)
    left.download_button("Download the judgments (CSV)", csv_text(export), f"trial-{trial.id}.csv",
                         "text/csv", key="score_download", disabled=export.empty)
    if right.button("Make them the active judgment list", key="score_activate",
                    disabled=export.empty or not who.can("upload")):
        try:
            result = trials.activate_judgments(url, trial.id, who.username, how)
            message = f"Judgment list v{result.version_ids[0]} ({len(export)} pairs) is now active."
            st.success(message + engines.refit(url, who.username))
        except (ValueError, LookupError) as error:
            st.warning(md(error))
    if not who.can("upload"):
        st.caption("Operators and admins make a trial's judgments the active judgment list.")
