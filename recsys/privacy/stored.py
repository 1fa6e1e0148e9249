"""Data stored before pseudonymisation and masking existed, protected in place: run by
`python -m recsys init` (so by `make run`) at every start, a no-op once done.

Customer ids that are not pseudonyms yet are replaced by their pseudonyms, and typed text (search
logs, judgment queries, served searches) is masked, in every table; each dataset version changed
gets a note in its report. The caller removes the fitted engines of those versions (a fitted
recommender holds the ids it was fitted on)."""

from __future__ import annotations

from db import privacy as store
from db.engine import session_scope
from db.models import DatasetVersion, utc_now
from recsys.privacy.masking import mask_text
from recsys.privacy.pseudonyms import Pseudonymiser, pseudonymiser


def protect_stored(url: str | None = None, pseudonymise: Pseudonymiser | None = None) -> dict:
    """{"rows": {what: rows changed}, "dataset_versions": [ids changed]}."""
    pseudonymise = pseudonymise or pseudonymiser()

    def rename(value: str) -> str | None:
        return None if Pseudonymiser.is_pseudonym(value) else pseudonymise(value)

    def mask(value: str) -> str | None:
        masked, found = mask_text(value)
        return masked if found else None

    with session_scope(url) as session:
        done = store.protect_stored(session, rename, mask)
        for version_id, rows in done["dataset_versions"].items():
            version = session.get(DatasetVersion, version_id)
            report = dict(version.report or {})
            report["privacy_upgrade"] = {"at": utc_now().isoformat(timespec="seconds"), "rows": rows,
                                         "key": pseudonymise.fingerprint}
            version.report = report
    return {"rows": done["rows"], "dataset_versions": sorted(done["dataset_versions"])}
