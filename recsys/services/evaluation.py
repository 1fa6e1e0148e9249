"""Stored evaluation results, for the Evaluation page."""

from __future__ import annotations

import pandas as pd

from db import queries
from db.engine import session_scope


def results(url: str) -> pd.DataFrame:
    """Every evaluated algorithm's scores, newest run first."""
    with session_scope(url) as session:
        return queries.evaluation_results(session)
