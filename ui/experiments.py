"""Widgets of the Experiments page: online experiments of two search presets on the shop's traffic.

What is shown is read through `recsys.experiments.service` at every run, so a report is as fresh as
the events the REST service stored last; starting, stopping and promoting are activations and need
the "merchandise" permission (what activating a search preset needs); feeding live events into the
search log stores a data version and needs "upload".
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from recsys.accounts import Identity
from recsys.experiments import service as experiments
from recsys.experiments.analysis import AB_EFFECT, INTERLEAVING_EFFECT
from recsys.services import presets as preset_service
from ui import engines
from ui.text import md

FLASH = "exp_flash"
CHOSEN, CHOSEN_NEXT = "exp_chosen", "exp_chosen_next"  # the experiment shown; the one to show after a rerun
METHODS = {"interleaving": "Interleaving", "ab": "A/B test"}
METHOD_HELP = {
    "interleaving": "Each search shows both presets' results merged into one list; the preset whose products "
                    "get the clicks wins. Needs far fewer sessions.",
    "ab": "Each session sees one preset's results all along; compares click-through and conversion. "
          "Measures the business effect.",
}
ARM_COLOURS = {"control": "#1f77b4", "treatment": "#ff7f0e"}


def flash() -> None:
    """The message of the last action, once, after the rerun it caused."""
    kind, text = st.session_state.pop(FLASH, (None, ""))
    if kind:
        getattr(st, kind)(text)


def _done(kind: str, text: str, chosen: int | None = None) -> None:
    """Keep a message for the next run (and the experiment to show), then run the page again so that the
    table and the report above the button show the change."""
    st.session_state[FLASH] = (kind, text)
    if chosen is not None:
        st.session_state[CHOSEN_NEXT] = chosen
    st.rerun()


def _percent(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1%}"


# --- the list and the choice -----------------------------------------------------------------

def experiments_table(url: str) -> pd.DataFrame:
    """Every experiment, newest first, drawn as a table; an empty frame draws nothing."""
    table = experiments.list_experiments(url)
    if not table.empty:
        st.dataframe(table, hide_index=True, key="exp_table", column_config={
            "traffic": st.column_config.NumberColumn("share of sessions", format="percent"),
            "created_at": st.column_config.DatetimeColumn("created at"),
            "stopped_at": st.column_config.DatetimeColumn("stopped at")})
    return table


def choose(table: pd.DataFrame) -> int:
    """The experiment whose report is shown (the newest unless another was chosen)."""
    names = dict(zip(table["id"], table["name"]))
    if CHOSEN_NEXT in st.session_state:
        st.session_state[CHOSEN] = st.session_state.pop(CHOSEN_NEXT)
    if st.session_state.get(CHOSEN) not in names:
        st.session_state[CHOSEN] = next(iter(names))
    return int(st.selectbox("Experiment", list(names), key=CHOSEN,
                            format_func=lambda experiment_id: f"{experiment_id}: {names[experiment_id]}"))


# --- starting one ----------------------------------------------------------------------------

def _preset_labels(url: str) -> tuple[list[str], str | None]:
    """(every search preset version as "NAME vN", newest first; the active one's label)."""
    frame = preset_service.list_presets(url, "search")
    labels = [f"{row.name} v{row.version}" for row in frame.itertuples()]
    active = [f"{row.name} v{row.version}" for row in frame.itertuples() if row.active]
    return labels, (active[0] if active else None)


def create_form(url: str, who: Identity) -> None:
    """Start an experiment of two search presets; the service's message when it cannot start."""
    labels, active = _preset_labels(url)
    if len(labels) < 2:
        st.info("An experiment compares two search presets: save a second one on the Fusion & rules page.")
        st.page_link("pages/fusion.py", label="Fusion & rules", icon=":material/tune:")
        return
    control_index = labels.index(active) if active in labels else 0
    treatment_index = next(index for index in range(len(labels)) if index != control_index)
    allowed = who.can("merchandise")  # what activating a search preset needs
    with st.form("exp_form"):
        name = st.text_input("Name", key="exp_name", placeholder="e.g. lexical-vs-default")
        left, right = st.columns(2)

        def shown(label: str) -> str:
            return label + (" (active)" if label == active else "")

        control = left.selectbox("Control (what is served now)", labels, index=control_index,
                                 key="exp_control", format_func=shown)
        treatment = right.selectbox("Treatment (the challenger)", labels, index=treatment_index,
                                    key="exp_treatment", format_func=shown)
        method = st.radio("Method", list(METHODS), key="exp_method", horizontal=True,
                          format_func=METHODS.get, captions=list(METHOD_HELP.values()))
        traffic = st.slider("Share of sessions in the experiment", 0.05, 1.0, 1.0, step=0.05,
                            key="exp_traffic", help="Sessions outside it get the active preset as usual.")
        submitted = st.form_submit_button("Start the experiment", type="primary", disabled=not allowed)
    if not allowed:
        st.caption("Starting, stopping and promoting experiments needs the operator or admin role.")
    if not submitted:
        return
    try:
        created = experiments.create_experiment(url, name, control, treatment, method, who.username,
                                                traffic=traffic)
    except (ValueError, LookupError) as error:
        st.error(f"The experiment was not started: {md(error)}.")
        return
    _done("success", f"Started experiment {created.id}, {md(created.name)}: {md(created.control)} against "
                     f"{md(created.treatment)} ({METHODS[created.method]}) on {created.traffic:.0%} of the "
                     "sessions that the REST service sees.", chosen=created.id)


# --- one experiment's report -----------------------------------------------------------------

def report(url: str, who: Identity, experiment_id: int) -> None:
    """The chosen experiment's figures, its charts over time and, while it runs, stop and promote."""
    method = experiments.get_experiment(url, experiment_id).method
    default_effect = INTERLEAVING_EFFECT if method == "interleaving" else AB_EFFECT
    effect_label = ("Effect to detect: treatment win rate above 50% by" if method == "interleaving"
                    else "Effect to detect: relative lift in click-through of")
    effect = st.number_input(effect_label, 0.01, 0.49 if method == "interleaving" else 1.0, default_effect,
                             step=0.01, format="%.2f", key=f"exp_effect_{method}")
    result = experiments.report(url, experiment_id, effect)
    labels = {"control": result["control"], "treatment": result["treatment"]}
    status = f"{result['status']}; {result['traffic']:.0%} of sessions"
    st.markdown(f"**{md(result['name'])}** ({METHODS[method]}, {status}): "
                f"control **{md(labels['control'])}**, treatment **{md(labels['treatment'])}**")
    totals = st.columns(3)
    for column, (key, label) in zip(totals, (("impressions", "Impressions"), ("clicks", "Clicks"),
                                             ("sessions", "Sessions"))):
        column.metric(label, f"{result[key]:,}")
    if method == "interleaving":
        _interleaving_metrics(result)
    else:
        _ab_metrics(result, labels)
    _verdict(result, labels)
    _charts(experiments.timeline(url, experiment_id), method, labels, experiment_id)
    if result["status"] == "running":
        _stop_buttons(url, who, result, labels)


def _interleaving_metrics(result: dict) -> None:
    wins = st.columns(4)
    wins[0].metric("Wins of control", f"{result['wins_control']:,}")
    wins[1].metric("Wins of treatment", f"{result['wins_treatment']:,}")
    wins[2].metric("Ties", f"{result['ties']:,}")
    wins[3].metric("Treatment win rate", _percent(result["win_rate_treatment"]),
                   help="the treatment's share of the impressions one list won; 50% is a draw")


def _ab_metrics(result: dict, labels: dict[str, str]) -> None:
    for column, (arm, figures) in zip(st.columns(2), result["arms"].items()):
        with column:
            st.markdown(f"**{arm.capitalize()}**: {md(labels[arm])}")
            top, bottom = st.columns(2), st.columns(2)
            top[0].metric(f"Sessions ({arm})", f"{figures['sessions']:,}")
            top[1].metric(f"Impressions ({arm})", f"{figures['impressions']:,}")
            bottom[0].metric(f"Click-through ({arm})", _percent(figures["ctr"]),
                             help="share of its sessions that clicked a result")
            bottom[1].metric(f"Conversion ({arm})", _percent(figures["conversion"]),
                             help="share of its sessions that bought anything")


def _verdict(result: dict, labels: dict[str, str]) -> None:
    conversion = result.get("p_value_conversion")
    st.markdown(f"p-value **{result['p_value']:.3g}** ({result['test']})"
                + (f"; conversion p-value {conversion:.3g}" if conversion is not None else "") + ".")
    winner = result["winner"]
    if winner:
        st.success(f"Significant winner (5% level): the {winner}, {md(labels[winner])}.")
        if result.get("early"):
            st.warning("Early: the test has not reached the sessions it was sized for. Looking again and "
                       "again and stopping at the first significant result finds a difference more often "
                       "than 5% of the time when there is none; let it run unless the difference is large.")
    else:
        st.info("No significant winner yet.")
    still = result["sessions_still_needed"]
    if still == 0:
        st.caption(f"Enough sessions to detect {result['effect']} (5% significance, 80% power).")
    elif still is None:
        st.caption(f"How many sessions it takes to detect {result['effect']} is known once some sessions "
                   "have clicked.")
    else:
        st.caption(f"About {still:,} more sessions are needed to detect {result['effect']} "
                   "(5% significance, 80% power).")


def _line(figure: go.Figure, frame: pd.DataFrame, column: str, name: str, colour: str | None = None) -> None:
    figure.add_trace(go.Scatter(x=frame["at"], y=frame[column], name=name, mode="lines+markers",
                                line={"color": colour} if colour else None))


def _charts(timeline: pd.DataFrame, method: str, labels: dict[str, str], experiment_id: int) -> None:
    """Cumulative figures over time: wins per arm and the win rate (interleaving), click-through per
    arm (A/B)."""
    if timeline.empty:
        st.caption("Nothing served in this experiment yet: its charts start with the first search.")
        return
    if method == "interleaving":
        left, right = st.columns(2)
        wins = go.Figure()
        for arm in ("control", "treatment"):
            _line(wins, timeline, f"wins_{arm}", f"{arm}: {labels[arm]}", ARM_COLOURS[arm])
        _line(wins, timeline, "ties", "ties", "#9e9e9e")
        wins.update_layout(title="Wins so far", yaxis_title="impressions won", margin={"t": 40, "b": 10})
        left.plotly_chart(wins, key=f"exp_wins_{experiment_id}")
        rate = go.Figure()
        _line(rate, timeline, "win_rate_treatment", f"treatment: {labels['treatment']}",
              ARM_COLOURS["treatment"])
        rate.add_hline(y=0.5, line_dash="dash", annotation_text="no difference")
        rate.update_layout(title="Treatment win rate so far", yaxis={"range": [0, 1], "tickformat": ".0%"},
                           margin={"t": 40, "b": 10})
        right.plotly_chart(rate, key=f"exp_win_rate_{experiment_id}")
        return
    ctr = go.Figure()
    for arm in ("control", "treatment"):
        _line(ctr, timeline, f"ctr_{arm}", f"{arm}: {labels[arm]}", ARM_COLOURS[arm])
    ctr.update_layout(title="Click-through so far (clicks per impression)", yaxis={"tickformat": ".0%"},
                      margin={"t": 40, "b": 10})
    st.plotly_chart(ctr, key=f"exp_ctr_{experiment_id}")


def _stop_buttons(url: str, who: Identity, result: dict, labels: dict[str, str]) -> None:
    allowed = who.can("merchandise")  # what activating a search preset needs
    stop, promote = st.columns(2)
    chosen = None
    if stop.button("Stop", key="exp_stop", disabled=not allowed, width="stretch",
                   help="end the experiment; the active search preset stays as it is"):
        chosen = False
    winner = result["winner"]
    if promote.button("Stop and promote the winner", key="exp_promote", type="primary", width="stretch",
                      disabled=not allowed or winner is None,
                      help=(f"end it and serve {md(labels[winner])} as the active search preset" if winner
                            else "needs a significant winner")):
        chosen = True
    if chosen is None:
        return
    try:
        stopped = experiments.stop_experiment(url, result["experiment_id"], who.username, promote=chosen)
    except (ValueError, LookupError) as error:
        st.error(md(str(error).capitalize()) + ".")
        return
    text = f"Stopped experiment {stopped['experiment_id']}, {md(stopped['name'])}."
    if stopped.get("promoted"):
        text += (f" {md(stopped['promoted'])} is now the active search preset."
                 + engines.refit(url, who.username))
    _done("success", text)


# --- live events into the search log -----------------------------------------------------------

def feed_search_log(url: str, who: Identity) -> None:
    """Store the clicks and purchases that followed searches as a new search-log version."""
    st.caption("The clicks and purchases that followed searches (from `POST /events`) can join the search "
               "log: query sets sample it, and fine-tuning learns from it.")
    if not st.button("Add clicks after searches to the search log", key="exp_feed",
                     disabled=not who.can("upload")):
        return
    result = experiments.feed_search_log(url, who.username)
    if result is None:
        st.info("Nothing new: no clicks or purchases after searches since the last time (those of the last "
                "minute wait for the next time, until every worker of the service has stored them).")
    elif not result.ok:
        # A line a paragraph: escaped, a line break of the message no longer starts one.
        st.error("\n\n".join(md(line) for report in result.reports for line in report.message().splitlines()))
    else:
        rows = result.reports[0].rows_out if result.reports else 0
        st.success(f"Stored search-log version v{result.version_ids[0]} ({rows:,} rows) and made it the "
                   "active search log.")
