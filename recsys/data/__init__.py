"""Uploads in, clean frames and a report out.

`read_table` reads CSV, TSV, Parquet and JSON Lines; `prepare` maps, validates
and cleans one frame of one kind; `ingest_file` does all of that and stores the
result as a new dataset version in one transaction.
"""

from recsys.data.clean import CleaningConfig
from recsys.data.ingest import IngestOptions, IngestResult, ingest_file, prepare
from recsys.data.readers import read_table
from recsys.data.report import IngestError, IngestReport, Problem, RuleResult
from recsys.data.schema import KINDS, guess_mapping

__all__ = [
    "KINDS",
    "CleaningConfig",
    "IngestError",
    "IngestOptions",
    "IngestReport",
    "IngestResult",
    "Problem",
    "RuleResult",
    "guess_mapping",
    "ingest_file",
    "prepare",
    "read_table",
]
