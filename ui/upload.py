"""The upload form and the rendering of validation and cleaning reports."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from recsys.accounts import Identity
from recsys.data import KINDS, CleaningConfig, IngestError, IngestOptions, guess_mapping, read_table
from recsys.data.clean import DEFAULT_NON_PRODUCT_CODES
from recsys.data.ingest import catalog_change, ingest_file
from recsys.data.online_retail import ingest_online_retail
from recsys.data.report import IngestReport
from ui.engines import refit
from ui.text import md

NONE = "(not in file)"
KIND_LABELS = {**{k: spec.label for k, spec in KINDS.items()},
               "online_retail": "Online Retail invoice lines (catalog + purchases)"}
RESULT_KEY = "upload_result"
FILE_KEY = "upload_file_seen"  # the file the mapping widgets and the result belong to


def render_report(report: IngestReport) -> None:
    """Problems (file, row, line, column, value, reason) and what each cleaning rule did."""
    if report.ok:
        st.success(md(report.message()))
    else:
        st.error(md(report.message().splitlines()[0]))
        problems = pd.DataFrame([p.__dict__ for p in report.problems])
        st.dataframe(problems[["file", "row", "line", "column", "value", "reason"]], hide_index=True,
                     width="stretch", column_config={"reason": st.column_config.TextColumn(width="large"),
                                                     "file": st.column_config.TextColumn(width="small")})
        # A table cell shows the first words of a long reason: each distinct one in full, too.
        for reason in list(dict.fromkeys(problems["reason"]))[:5]:
            st.caption(md(reason))
        for note in report.notes:
            st.caption(md(note))
        return
    for note in report.notes:
        st.caption(md(note))
    render_privacy(report)
    if report.cleaning:
        st.markdown(f"**Cleaning of the {report.kind}**: {report.rows_in:,} rows in, "
                    f"{report.rows_out:,} out")
        table = pd.DataFrame([{"rule": r.rule, "what": r.description, "action": r.action,
                               "rows": r.rows} for r in report.cleaning])
        st.dataframe(table, hide_index=True, width="stretch")
        for rule in report.cleaning:
            with st.expander(f"{rule.rule}: {rule.rows:,} rows {rule.action} - examples"):
                st.dataframe(pd.DataFrame(rule.examples), hide_index=True, width="stretch")
    else:
        st.info("Cleaning changed nothing.")


def render_privacy(report: IngestReport) -> None:
    """What was pseudonymised and masked before anything was stored (recsys.privacy)."""
    privacy = report.privacy
    if not privacy.get("pseudonymised") and not privacy.get("masked"):
        return
    lines = []
    for column, done in privacy.get("pseudonymised", {}).items():
        lines.append(f"- {md(column)}: {done['customers']:,} customers ({done['rows']:,} rows) "
                     f"pseudonymised with a keyed hash (key {md(privacy.get('key', '?'))}); the shop's ids "
                     "are not stored, and the REST service and the pages hash them the same way")
    for column, done in privacy.get("masked", {}).items():
        if done["kinds"]:
            kinds = ", ".join(f"{n:,} {md(kind)}" for kind, n in sorted(done["kinds"].items()))
            lines.append(f"- {md(column)}: personal data masked in {done['rows']:,} rows ({kinds})")
        else:
            lines.append(f"- {md(column)}: no personal data found (e-mail addresses, phone, card and "
                         "national id numbers, IBANs, postcodes)")
    st.markdown("**Privacy**, before anything was stored:\n" + "\n".join(lines))
    if privacy.get("examples"):
        st.caption("Masked texts, as stored")
        st.dataframe(pd.DataFrame({"text": privacy["examples"]}), hide_index=True, width="stretch")


def _mapping_form(columns: list[str], kind: str) -> dict[str, str]:
    guessed = {target: source for source, target in guess_mapping(columns, kind).items()}
    mapping = {}
    spec = KINDS[kind]
    grid = st.columns(3)
    for number, column in enumerate(spec.columns):
        options = [NONE, *columns]
        default = guessed.get(column.name, NONE)
        label = f"{column.name}{' *' if column.required else ''}"
        chosen = grid[number % 3].selectbox(label, options, index=options.index(default),
                                            help=column.help, key=f"map_{kind}_{column.name}")
        if chosen != NONE:
            mapping[chosen] = column.name
    return mapping


def _catalog_choice(frame: pd.DataFrame, mapping: dict[str, str], id_case: str, url: str) -> tuple[bool, bool]:
    """Replace or merge into the active catalog, and what it would change: (merge, blocked).

    A replacement that leaves products of the active behaviour data without a catalog entry
    must be confirmed (blocked until then) before "Upload and activate" is enabled.
    """
    how = st.radio("Store it", ["replace", "merge"], horizontal=True, key="upload_catalog_how",
                   format_func={"replace": "as the whole catalog (replace the active one)",
                                "merge": "into the active catalog (add new products, update the ones it has)"}.get)
    source = next((column for column, target in mapping.items() if target == "product_id"), None)
    if source is None:
        return how == "merge", False
    ids = frame[source].dropna().astype(str).str.strip()
    ids = set((ids.str.upper() if id_case == "upper" else ids)[lambda values: values != ""])
    change = catalog_change(ids, how == "merge", url)
    if not change.missing_for_events:
        st.caption(md(change.describe()) + " Counted before cleaning.")
        return how == "merge", False
    st.warning(md(change.describe()), icon=":material/warning:")
    confirmed = how == "merge" or st.checkbox("Replace it anyway", key="upload_confirm_replace")
    return how == "merge", not confirmed


def _forget_previous_file(file_id: str) -> None:
    """A new file starts with fresh column guesses and without the previous file's result."""
    for key in [key for key in st.session_state if str(key).startswith("map_")
                or key == "upload_confirm_replace"]:
        del st.session_state[key]
    st.session_state.pop(RESULT_KEY, None)
    st.session_state[FILE_KEY] = file_id


def upload_form(who: Identity, url: str) -> None:
    kind = st.selectbox("What are you uploading?", list(KIND_LABELS), key="upload_kind",
                        format_func=KIND_LABELS.get)
    upload = st.file_uploader("File (CSV, TSV, Parquet or JSON Lines)", key="upload_file",
                              type=["csv", "tsv", "txt", "parquet", "jsonl", "ndjson", "json"])
    encoding = st.text_input("Encoding of a text file", value="", placeholder="utf-8",
                             key="upload_encoding", help="e.g. latin-1 or cp1252")
    if upload is None:
        return
    if st.session_state.get(FILE_KEY) != upload.file_id:
        _forget_previous_file(upload.file_id)
    data = upload.getvalue()
    try:
        frame, fmt = read_table(data, upload.name, encoding=encoding or None)
    except IngestError as error:
        render_report(error.report)
        return
    st.caption(f"{md(upload.name)}: {len(frame):,} rows, {frame.columns.size} columns, read as {fmt}. "
               "Your file as it is; customer ids are pseudonymised and personal data in typed text "
               "masked when it is stored.")
    st.dataframe(frame.head(20), hide_index=True, width="stretch")

    options, blocked = None, False
    if kind != "online_retail":
        st.markdown("**Column mapping** (* required)")
        mapping = _mapping_form(list(frame.columns), kind)
        left, middle, right = st.columns(3)
        event_type = None
        if kind == "events":
            event_type = left.selectbox("Event type of rows without one",
                                        [None, "view", "click", "cart", "purchase", "rating"],
                                        key="upload_event_type",
                                        format_func=lambda v: v or "(none: every row has one)")
        id_case = middle.selectbox("Product and user ids", ["keep", "upper"], key="upload_id_case",
                                   format_func={"keep": "keep case", "upper": "upper-case"}.get)
        skip = right.checkbox("Drop rows with invalid values instead of rejecting the file",
                              key="upload_skip_invalid")
        codes = st.text_input("Codes that are charges, not products (comma-separated)",
                              value=", ".join(DEFAULT_NON_PRODUCT_CODES), key="upload_codes")
        cleaning = CleaningConfig(id_case=id_case, default_event_type=event_type,
                                  non_product_codes=tuple(c.strip() for c in codes.split(",")
                                                          if c.strip()))
        merge, blocked = _catalog_choice(frame, mapping, id_case, url) if kind == "catalog" else (False, False)
        options = IngestOptions(kind=kind, mapping=mapping, encoding=encoding or None,
                                skip_invalid_rows=skip, cleaning=cleaning, merge=merge)
    check, store = st.columns(2)
    dry_run = check.button("Check only", key="upload_check")
    stored = store.button("Upload and activate", type="primary", key="upload_store", disabled=blocked,
                          help="first confirm the replacement above" if blocked else None)
    if stored or dry_run:
        with st.spinner("Reading, validating and cleaning..."):
            try:
                if options is None:
                    result = ingest_online_retail(data, actor=who.username, filename=upload.name,
                                                  dry_run=dry_run, url=url)
                else:
                    result = ingest_file(data, options, actor=who.username, filename=upload.name,
                                         dry_run=dry_run, url=url)
                fitting = refit(url, who.username) if result.version_ids else ""
                st.session_state[RESULT_KEY] = (result.reports, result.version_ids, dry_run, fitting)
            except IngestError as error:
                st.session_state[RESULT_KEY] = ([error.report], [], dry_run, "")
    if RESULT_KEY in st.session_state:
        reports, version_ids, was_dry_run, fitting = st.session_state[RESULT_KEY]
        if version_ids:
            st.success(f"Stored and activated as version(s) {', '.join(map(str, version_ids))}.{fitting}")
        elif was_dry_run and all(r.ok for r in reports):
            st.info("Checked only: nothing was stored.")
        for report in reports:
            render_report(report)
